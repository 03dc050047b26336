#!/usr/bin/env bash
# Adds NEXUS Desktop to the application menu (and the desktop, if there is one) for this user,
# so it starts with a double-click. Run installers/setup.sh first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -x "$ROOT/.venv/bin/nexus-desktop" ]] || { echo "Run: bash installers/setup.sh --setup-only  first." >&2; exit 1; }
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
mkdir -p "$apps"
sed "s|@ROOT@|$ROOT|g" "$ROOT/installers/linux/nexus-desktop.desktop.in" > "$apps/nexus-desktop.desktop"
chmod +x "$apps/nexus-desktop.desktop"
desktop="$(xdg-user-dir DESKTOP 2>/dev/null || echo "$HOME/Desktop")"
if [[ -d "$desktop" ]]; then
  cp "$apps/nexus-desktop.desktop" "$desktop/"
  gio set "$desktop/nexus-desktop.desktop" metadata::trusted true 2>/dev/null || true
fi
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" 2>/dev/null || true
echo "NEXUS Desktop is in your application menu."
