# Creates "NEXUS Desktop" shortcuts (Desktop and Start menu) for the gui-scripts launcher,
# which starts the app without a console window.
$ErrorActionPreference = "Stop"
$root = Resolve-Path (Join-Path $PSScriptRoot "..\..")
$target = Join-Path $root ".venv\Scripts\nexus-desktop.exe"
if (-not (Test-Path $target)) { throw "Set up first (see installers\windows\README.md): $target is missing." }
$icon = Join-Path $root "resources\icons\nexus.ico"
$shell = New-Object -ComObject WScript.Shell
$places = @([Environment]::GetFolderPath("Desktop"), (Join-Path $env:APPDATA "Microsoft\Windows\Start Menu\Programs"))
foreach ($place in $places) {
    $link = $shell.CreateShortcut((Join-Path $place "NEXUS Desktop.lnk"))
    $link.TargetPath = $target
    $link.WorkingDirectory = $root
    if (Test-Path $icon) { $link.IconLocation = $icon }
    $link.Description = "Chat with local characters on your own GPU"
    $link.Save()
}
Write-Host "NEXUS Desktop shortcuts created."
