"""Finding models: search the hub, list a repo's GGUF files with quantisation, size and fit,
and paste a repo or a file's address; a repo without GGUF files is a clear error."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cache

import pytest

from nexus_desktop.hub.errors import HubError
from nexus_desktop.hub.names import parse_reference, quantization_from_name
from nexus_desktop.hub.search import repo_models, search_repos
from tests.hub_server import COMMIT, FakeHub, running_hub, tiny_gguf


@cache
def tiny() -> bytes:
    return tiny_gguf(payload_bytes=256 * 1024)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with running_hub() as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        data = tiny()
        served.add_repo(
            "tester/Tiny-GGUF",
            {
                "README.md": b"# Tiny",
                "Tiny-Q4_K_M.gguf": data,
                "Tiny-IQ3_XS.gguf": data[:-1] + b"\x01",
                "mmproj-Tiny-F16.gguf": data,
                "BF16/Tiny-BF16-00001-of-00002.gguf": data[:1000],
                "BF16/Tiny-BF16-00002-of-00002.gguf": data[1000:],
            },
            downloads=50,
        )
        served.add_repo("tester/Other-Tiny-GGUF", {"other.Q8_0.gguf": data}, downloads=500)
        served.add_repo("tester/Tiny-safetensors", {"model.safetensors": b"weights", "config.json": b"{}"})
        yield served


def test_search_lists_repos_with_gguf_files_most_downloaded_first(hub: FakeHub) -> None:
    hits = search_repos("tiny")
    assert [hit.repo_id for hit in hits] == ["tester/Other-Tiny-GGUF", "tester/Tiny-GGUF"]
    assert hits[0].downloads == 500
    assert search_repos("no such model") == []


def test_a_repo_lists_each_gguf_model_with_quantisation_size_sha_and_fit(hub: FakeHub) -> None:
    listing = repo_models("tester/Tiny-GGUF")
    by_name = {model.name: model for model in listing.models}
    # README and the image projector are not models; the two BF16 parts are one model.
    assert set(by_name) == {"Tiny-Q4_K_M.gguf", "Tiny-IQ3_XS.gguf", "Tiny-BF16-00001-of-00002.gguf"}
    q4 = by_name["Tiny-Q4_K_M.gguf"]
    assert q4.quantization == "Q4_K_M" and q4.size == len(tiny())
    assert q4.files[0].sha256 == hashlib.sha256(tiny()).hexdigest()
    assert q4.fit  # a verdict for this PC, e.g. "CPU only" here
    split = by_name["Tiny-BF16-00001-of-00002.gguf"]
    assert split.quantization == "BF16" and len(split.files) == 2 and split.size == len(tiny())
    assert by_name["Tiny-IQ3_XS.gguf"].quantization == "IQ3_XS"
    assert listing.revision == COMMIT and listing.wanted is None


def test_a_pasted_repo_url_or_file_url_finds_the_repo_and_the_file(hub: FakeHub) -> None:
    repo_url = repo_models("https://huggingface.co/tester/Tiny-GGUF/")
    assert repo_url.repo_id == "tester/Tiny-GGUF" and repo_url.wanted is None
    file_url = repo_models(f"{hub.url}/tester/Tiny-GGUF/resolve/main/Tiny-Q4_K_M.gguf?download=true")
    assert file_url.wanted is not None and file_url.wanted.name == "Tiny-Q4_K_M.gguf"
    blob_url = repo_models(
        "https://huggingface.co/tester/Tiny-GGUF/blob/main/BF16/Tiny-BF16-00002-of-00002.gguf"
    )
    assert blob_url.wanted is not None and blob_url.wanted.name == "Tiny-BF16-00001-of-00002.gguf"


def test_a_repo_without_gguf_files_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(HubError, match="has no GGUF model files; search for its GGUF version"):
        repo_models("tester/Tiny-safetensors")
    assert repo_models("tester/Tiny-GGUF").models  # positive control: the same hub lists a GGUF repo


def test_a_missing_repo_a_bad_name_and_an_unreachable_hub_say_what_to_do(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(HubError, match="no model repo named tester/Missing"):
        repo_models("tester/Missing")
    with pytest.raises(HubError, match="give it as owner/name"):
        repo_models("just words")
    with pytest.raises(HubError, match=r"no GGUF model named nope\.gguf"):
        repo_models("https://huggingface.co/tester/Tiny-GGUF/resolve/main/nope.gguf")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(HubError, match="Cannot reach Hugging Face"):
        repo_models("tester/Tiny-GGUF")  # (search says the same, after huggingface_hub's ~20 s of retries)


@pytest.mark.parametrize(
    ("file_name", "quantization"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.Q8_0.gguf", "Q8_0"),
        ("Qwen2.5-7B-Instruct-IQ3_XS.gguf", "IQ3_XS"),
        ("gemma-2b-f16.gguf", "F16"),
        ("Mistral-7B-BF16-00001-of-00003.gguf", "BF16"),
        ("phi-3-mini-q5_k_s.gguf", "Q5_K_S"),
        ("model.gguf", None),
    ],
)
def test_the_quantisation_is_read_from_the_file_name(file_name: str, quantization: str | None) -> None:
    assert quantization_from_name(file_name) == quantization


def test_a_pasted_address_is_read_from_its_path() -> None:
    ref = parse_reference("https://huggingface.co/owner/Repo-GGUF/resolve/abc123/sub/x-Q4_0.gguf")
    assert (ref.repo_id, ref.revision, ref.filename) == ("owner/Repo-GGUF", "abc123", "sub/x-Q4_0.gguf")
    assert parse_reference("  owner/Repo-GGUF ").repo_id == "owner/Repo-GGUF"


def test_a_model_too_large_for_any_fit_says_so_before_download(hub: FakeHub) -> None:
    hub.claimed_size["Tiny-Q4_K_M.gguf"] = 10**15  # a petabyte: no PC holds it
    by_name = {model.name: model for model in repo_models("tester/Tiny-GGUF").models}
    assert by_name["Tiny-Q4_K_M.gguf"].fit == "too large for this PC"
    assert by_name["Tiny-IQ3_XS.gguf"].fit != "too large for this PC"  # positive control: a small file
