"""`nexus modules install|validate|approve|enable|disable`: the gallery's checks from a terminal.

Real ``nexus`` processes in a private data dir, the example module from docs/examples, real
sandboxed validation.  Approval shows the dialog's list and asks; without a terminal it needs --yes.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nexus_desktop import cli
from nexus_desktop.modules.runtime import containment
from nexus_desktop.sandbox.support import Support
from tests.test_cli import assert_one_line_error, nexus
from tests.test_cli_modules import states

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "quote-of-the-day"
NAME = "quote-of-the-day"
ASKS_FOR = """
[permissions]
network = ["api.quotes.example"]

[[credentials]]
name = "api_key"
instructions = "Copy the key from your quotes account page."
"""


def example_asking_for_access(tmp_path: Path) -> Path:
    """The example module, asking for a host and a secret (it uses neither; its tests still pass)."""
    folder = tmp_path / NAME
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    manifest = folder / "nexus-module.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + ASKS_FOR, encoding="utf-8")
    return folder


def nexus_on_terminal(*args: str, answer: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``nexus`` with a terminal as its standard input, answering ``answer`` to its question."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir)}
    try:
        os.write(controller, answer.encode() + b"\n")  # waits in the terminal's line buffer
        return subprocess.run(
            [sys.executable, "-m", "nexus_desktop.cli", *args],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    finally:
        os.close(terminal)
        os.close(controller)


def test_install_validate_approve_then_disable_and_enable_from_the_terminal(
    private_data_dir: Path, tmp_path: Path
) -> None:
    installed = nexus(
        "modules", "install", str(example_asking_for_access(tmp_path)), data_dir=private_data_dir
    )
    assert installed.returncode == 0, installed.stderr
    assert f"Installed {NAME} 1.0.0; it awaits approval." in installed.stdout
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"

    # Nothing approves a module whose sandboxed tests have not passed, and enabling needs approval.
    early = nexus("modules", "approve", NAME, "--yes", data_dir=private_data_dir)
    assert_one_line_error(early, f"{NAME} has not passed validation", f"nexus modules validate {NAME}")
    assert early.stdout == ""  # refused before the list is even shown
    enable = nexus("modules", "enable", NAME, data_dir=private_data_dir)
    assert_one_line_error(enable, f"{NAME} 1.0.0 has not been approved as it is now; approve it first.")
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"

    validated = nexus("modules", "validate", NAME, data_dir=private_data_dir)
    assert validated.returncode == 0, validated.stderr
    assert "✓  tests: Its tests passed: 2 passed" in validated.stdout
    assert f"{NAME} passed validation; approve it with: nexus modules approve {NAME}." in validated.stdout

    # Without a terminal and without --yes: the list is shown, nothing is approved.
    unasked = nexus("modules", "approve", NAME, data_dir=private_data_dir)
    assert_one_line_error(unasked, "no terminal to ask on", "pass --yes")
    assert "  •  Connect to api.quotes.example" in unasked.stdout
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"

    approved = nexus("modules", "approve", NAME, "--yes", data_dir=private_data_dir)
    assert approved.returncode == 0, approved.stderr
    listed = approved.stdout.splitlines()
    # Every line the approval dialog lists: what it asks for, its secrets, its tests, origin, hash.
    for line in (
        "Approve Quote of the Day?",
        f"{NAME} 1.0.0 · by Module Author · installed by you",
        "  •  Use your secret api_key",
        "  api_key: Copy the key from your quotes account page.",
        "  ✓  tests: Its tests passed: 2 passed",
        f"Approved {NAME} 1.0.0; it is enabled and starts with the app.",
    ):
        assert any(row.startswith(line) for row in listed), line
    assert any(row.startswith("  •  Connect to api.quotes.example") for row in listed)
    assert any(row.startswith("Content hash (what you approve): ") and len(row) > 40 for row in listed)
    assert states(private_data_dir)[NAME][1:] == ["enabled", "approved by you"]

    disabled = nexus("modules", "disable", NAME, data_dir=private_data_dir)
    assert disabled.returncode == 0, disabled.stderr
    assert states(private_data_dir)[NAME][1:] == ["disabled", "disabled by you"]
    again = nexus("modules", "disable", NAME, data_dir=private_data_dir)
    assert_one_line_error(again, f"{NAME} is disabled already.")
    enabled = nexus("modules", "enable", NAME, data_dir=private_data_dir)
    assert enabled.returncode == 0, enabled.stderr
    assert states(private_data_dir)[NAME][1:] == ["enabled", "enabled by you"]


def test_approve_asks_on_a_terminal_and_only_yes_approves(private_data_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / f"{NAME}.zip"  # installs from a .zip just as from a folder
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(EXAMPLE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts:
                zipped.write(path, Path(NAME) / path.relative_to(EXAMPLE))
    assert nexus("modules", "install", str(archive), data_dir=private_data_dir).returncode == 0
    assert nexus("modules", "validate", NAME, data_dir=private_data_dir).returncode == 0

    declined = nexus_on_terminal("modules", "approve", NAME, answer="n", data_dir=private_data_dir)
    assert_one_line_error(declined, f"Not approved; nothing changed for {NAME}.")
    assert "Approve and enable it? [y/N]" in declined.stdout
    assert "  •  Nothing beyond its own folder" in declined.stdout
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"

    accepted = nexus_on_terminal("modules", "approve", NAME, answer="y", data_dir=private_data_dir)
    assert accepted.returncode == 0, accepted.stderr
    assert states(private_data_dir)[NAME][1] == "enabled"


def test_a_module_whose_validation_fails_is_refused_approval_until_it_passes(
    private_data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / NAME
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    tests_file = folder / "tests" / "test_quotes.py"
    tests_file.write_text(
        tests_file.read_text(encoding="utf-8") + "\n\ndef test_broken() -> None:\n    assert False\n"
    )
    assert nexus("modules", "install", str(folder), data_dir=private_data_dir).returncode == 0

    failed = nexus("modules", "validate", NAME, data_dir=private_data_dir)
    assert_one_line_error(failed, f"{NAME} failed validation (Its tests failed")
    assert "✗  tests:" in failed.stdout
    refused = nexus("modules", "approve", NAME, "--yes", data_dir=private_data_dir)
    assert_one_line_error(refused, f"{NAME} failed validation", "so it cannot be approved")
    assert states(private_data_dir)[NAME][1] == "failed"

    unknown = nexus("modules", "validate", "no-such-module", data_dir=private_data_dir)
    assert_one_line_error(unknown, "No module no-such-module is installed")
    missing = nexus("modules", "install", str(tmp_path / "nowhere"), data_dir=private_data_dir)
    assert_one_line_error(missing, "does not exist; pick the module's folder, .zip or .whl file.")


def test_with_yes_a_pc_that_cannot_enforce_everything_needs_the_weaker_guarantee_accepted(
    private_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        nexus(
            "modules", "install", str(example_asking_for_access(tmp_path)), data_dir=private_data_dir
        ).returncode
        == 0
    )
    assert nexus("modules", "validate", NAME, data_dir=private_data_dir).returncode == 0
    # An older kernel (no Landlock network rules, no namespaces): the machine, scripted.
    weak = Support("linux", landlock_abi=3, seccomp=True, namespaces=False)
    monkeypatch.setattr(containment, "detect", lambda: weak)

    assert cli.main(["modules", "approve", NAME, "--yes"]) == 1
    out, err = capsys.readouterr()
    assert "Not enforced on this PC:" in out, err
    assert "  •  Which hosts it may reach is not enforced" in out
    assert "add --accept-weaker-guarantee" in err
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"

    assert cli.main(["modules", "approve", NAME, "--yes", "--accept-weaker-guarantee"]) == 0
    assert states(private_data_dir)[NAME][1] == "enabled"
