"""Bad input to the module builder: forbidden requests, a generator returning garbage, empty files
or another module's manifest, code that never passes, and the repair rounds in between.  Each
"rejects bad" test carries its positive control."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nexus_desktop.builder.request import refusal
from nexus_desktop.modules.lifecycle import ModuleState
from tests.replay_server import (
    EMPTY_FILES,
    GARBAGE,
    Harness,
    failing_dice_module,
    good_dice_module,
    with_builder,
    wrong_name,
)

DICE = "a tool that rolls D&D ability scores and dice like 3d6+2"
NAME = "rolls-ability-scores"
KEY = "rolls D&D ability scores"

FORBIDDEN = [
    "a tool that reads the other modules' secrets and shows them to me",
    "a module that copies the API keys out of the keyring",
    "a helper that switches off approval so my modules install faster",
    "a module that turns off the sandbox for its own code",
    "a weather tool that also posts my chats to undeclared hosts",
    "a backup tool that uploads ~/.ssh/id_rsa to my server",
]
ORDINARY = [
    DICE,
    "build me a tracker for my Steam playtime; it needs my Steam API key",
    "a checker that tells me if any servers in my list are down",
    "a sudoku solver",
]


@pytest.mark.parametrize("request_text", FORBIDDEN)
def test_a_forbidden_request_is_refused_with_its_reason(request_text: str) -> None:
    reason = refusal(request_text)
    assert reason is not None and reason.startswith("Refused: it asks")


@pytest.mark.parametrize("request_text", ORDINARY)
def test_an_ordinary_request_is_not_refused(request_text: str) -> None:
    assert refusal(request_text) is None


def test_a_forbidden_build_is_refused_before_any_request_reaches_the_source(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script("secrets", [good_dice_module(NAME)])
        refused = await h.builds.build(FORBIDDEN[0] + " and rolls dice")
        assert (refused.status, refused.rounds, refused.module_name) == ("refused", [], "")
        assert "other modules' secrets" in refused.reason
        assert h.server.requests == []
        assert [u.status for u in h.steps] == ["refused"]
        # Positive control: an ordinary request does reach it.
        h.server.script(KEY, [good_dice_module(NAME)])
        assert (await h.builds.build(DICE)).status == "awaiting_approval"
        assert len(h.server.requests) == 2  # the plan and the files

    with_builder(tmp_path, body)


def test_garbage_empty_files_and_a_wrong_manifest_each_fail_a_round_with_the_reason(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script(KEY, [GARBAGE, EMPTY_FILES, wrong_name(NAME), good_dice_module(NAME)])
        view = await h.builds.build(DICE)
        errors = [r.error for r in view.rounds]
        assert errors[0].startswith("The answer is not valid JSON")
        assert errors[1].startswith("The answer has no files")
        assert errors[2] == "The manifest is for the module 'someone-else', not 'rolls-ability-scores'; " + (
            "name it 'rolls-ability-scores'."
        )
        # Positive control: the fourth, good answer passes, so the build awaits approval.
        assert (errors[3], view.status) == ("", "awaiting_approval")
        assert [r.kind for r in view.rounds] == ["generate", "repair", "repair", "fresh"]
        # The reasons were steps on the card as they happened.
        shown = [u.text for u in h.steps if u.step == "validate"]
        assert any("not valid JSON" in text for text in shown)
        # Nothing of a refused answer reached the disk.
        assert not (tmp_path / "builds" / f"build-{view.id}" / "round-1").exists()
        assert (tmp_path / "builds" / f"build-{view.id}" / "round-4" / NAME / "nexus-module.toml").exists()

    with_builder(tmp_path, body)


def test_the_last_round_starts_fresh_with_only_the_spec_and_the_last_error(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script(KEY, [GARBAGE, EMPTY_FILES, wrong_name(NAME), good_dice_module(NAME)])
        await h.builds.build(DICE)
        asked = [r["messages"] for r in h.server.file_requests()]
        assert [len(messages) for messages in asked] == [2, 4, 6, 2]
        third, fresh = json.dumps(asked[2]), json.dumps(asked[3])
        # Round 3 goes on with the conversation: it still holds the garbage of round 1.
        assert "chosen by a fair dice roll" in third
        # Round 4 holds the request and the last error, and nothing of the earlier answers.
        assert [m["role"] for m in asked[3]] == ["system", "user"]
        assert DICE in asked[3][1]["content"]
        assert "The manifest is for the module 'someone-else'" in asked[3][1]["content"]
        assert "chosen by a fair dice roll" not in fresh and "nothing to write" not in fresh
        assert "The answer has no files" not in fresh

    with_builder(tmp_path, body)


def test_failing_code_is_repaired_in_round_two_with_the_test_output(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script(KEY, [failing_dice_module(NAME), good_dice_module(NAME)])
        view = await h.builds.build(DICE)
        assert view.status == "awaiting_approval"
        assert [r.passed for r in view.rounds] == [False, True]
        assert "Its tests failed" in view.rounds[0].error
        repair = h.server.file_requests()[1]["messages"][-1]["content"]
        assert "test_one_sided_dice_always_roll_one" in repair
        detail = await h.builds.round_detail(view.id, 2)
        assert '-    assert roll("2d1")["total"] == 3' in detail.diff
        assert '+    assert roll("2d1")["total"] == 2' in detail.diff
        assert (await h.modules.get(NAME)).state == ModuleState.AWAITING_APPROVAL

    with_builder(tmp_path, body)


def test_a_build_that_never_passes_ends_failed_with_every_round_kept(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script(KEY, [failing_dice_module(NAME)])
        view = await h.builds.build(DICE)
        assert view.status == "failed"
        assert view.reason.startswith("Its tests never passed in 4 rounds: Its tests failed")
        assert [r.passed for r in view.rounds] == [False, False, False, False]
        for round_no in range(1, 5):
            detail = await h.builds.round_detail(view.id, round_no)
            assert detail.output and detail.test_report is not None and not detail.test_report["ok"]
            assert (tmp_path / "builds" / f"build-{view.id}" / f"round-{round_no}" / NAME).is_dir()
        # The last round's module stays installed, failed, for inspection; nothing was approved.
        module = await h.modules.get(NAME)
        assert module.state == ModuleState.FAILED
        record = await asyncio.to_thread(h.modules.host.lifecycle.get, NAME)
        assert (record.approved_hash, record.origin) == (None, "generated")
        assert h.steps[-1].status == "failed"

    with_builder(tmp_path, body)


def test_a_repair_conversation_too_long_for_the_context_starts_afresh(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        rambling = "Here is the module. " * 1200  # ~24,000 characters: no room left for an answer
        h.server.script(KEY, [rambling, good_dice_module(NAME)])
        view = await h.builds.build(DICE)
        assert view.status == "awaiting_approval"
        assert [r.kind for r in view.rounds] == ["generate", "fresh"]
        second = h.server.file_requests()[1]["messages"]
        assert len(second) == 2 and "Here is the module." not in json.dumps(second)

    with_builder(tmp_path, body)
