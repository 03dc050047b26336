"""Packaging: the wheel carries the trainer and the app's resources, and the bundle's executables
behave like the Python interpreter for the command lines the app's children are started with.

The bundle itself is built and run by installers/bundle/smoke.sh (CI), not here: it takes minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nexus_desktop import frozen
from nexus_desktop.children import launch
from nexus_desktop.sandbox.profile import Profile
from nexus_desktop.sandbox.support import Support
from nexus_desktop.training import trainer_process

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "installers" / "bundle" / "entry.py"
SOURCES = (
    "pyproject.toml",
    "installers",
    "README.md",
    "nexus_desktop",
    "training",
    "resources",
    "plugins",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps .`` of a copy of the checkout (the build writes build/ and egg-info)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("nexus_desktop-*.whl")
    return found


def test_the_wheel_holds_the_trainer_the_resources_and_the_built_in_modules(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "training/train.py" in names
    assert "training/llama_top1.py" in names
    assert "nexus_desktop/resources/icons/nexus.png" in names
    assert "nexus_desktop/resources/zoo/router.toml" in names
    assert "nexus_desktop/plugins/dice/nexus-module.toml" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.startswith(("tests/", "installers/"))]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "nexus = nexus_desktop.cli:main" in scripts
    assert "nexus-desktop = nexus_desktop.ui.app:main" in scripts


def test_an_installed_wheel_finds_its_resources_and_runs_the_trainer(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "NEXUS_DATA_DIR": str(tmp_path / "data")}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "from nexus_desktop import paths; from nexus_desktop.modules import discovery;"
            "print(paths.resources_dir()); print(discovery.bundled_modules_dir())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert where.stdout.split() == [
        str(site / "nexus_desktop" / "resources"),
        str(site / "nexus_desktop" / "plugins"),
    ]
    # The trainer runs from the installed package: a missing job file is its own JSON error line.
    trainer = subprocess.run(
        [sys.executable, "-m", "training.train", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert trainer.returncode == 1
    event = json.loads(trainer.stdout.strip().splitlines()[-1])
    assert event["event"] == "error" and "missing.json cannot be read" in event["message"]


# The frozen entry point ------------------------------------------------------------------------


def run_entry(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """installers/bundle/entry.py as the bundle runs it, under this Python (named ``python``, no app)."""
    return subprocess.run(
        [sys.executable, str(ENTRY), *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_the_entry_point_runs_code_like_python_minus_c(tmp_path: Path) -> None:
    done = run_entry(
        "-I", "-S", "-c", "import sys, json; print(json.dumps(sys.argv))", "a", "b c", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["-c", "a", "b c"]
    assert run_entry("-B", "-c", "raise SystemExit(3)", cwd=tmp_path).returncode == 3


def test_the_entry_point_runs_a_module_like_python_minus_m(tmp_path: Path) -> None:
    data = tmp_path / "in.json"
    data.write_text('{"b": 1, "a": [2]}')
    done = run_entry("-m", "json.tool", "--sort-keys", "--compact", str(data), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"a":[2],"b":1}'


def test_a_missing_module_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = run_entry("-m", "no_such_module_here", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("No module named no_such_module_here")
    assert "Traceback" not in done.stderr


def test_an_executable_that_is_no_app_says_how_to_use_it(tmp_path: Path) -> None:
    done = run_entry("--help", cwd=tmp_path)
    assert done.returncode == 1
    assert "runs Python command lines only" in done.stderr
    assert run_entry("-c", "print('ok')", cwd=tmp_path).stdout == "ok\n"  # the positive control


def test_only_python_style_command_lines_are_interpreted() -> None:
    read = frozen.interpreter_command
    assert read(["nexus", "-I", "-S", "-c", "CODE", "x"]) == frozen.Interpreted("CODE", None, ["x"])
    assert read(["nexus", "-BI", "-m", "mod", "--flag"]) == frozen.Interpreted(None, "mod", ["--flag"])
    # The app's own arguments, including its short options, are the app's.
    for argv in (
        ["nexus"],
        ["nexus", "-h"],
        ["nexus", "chat", "-m", "x"],
        ["nexus", "--version"],
        ["nexus", "-c"],
    ):
        assert read(argv) is None, argv


def test_each_executable_runs_the_app_it_is_named_after() -> None:
    from nexus_desktop import cli
    from nexus_desktop.ui import app

    assert frozen.app_for("/opt/NEXUS-Desktop/nexus") is cli.main
    assert frozen.app_for(r"C:\NEXUS Desktop\nexus-desktop.exe".replace("\\", "/")) is app.main
    assert frozen.app_for("/opt/NEXUS-Desktop/trainer/nexus-trainer") is None


# The launcher and the trainer in a bundle -------------------------------------------------------


def fake_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, trainer: bool) -> Path:
    """A bundle's layout with this process as its windowed ``nexus-desktop``."""
    bundle = tmp_path / "NEXUS-Desktop"
    (bundle / "trainer").mkdir(parents=True)
    for name in ("nexus-desktop", "nexus", *(["trainer/nexus-trainer"] if trainer else [])):
        (bundle / name).write_bytes(b"")
        (bundle / name).chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle / "nexus-desktop"))
    return bundle


def test_in_a_bundle_children_run_on_the_console_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = Support(platform="linux", landlock_abi=0, seccomp=False, namespaces=False)
    outside = launch.contained_command(["/bin/true"], Profile("test"), support=bare)
    assert outside[:4] == [sys.executable, "-I", "-S", "-c"]  # the positive control: a checkout

    bundle = fake_bundle(tmp_path, monkeypatch, trainer=False)
    inside = launch.contained_command(["/bin/true"], Profile("test"), support=bare)
    assert inside[0] == str(bundle / "nexus")
    assert inside[1:4] == ["-I", "-S", "-c"] and inside[-1] == "/bin/true"


def test_a_bundle_uses_its_own_trainer_unless_the_setting_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(trainer_process.TRAINER_PYTHON_ENV, raising=False)
    bundle = fake_bundle(tmp_path, monkeypatch, trainer=True)
    trainer = str(bundle / "trainer" / "nexus-trainer")
    assert trainer_process.default_trainer_command() == [trainer, "-m", "training.train"]
    assert trainer_process.default_trainer_command("/opt/py/bin/python")[0] == "/opt/py/bin/python"
    (bundle / "trainer" / "nexus-trainer").unlink()
    assert trainer_process.default_trainer_command()[0] != trainer  # a bundle built without it


def test_the_bundle_ships_the_whole_standard_library_but_tests_and_tk() -> None:
    spec: dict[str, object] = {}
    exec((ROOT / "installers" / "bundle" / "common.py").read_text(), spec)
    names = set(spec["stdlib_modules"]())  # type: ignore[operator]
    assert {
        "xml.etree.ElementTree",
        "email.mime.text",
        "sqlite3",
        "asyncio.subprocess",
        "unittest.mock",
    } <= names
    assert not [name for name in names if name.split(".")[0] in ("test", "tkinter", "idlelib")]
    assert not [name for name in names if ".test." in f".{name}." or name.endswith(".tests")]


# The Linux tarball's install.sh and uninstall.sh --------------------------------------------------


def unpacked_bundle(tmp_path: Path) -> Path:
    """An unpacked tarball's layout; its ``nexus`` runs this Python, as the bundle's runs its own."""
    bundle = tmp_path / "unpacked" / "NEXUS-Desktop"
    (bundle / "_internal").mkdir(parents=True)
    for name in ("install.sh", "uninstall.sh", "install-desktop-entry.sh", "nexus-desktop.desktop.in"):
        shutil.copy2(ROOT / "installers" / "linux" / name, bundle / name)
    (bundle / "nexus").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bundle / "nexus-desktop").write_text("#!/bin/sh\nexit 0\n")
    for name in ("nexus", "nexus-desktop"):
        (bundle / name).chmod(0o755)
    return bundle


def run_script(script: Path, *args: str, home: Path, data: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "NEXUS_DATA_DIR": str(data)}
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_the_tarball_installs_with_shortcuts_and_uninstalls_keeping_or_removing_data(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    (home / "Desktop").mkdir(parents=True)
    data.mkdir()
    (data / "nexus.db").write_bytes(b"chats")
    app = home / ".local" / "opt" / "NEXUS-Desktop"
    entry = home / ".local" / "share" / "applications" / "nexus-desktop.desktop"
    unpacked = unpacked_bundle(tmp_path)

    installed = run_script(unpacked / "install.sh", home=home, data=data)
    assert installed.returncode == 0, installed.stderr
    assert (app / "nexus-desktop").is_file()
    assert f'Exec="{app}/nexus-desktop"' in entry.read_text()
    assert f"Icon={app}/_internal/resources/icons/nexus.png" in entry.read_text()
    assert (home / "Desktop" / "nexus-desktop.desktop").read_text() == entry.read_text()

    # No flag and no one to ask: the data stays.
    kept = run_script(app / "uninstall.sh", home=home, data=data)
    assert kept.returncode == 0, kept.stderr
    assert f"your data is kept in {data}" in kept.stdout
    assert (
        not app.exists() and not entry.exists() and not (home / "Desktop" / "nexus-desktop.desktop").exists()
    )
    assert (data / "nexus.db").read_bytes() == b"chats"

    assert run_script(unpacked / "install.sh", home=home, data=data).returncode == 0
    assert run_script(app / "uninstall.sh", "--keep-data", home=home, data=data).returncode == 0
    assert (data / "nexus.db").read_bytes() == b"chats"

    assert run_script(unpacked / "install.sh", home=home, data=data).returncode == 0
    removed = run_script(app / "uninstall.sh", "--remove-data", home=home, data=data)
    assert removed.returncode == 0, removed.stderr
    assert not app.exists() and not data.exists()


def test_uninstall_refuses_a_bad_flag_and_a_data_folder_that_is_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    unpacked = unpacked_bundle(tmp_path)
    bad = run_script(unpacked / "uninstall.sh", "--remove-everything", home=home, data=tmp_path / "data")
    assert bad.returncode == 2 and "usage:" in bad.stderr
    refused = run_script(unpacked / "uninstall.sh", "--remove-data", home=home, data=home)
    assert refused.returncode == 1 and "Not deleting" in refused.stderr
    assert unpacked.is_dir() and home.is_dir()  # nothing was removed


# nexus-desktop --smoke-test (what installers/bundle/smoke.sh runs in the bundle) ------------------


def smoke_test(data: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NEXUS_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "nexus_desktop.ui.app", "--smoke-test"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.model
def test_the_smoke_test_starts_the_app_loads_the_bundled_model_and_exits_0(
    smollm2_path: Path, tmp_path: Path
) -> None:
    done = smoke_test(tmp_path / "data", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"{smollm2_path.name} is loaded" in done.stdout
    assert (tmp_path / "data" / "nexus.db").is_file()


def test_the_smoke_test_fails_with_the_reason_when_the_app_cannot_start(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")
    done = smoke_test(not_a_folder, tmp_path)
    assert done.returncode == 1
    assert "NEXUS smoke test failed: RuntimeError: start-up failed" in done.stdout
