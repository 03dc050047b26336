#!/usr/bin/env bash
# Adds NEXUS Desktop to the application menu (and the desktop, if there is one) for this user,
# so it starts with a double-click.  Works in two places:
#   an installed bundle (install.sh runs it there): the bundle's own nexus-desktop
#   a checkout set up by installers/setup.sh:        .venv/bin/nexus-desktop
# With --remove it takes both away again (uninstall.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
desktop="$(xdg-user-dir DESKTOP 2>/dev/null || echo "$HOME/Desktop")"
if [[ "${1:-}" == "--remove" ]]; then
  rm -f "$apps/nexus-desktop.desktop" "$desktop/nexus-desktop.desktop"
  command -v update-desktop-database >/dev/null && update-desktop-database "$apps" 2>/dev/null || true
  exit 0
fi
if [[ -x "$HERE/nexus-desktop" ]]; then
  program="$HERE/nexus-desktop"
  icon="$HERE/_internal/resources/icons/nexus.png"
else
  ROOT="$(cd "$HERE/../.." && pwd)"
  program="$ROOT/.venv/bin/nexus-desktop"
  icon="$ROOT/resources/icons/nexus.png"
  [[ -x "$program" ]] || { echo "Run: bash installers/setup.sh --setup-only  first." >&2; exit 1; }
fi
mkdir -p "$apps"
sed -e "s|@PROGRAM@|$program|g" -e "s|@ICON@|$icon|g" "$HERE/nexus-desktop.desktop.in" > "$apps/nexus-desktop.desktop"
chmod +x "$apps/nexus-desktop.desktop"
if [[ -d "$desktop" ]]; then
  cp "$apps/nexus-desktop.desktop" "$desktop/"
  gio set "$desktop/nexus-desktop.desktop" metadata::trusted true 2>/dev/null || true
fi
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" 2>/dev/null || true
echo "NEXUS Desktop is in your application menu."
