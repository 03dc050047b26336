#!/usr/bin/env bash
# Installs NEXUS Desktop from the unpacked NEXUS-Desktop-linux-x86_64.tar.gz for this user: the
# program goes to ~/.local/opt/NEXUS-Desktop (or $NEXUS_INSTALL_DIR), with a menu entry and a
# desktop shortcut.  No Python is needed: the folder holds everything.  Run it again to update.
#
#   tar xzf NEXUS-Desktop-linux-x86_64.tar.gz && NEXUS-Desktop/install.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGET="${NEXUS_INSTALL_DIR:-$HOME/.local/opt/NEXUS-Desktop}"
[[ -x "$HERE/nexus-desktop" ]] || {
  echo "install.sh installs the unpacked NEXUS-Desktop folder it sits in, and nexus-desktop is not beside it: unpack the tarball again." >&2
  exit 1
}
if [[ "$HERE" != "$(realpath -m "$TARGET")" ]]; then
  # Copied beside the old version, then swapped: a failed copy leaves the old one working.
  mkdir -p "$(dirname "$TARGET")"
  rm -rf "$TARGET.new"
  cp -a "$HERE" "$TARGET.new"
  rm -rf "$TARGET"
  mv "$TARGET.new" "$TARGET"
fi
bash "$TARGET/install-desktop-entry.sh"
echo "NEXUS Desktop is installed in $TARGET. To remove it: $TARGET/uninstall.sh"
