"""Installing a module copies it whole into the modules folder or not at all, and refuses attacks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nexus_desktop.modules import install
from nexus_desktop.modules.errors import InstallError, ManifestError
from nexus_desktop.modules.install import content_hash, install_module, installed_versions
from tests.hostile.modules import (
    wheel_from,
    write_module,
    zip_bomb,
    zip_folder,
    zip_with_entries,
    zip_with_symlink,
)


@pytest.fixture
def modules_dir(tmp_path: Path) -> Path:
    return tmp_path / "modules"


@pytest.fixture
def module(tmp_path: Path) -> Path:
    return write_module(tmp_path / "src" / "dice")


def leftovers(modules_dir: Path) -> list[str]:
    """Everything in the modules folder except the (empty) staging area."""
    staging = modules_dir / install.STAGING_DIR
    assert not staging.exists() or not any(staging.iterdir()), "staging was not cleaned up"
    return sorted(
        p.relative_to(modules_dir).as_posix()
        for p in modules_dir.rglob("*")
        if staging not in p.parents and p != staging
    )


def test_a_folder_installs_into_name_and_version(modules_dir: Path, module: Path) -> None:
    result = install_module(module, modules_dir)
    assert result.path == modules_dir / "dice-roller" / "1.0.0"
    assert (result.path / "dice_roller" / "main.py").read_text() == (
        module / "dice_roller" / "main.py"
    ).read_text()
    assert result.content_hash == content_hash(module)
    assert result.origin == "installed"
    assert not result.already_installed


def test_a_zip_with_the_module_in_one_top_folder_installs(
    tmp_path: Path, modules_dir: Path, module: Path
) -> None:
    archive = zip_folder(module, tmp_path / "dice.zip", prefix="dice-roller-main/")
    result = install_module(archive, modules_dir)
    assert result.content_hash == content_hash(module)


def test_a_wheel_installs_like_a_zip(tmp_path: Path, modules_dir: Path, module: Path) -> None:
    archive = wheel_from(
        module, tmp_path / "dice_roller-1.0.0-py3-none-any.whl", name="dice-roller", version="1.0.0"
    )
    result = install_module(archive, modules_dir)
    assert (result.path / "nexus-module.json").is_file()
    assert result.version == "1.0.0"


def test_content_hash_is_the_same_on_every_copy_and_ignores_bytecode(tmp_path: Path, module: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(module, copy)
    (copy / "dice_roller" / "__pycache__").mkdir()
    (copy / "dice_roller" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0" * 16)
    os.utime(copy / "dice_roller" / "main.py", (0, 0))  # timestamps are not content
    assert content_hash(copy) == content_hash(module)


def test_content_hash_changes_with_a_byte_a_new_file_or_a_rename(module: Path) -> None:
    original = content_hash(module)
    main = module / "dice_roller" / "main.py"
    main.write_text(main.read_text() + "#")
    changed = content_hash(module)
    (module / "extra.txt").write_text("")
    added = content_hash(module)
    (module / "extra.txt").rename(module / "other.txt")
    renamed = content_hash(module)
    assert len({original, changed, added, renamed}) == 4


def test_newer_versions_install_beside_older_ones_for_rollback(tmp_path: Path, modules_dir: Path) -> None:
    for version in ("1.0.0", "1.10.0", "1.2.0"):
        install_module(write_module(tmp_path / version, version=version), modules_dir)
    assert installed_versions("dice-roller", modules_dir) == ["1.10.0", "1.2.0", "1.0.0"]


def test_installing_the_same_content_again_changes_nothing(modules_dir: Path, module: Path) -> None:
    install_module(module, modules_dir)
    again = install_module(module, modules_dir)
    assert again.already_installed


def test_same_version_with_different_content_is_refused(modules_dir: Path, module: Path) -> None:
    install_module(module, modules_dir)
    (module / "dice_roller" / "main.py").write_text("# changed\n")
    with pytest.raises(
        InstallError, match=r"dice-roller 1.0.0 is already installed with different content; raise"
    ):
        install_module(module, modules_dir)


def test_zip_slip_entry_is_refused_and_nothing_is_written(
    tmp_path: Path, modules_dir: Path, module: Path
) -> None:
    archive = zip_with_entries(tmp_path / "slip.zip", {"../../escaped.py": b"print('owned')"}, base=module)
    with pytest.raises(InstallError) as caught:
        install_module(archive, modules_dir)
    assert str(caught.value) == (
        "slip.zip was refused: the entry '../../escaped.py' uses '..' to climb out of the module folder "
        "(a zip-slip attack)."
    )
    assert not list(tmp_path.rglob("escaped.py"))
    assert leftovers(modules_dir) == []


@pytest.mark.parametrize("entry", ["/tmp/escaped.py", "C:/Windows/escaped.py", "C:\\escaped.py"])
def test_absolute_archive_entries_are_refused(
    tmp_path: Path, modules_dir: Path, module: Path, entry: str
) -> None:
    archive = zip_with_entries(tmp_path / "abs.zip", {entry: b""}, base=module)
    with pytest.raises(InstallError, match="has an absolute path"):
        install_module(archive, modules_dir)


def test_a_symlink_inside_a_zip_is_refused(tmp_path: Path, modules_dir: Path, module: Path) -> None:
    archive = zip_with_symlink(tmp_path / "link.zip", module, "dice_roller/secrets", "/home")
    with pytest.raises(InstallError) as caught:
        install_module(archive, modules_dir)
    assert str(caught.value) == (
        "link.zip was refused: the entry 'dice_roller/secrets' is a link (to '/home'); "
        "a module archive may hold only plain files."
    )


def test_a_folder_with_a_symlink_pointing_outside_is_refused(
    tmp_path: Path, modules_dir: Path, module: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    os.symlink(secret, module / "dice_roller" / "data.txt")
    with pytest.raises(InstallError) as caught:
        install_module(module, modules_dir)
    assert str(caught.value) == (
        f"dice_roller/data.txt in dice is a link to {secret}, outside the module; "
        "replace the link with the file itself."
    )
    assert leftovers(modules_dir) == []


def test_a_symlink_inside_the_folder_is_installed_as_a_plain_copy(modules_dir: Path, module: Path) -> None:
    (module / "notes.txt").write_text("hello")
    os.symlink(module / "notes.txt", module / "alias.txt")
    result = install_module(module, modules_dir)
    assert not (result.path / "alias.txt").is_symlink()
    assert (result.path / "alias.txt").read_text() == "hello"


def test_a_zip_bomb_is_stopped_at_the_size_limit(
    tmp_path: Path, modules_dir: Path, module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lower limits keep the test light; the check is the same at any size.
    monkeypatch.setattr(install, "MAX_FILE_BYTES", 2 * 1024 * 1024)
    archive = zip_bomb(tmp_path / "bomb.zip", module, size=8 * 1024 * 1024)
    assert archive.stat().st_size < 100_000
    with pytest.raises(
        InstallError, match=r"data/zeros.bin in bomb.zip is over 2 MB, too large for a module"
    ):
        install_module(archive, modules_dir)
    assert leftovers(modules_dir) == []


def test_an_archive_with_too_many_files_is_refused(
    tmp_path: Path, modules_dir: Path, module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "MAX_FILES", 10)
    archive = zip_with_entries(tmp_path / "many.zip", {f"data/{i}.txt": b"" for i in range(20)}, base=module)
    with pytest.raises(InstallError, match="more than the 10 a module may have"):
        install_module(archive, modules_dir)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_the_same_entry_twice_in_a_zip_is_refused(tmp_path: Path, modules_dir: Path, module: Path) -> None:
    archive = zip_with_entries(tmp_path / "twice.zip", {"dice_roller/main.py": b"# evil"}, base=module)
    with pytest.raises(InstallError, match="appears twice, so what you review might not be what runs"):
        install_module(archive, modules_dir)


def test_a_zip_with_a_10_mb_manifest_installs_nothing(
    tmp_path: Path, modules_dir: Path, module: Path
) -> None:
    (module / "nexus-module.json").write_bytes(b" " * (10 * 1024 * 1024))
    archive = zip_folder(module, tmp_path / "huge.zip")
    with pytest.raises(ManifestError, match=r"nexus-module\.json is 10,240 KB, over the 64 KB limit"):
        install_module(archive, modules_dir)
    assert leftovers(modules_dir) == []


def test_a_damaged_archive_is_refused_with_advice(tmp_path: Path, modules_dir: Path) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InstallError, match=r"^broken.zip is not a valid zip archive; download it again.$"):
        install_module(archive, modules_dir)


def test_an_archive_without_a_manifest_says_so(tmp_path: Path, modules_dir: Path) -> None:
    archive = zip_with_entries(tmp_path / "bare.zip", {"a/x.py": b"", "b/y.py": b""})
    with pytest.raises(
        ManifestError, match=r"bare\.zip has no nexus-module.toml at its top or in its one top folder"
    ):
        install_module(archive, modules_dir)


def test_a_name_taken_by_a_built_in_module_is_refused(modules_dir: Path, module: Path) -> None:
    with pytest.raises(InstallError) as caught:
        install_module(module, modules_dir, reserved_names={"dice-roller": "a built-in module"})
    assert str(caught.value) == (
        "A module named 'dice-roller' is already provided by a built-in module; rename yours to install it."
    )


def test_a_name_installed_with_another_origin_is_refused(
    tmp_path: Path, modules_dir: Path, module: Path
) -> None:
    install_module(module, modules_dir)
    generated = write_module(tmp_path / "gen", version="2.0.0", origin="generated")
    with pytest.raises(
        InstallError,
        match="named 'dice-roller' is already installed with origin installed; rename this generated",
    ):
        install_module(generated, modules_dir)
    assert installed_versions("dice-roller", modules_dir) == ["1.0.0"]


def test_a_missing_source_says_what_to_pick(tmp_path: Path, modules_dir: Path) -> None:
    with pytest.raises(InstallError, match=r"does not exist; pick the module's folder, .zip or .whl file."):
        install_module(tmp_path / "nope", modules_dir)
