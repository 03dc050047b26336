; Inno Setup 6 script: the Windows installer for the one-folder bundle.
;
;   1. build the bundle on Windows:  .venv\Scripts\python -m PyInstaller --noconfirm --distpath dist
;        --workpath build\pyinstaller installers\bundle\nexus.spec   (and trainer.spec, see README.md)
;   2. compile:                      iscc installers\windows\nexus.iss
;   -> dist\NEXUS-Desktop-Setup-<version>.exe
;
; It installs for the current user (no administrator needed), adds Start-menu and desktop shortcuts,
; and its uninstaller asks whether to keep the user's data (chats, characters, downloaded models):
; the platformdirs data folder %LOCALAPPDATA%\NEXUS\nexus-desktop (nexus_desktop/paths.py).  A silent
; uninstall keeps it unless given /REMOVEDATA; /KEEPDATA keeps it without asking.

#define AppName "NEXUS Desktop"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppExe "nexus-desktop.exe"
#define Bundle "..\..\dist\NEXUS-Desktop"

[Setup]
; The AppId ties upgrades and the uninstaller to this app: never change it.
AppId={{5C1E2A47-6B0D-4F7E-9D3A-8E4B2C7F1A90}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=NEXUS
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=NEXUS-Desktop-Setup-{#AppVersion}
SetupIconFile=..\..\resources\icons\nexus.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
const
  DataFolder = '{localappdata}\NEXUS\nexus-desktop';

function HasParam(Name: String): Boolean;
var
  I: Integer;
begin
  Result := False;
  for I := 1 to ParamCount do
    if CompareText(ParamStr(I), Name) = 0 then
      Result := True;
end;

{ Keep or remove the user's data once the program files are gone: asked, unless a parameter says. }
function RemoveUserData(Data: String): Boolean;
begin
  if HasParam('/REMOVEDATA') then
    Result := True
  else if HasParam('/KEEPDATA') or UninstallSilent then
    Result := False
  else
    Result := MsgBox('Also delete your NEXUS data: chats, characters, settings and downloaded models in'
      + #13#10 + Data + '?' + #13#10#13#10
      + 'Choose No to keep them for a later install.', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Data: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    Data := ExpandConstant(DataFolder);
    if DirExists(Data) and RemoveUserData(Data) then
      if not DelTree(Data, True, True, True) then
        MsgBox('Some of your NEXUS data could not be deleted; remove ' + Data + ' by hand.', mbError, MB_OK);
  end;
end;
