"""``nexus models fit``: the VRAM bar as text and the layers Auto would pick, in a real process."""

from __future__ import annotations

import re
from pathlib import Path

from nexus_desktop.db.store import Store
from tests.test_cli import assert_one_line_error, nexus

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bar_of(stdout: str) -> str:
    match = re.search(r"^\[([WKCR.]+)\] (.+) VRAM$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def test_what_if_an_8_gb_card_prints_the_bar_and_autos_layers(private_data_dir: Path) -> None:
    result = nexus(
        "models",
        "fit",
        MODEL,
        "--ctx",
        "8192",
        "--kv",
        "q8_0",
        "--vram-mb",
        "8192",
        data_dir=private_data_dir,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert len(bar_of(out)) == 50 and "] 8.0 GB VRAM" in out
    assert "8,192 tokens · KV cache q8_0 · 30 of 30 layers on the GPU" in out
    assert re.search(r"^  K KV cache \(q8_0\)\s+96 MB$", out, re.MULTILINE)  # 30 x 8192 x 384 x 34/32
    assert re.search(r"^  R Game reserve\s+4\.0 GB$", out, re.MULTILINE)
    assert out.strip().endswith("Auto: 30 of 30 layers on the GPU")


def test_kv_type_context_and_reserve_change_what_is_printed(private_data_dir: Path) -> None:
    def run(*options: str) -> str:
        result = nexus("models", "fit", MODEL, "--vram-mb", "8192", *options, data_dir=private_data_dir)
        assert result.returncode == 0, result.stderr
        return result.stdout

    f16 = run("--ctx", "8192")
    assert re.search(r"KV cache \(f16\)\s+180 MB", f16)  # twice the q8_0 figure, near enough
    assert re.search(r"KV cache \(f16\)\s+90 MB", run("--ctx", "4096"))
    tight = run("--ctx", "8192", "--reserve-mb", "7900")  # under 300 MB left: not one layer fits
    assert "Too large for this GPU: even 1 of 30 layers needs" in tight
    assert tight.strip().endswith("Auto: 0 of 30 layers on the GPU")


def test_the_settings_supply_what_the_options_leave_out(private_data_dir: Path) -> None:
    store = Store(private_data_dir / "nexus.db")
    try:
        store.save_settings(
            store.load_settings().model_copy(update={"kv_cache_type": "q4_0", "context_size": 2048})
        )
    finally:
        store.close()
    result = nexus("models", "fit", MODEL, "--vram-mb", "6144", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert "2,048 tokens · KV cache q4_0" in result.stdout


def test_this_cpu_only_pc_is_told_how_to_get_a_gpu_build(private_data_dir: Path) -> None:
    result = nexus("models", "fit", MODEL, "--ctx", "4096", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert "[" not in result.stdout.splitlines()[1]  # no bar of zeros
    assert "No GPU build: this llama.cpp runs on the CPU only" in result.stdout
    assert 'CMAKE_ARGS="-DGGML_CUDA=on" pip install' in result.stdout
    assert result.stdout.strip().endswith("Auto: 0 of 30 layers on the GPU")


def test_a_context_beyond_the_trained_length_is_planned_at_that_length(private_data_dir: Path) -> None:
    result = nexus("models", "fit", MODEL, "--ctx", "100000", "--vram-mb", "8192", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert "trained for 8,192 tokens; planning for that." in result.stdout
    assert "8,192 tokens · KV cache f16" in result.stdout


def test_bad_input_is_one_line_and_exit_1(private_data_dir: Path, tmp_path: Path) -> None:
    missing = nexus("models", "fit", "nothere.gguf", "--ctx", "4096", data_dir=private_data_dir)
    assert_one_line_error(missing, "Model file not found: nothere.gguf", "nexus models list")
    assert missing.returncode == 1
    page = tmp_path / "page.gguf"
    page.write_bytes(b"<!DOCTYPE html><html>Sign in</html>")
    broken = nexus("models", "fit", str(page), "--ctx", "4096", data_dir=private_data_dir)
    assert_one_line_error(broken, "is a web page, not a model")
    assert broken.returncode == 1
    zero = nexus("models", "fit", MODEL, "--ctx", "0", data_dir=private_data_dir)
    assert_one_line_error(zero, "--ctx must be a positive number, not 0.")
    assert zero.returncode == 1
