#!/usr/bin/env bash
# Removes NEXUS Desktop installed by install.sh: its folder, its menu entry and desktop shortcut.
# Your chats, characters, settings and downloaded models (the data folder) stay unless you say:
#
#   uninstall.sh --keep-data      keep them for a later install
#   uninstall.sh --remove-data    delete them too
#   uninstall.sh                  ask (keeps them when there is no one to ask)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
choice="${1:-ask}"
case "$choice" in --keep-data|--remove-data|ask) ;; *) echo "usage: $0 [--keep-data|--remove-data]" >&2; exit 2 ;; esac
[[ -x "$HERE/nexus" ]] || { echo "uninstall.sh removes the NEXUS-Desktop folder it sits in, and nexus is not beside it." >&2; exit 1; }
# The app says where its data is (NEXUS_DATA_DIR or the platform's place), before it is gone.
data="$("$HERE/nexus" -I -c "from nexus_desktop.paths import data_location; print(data_location())")"
if [[ "$choice" == "ask" ]]; then
  choice="--keep-data"
  if [[ -d "$data" && -t 0 ]]; then
    read -r -p "Also delete your NEXUS data (chats, characters, settings, models) in $data? [y/N] " answer
    if [[ "$answer" == [yY]* ]]; then choice="--remove-data"; fi
  fi
fi
if [[ "$choice" == "--remove-data" ]]; then
  case "$(realpath -m "$data")" in
    / | "$(realpath -m "$HOME")") echo "Not deleting $data: it is not a folder of NEXUS's own." >&2; exit 1 ;;
  esac
fi
bash "$HERE/install-desktop-entry.sh" --remove
rm -rf "$HERE"
if [[ "$choice" == "--remove-data" ]]; then
  rm -rf "$data"
  echo "NEXUS Desktop and its data are removed."
else
  echo "NEXUS Desktop is removed; your data is kept in $data."
fi
