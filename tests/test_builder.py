"""The module builder end to end: a request becomes a module awaiting approval, tested in the
sandbox, with the code written by a remote OpenAI-compatible provider (the replay server on
loopback, through the app's real task router and source) and the real modules service."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

from nexus_desktop.modules.lifecycle import ModuleState
from tests.replay_server import MODEL, Harness, good_dice_module, with_builder

DICE = "a tool that rolls D&D ability scores and dice like 3d6+2"
DICE_NAME = "rolls-ability-scores"


def test_a_good_build_awaits_approval_with_passing_tests_and_never_ran_outside_the_sandbox(
    tmp_path: Path,
) -> None:
    canary = tmp_path / "canary.txt"

    async def body(h: Harness) -> None:
        h.server.script("rolls D&D ability scores", [good_dice_module(DICE_NAME, canary=str(canary))])
        view = await h.builds.build(DICE)
        assert (view.status, view.module_name, view.source_name) == (
            "awaiting_approval",
            DICE_NAME,
            f"remote: {MODEL}",
        )
        assert [r.passed for r in view.rounds] == [True]
        module = await h.modules.get(DICE_NAME)
        assert module.state == ModuleState.AWAITING_APPROVAL
        assert module.card.origin == "generated"
        assert module.runtime is None or module.runtime.state != "running"
        report = await h.modules.report(DICE_NAME)
        assert report is not None and report["ok"]
        tests = next(check for check in report["checks"] if check["name"] == "tests")
        assert "5 passed" in tests["message"]
        # The plan, the first generation and the validation were each a step on the card.
        assert [u.step for u in h.steps if u.build_id == view.id][:3] == ["route", "plan", "plan"]
        assert h.steps[-1].status == "awaiting_approval"
        detail = await h.builds.round_detail(view.id, 1)
        assert detail.prompt[-1]["role"] == "user" and DICE in detail.prompt[-1]["content"]
        assert "+++ b/nexus-module.toml" in detail.diff
        assert h.collector.flush()

    with_builder(tmp_path, body)
    assert not canary.exists()  # its code ran only in the sandbox, which could not write there
    # Positive control: the same code run outside the sandbox does leave its mark.
    hooks = next((tmp_path / "builds").glob(f"build-*/round-1/{DICE_NAME}/*/hooks.py"))
    subprocess.run([sys.executable, str(hooks)], check=True, timeout=60)
    assert canary.read_text() == "the generated module ran outside the sandbox\n"
    with sqlite3.connect(tmp_path / "nexus.db") as conn:
        rows = conn.execute("SELECT signal FROM training_example WHERE dataset = 'module_builder'").fetchall()
        outcome = conn.execute("SELECT task, outcome FROM route_decision").fetchall()
    assert rows == [("module_built",)]
    assert outcome == [("codegen", "ok")]


def test_the_installed_manifest_says_generated_even_when_the_model_left_it_out(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        answer = good_dice_module(DICE_NAME).replace('origin = \\"generated\\"\\n', "")
        assert "origin" not in answer
        h.server.script("rolls D&D ability scores", [answer])
        view = await h.builds.build(DICE)
        assert view.status == "awaiting_approval"
        module = await h.modules.get(DICE_NAME)
        manifest = tomllib.loads((Path(module.card.path) / "nexus-module.toml").read_text())
        assert manifest["origin"] == "generated"

    with_builder(tmp_path, body)
