"""The script PyInstaller freezes into each of the bundle's executables (see nexus_desktop/frozen.py)."""

from nexus_desktop.frozen import main

main()
