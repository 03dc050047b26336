"""BuildService as the chat and the gallery use it: a build started in the background reports each
step as it happens, a source that does not exist or answers nothing ends the build with a reason,
and a build cut off by the app closing is stored as stopped."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from nexus_desktop.builder.template import CURRENT_TEMPLATE
from tests.replay_server import Harness, good_dice_module, with_builder

DICE = "a tool that rolls D&D ability scores and dice like 3d6+2"
NAME = "rolls-ability-scores"
KEY = "rolls D&D ability scores"


def test_a_background_build_reports_each_step_as_it_happens(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script(KEY, [good_dice_module(NAME)])
        build_id = await h.builds.start(DICE)
        view = await h.builds.wait(build_id)
        assert view.status == "awaiting_approval"
        mine = [u for u in h.steps if u.build_id == build_id]
        assert [u.step for u in mine] == [
            "route",
            "plan",
            "plan",
            "generate",
            "validate",
            "validate",
            "result",
        ]
        assert [u.status for u in mine][-3:] == ["validating", "validating", "awaiting_approval"]
        assert mine[0].text.startswith("remote: replay-strong: A remote OpenAI-compatible provider")
        assert (
            mine[2].text
            == "Tools: the ones the request names. No hosts, no secrets. Tests: each tool on plain values."
        )
        [listed] = await h.builds.list()
        assert (listed.id, listed.template_version, listed.repair_rounds) == (build_id, CURRENT_TEMPLATE, 0)
        assert listed.seconds is not None and listed.seconds > 0
        # A second build of the same thing gets a name of its own.
        second = await h.builds.build(DICE)
        assert (second.module_name, second.status) == (f"{NAME}-2", "failed")  # the script names the first

    with_builder(tmp_path, body)


def test_a_source_no_one_configured_fails_the_build_with_the_names_there_are(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        view = await h.builds.build(DICE, source="gpt-17")
        assert view.status == "failed"
        assert view.reason.startswith("No source can write the code: No source is called 'gpt-17'")
        assert "remote: replay-strong" in view.reason
        assert h.server.requests == []
        # Positive control: naming the configured one works.
        h.server.script(KEY, [good_dice_module(NAME)])
        assert (await h.builds.build(DICE, source="replay-strong")).status == "awaiting_approval"

    with_builder(tmp_path, body)


def test_a_source_that_answers_nothing_ends_the_build_failed_and_records_the_outcome(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        view = await h.builds.build(DICE)  # nothing scripted: the server answers 404
        assert view.status == "failed"
        assert "failed" in view.reason

    with_builder(tmp_path, body)
    with sqlite3.connect(tmp_path / "nexus.db") as conn:
        assert conn.execute("SELECT outcome FROM route_decision").fetchall() == [("failed",)]


def test_a_build_cut_off_by_the_app_closing_is_stored_as_stopped(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        h.server.script(KEY, [good_dice_module(NAME)])
        h.server.open.clear()  # the source hangs on the plan
        build_id = await h.builds.start(DICE)
        for _ in range(200):
            if h.server.requests or any(u.step == "plan" for u in h.steps):
                break
            await asyncio.sleep(0.02)
        await h.builds.aclose()
        h.server.open.set()
        stored = await asyncio.to_thread(h.builds.store.get, build_id)
        assert (stored.status, stored.reason) == (
            "failed",
            "The build stopped: the app closed. Start it again.",
        )

    with_builder(tmp_path, body)
