"""The build loop: plan, generate, validate, repair; at most ``MAX_REPAIR_ROUNDS`` repairs.

Round 1 generates the module; rounds 2 and 3 go on with the conversation (the model sees its own
answer and what failed); the last round starts a fresh conversation with only the spec and the
last error.  Self-repair studies measure most of the gain in the first two repairs, and models
losing their debugging ability over long repair conversations.

Validation is the modules service's own: the files are written to a staging folder, installed
(origin generated) and validated in the kernel sandbox without any granted permission, exactly as
a module from anywhere else.  So whatever the generated code tries is contained, and nothing of
it runs outside the sandbox before a person approves it.  Whether a build passed is decided by
that validation report alone, never by anything the model or the module's output says.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_desktop.builder.output import FILES_SCHEMA, GeneratedFiles, OutputError, answer_json, parse_files
from nexus_desktop.builder.store import BuildStore
from nexus_desktop.builder.template import Template
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ModelError,
    ModelSource,
    RunContext,
    SamplingSettings,
)
from nexus_desktop.modules.errors import ModuleError
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.training.examples import ModuleBuilt, Signal

log = logging.getLogger(__name__)

MAX_REPAIR_ROUNDS = 3
TEST_OUTPUT_LINES = 40
MIN_ANSWER_TOKENS = 1024
"""Room a repair conversation must leave for the answer, or the round starts afresh."""
_SAMPLING = SamplingSettings(temperature=0.2, top_p=0.95, repeat_penalty=1.0, max_tokens=512)
"""Code repeats itself legitimately (indentation, names): no repetition penalty for the files."""
_PLAN_REPEAT_PENALTY = 1.15
"""Prose does not: a small model's plan otherwise loops on one phrase."""


@dataclasses.dataclass(frozen=True)
class BuildUpdate:
    """One step of a build, for the build card, the gallery and the CLI."""

    build_id: int
    step: str
    """route, plan, generate, validate, repair or result."""
    status: str
    text: str


class BuildLoop:
    def __init__(
        self,
        store: BuildStore,
        modules: ModuleService,
        staging_dir: Path,
        emit: Callable[[BuildUpdate], None],
        collect: Callable[[Signal], None],
        run: Callable[..., Any],
    ) -> None:
        self.store = store
        self.modules = modules
        self.staging_dir = staging_dir
        self.emit = emit
        self.collect = collect
        self._run = run
        """``await run(function, *args)``: blocking store calls off the event loop."""

    async def run(
        self, build_id: int, description: str, name: str, source: ModelSource, template: Template
    ) -> tuple[bool, str]:
        """Build ``name`` from ``description``; (whether it awaits approval, the last error)."""
        await self._status(build_id, "planning", "plan", f"Planning {name}…")
        plan_messages = template.plan_messages(description, name)
        plan = (
            await self._ask(
                source, plan_messages, template.max_plan_tokens, repeat_penalty=_PLAN_REPEAT_PENALTY
            )
        ).strip()
        await self._run(self.store.update, build_id, plan=plan)
        self.emit(BuildUpdate(build_id, "plan", "planning", plan or "(the model wrote no plan)"))

        first = template.generate_messages(description, name, plan)
        conversation = list(first)
        previous: dict[str, str] = {}
        error = ""
        last_round = 1 + MAX_REPAIR_ROUNDS
        for round_no in range(1, last_round + 1):
            if round_no == 1:
                kind, messages = "generate", first
            elif round_no == last_round:
                kind, messages = "fresh", template.fresh_messages(description, name, plan, error)
            else:
                conversation.append(template.repair_message(error))
                kind, messages = "repair", tuple(conversation)
                if not await self._fits(source, messages):  # a small context: start afresh instead
                    kind, messages = "fresh", template.fresh_messages(description, name, plan, error)
            step = "generate" if round_no == 1 else "repair"
            status = "generating" if round_no == 1 else "repairing"
            what = "writing the manifest, code and tests" if round_no == 1 else "repairing it with the errors"
            fresh = " from a fresh start with only the spec and the last error" if kind == "fresh" else ""
            await self._status(build_id, status, step, f"Round {round_no}: {what}{fresh}…")
            await self._run(self.store.add_round, build_id, round_no, kind, [_message(m) for m in messages])
            passed, error, output, files = await self._round(
                build_id, round_no, name, source, template, messages, previous
            )
            if passed:
                self._collect_example(build_id, name, first, output)
                return True, ""
            if files is not None:
                previous = files
            conversation.append(ChatMessage("assistant", output))
            if round_no < last_round:
                await self._uninstall(name)  # frees the version for the next round's files
        return False, error

    async def _round(
        self,
        build_id: int,
        round_no: int,
        name: str,
        source: ModelSource,
        template: Template,
        messages: tuple[ChatMessage, ...],
        previous: dict[str, str],
    ) -> tuple[bool, str, str, dict[str, str] | None]:
        """(passed, error, the model's answer, the parsed files) of one round, stored."""
        try:
            output = await self._ask(source, messages, template.max_files_tokens, json_schema=FILES_SCHEMA)
        except ModelError as failure:
            error = f"The model failed: {failure}"
            await self._finish(build_id, round_no, "", error)
            self.emit(BuildUpdate(build_id, "validate", "repairing", f"Round {round_no} failed: {error}"))
            return False, error, "", None
        try:
            generated = parse_files(output, name)
        except OutputError as failure:
            error = str(failure)
            await self._finish(build_id, round_no, output, error)
            self.emit(BuildUpdate(build_id, "validate", "repairing", f"Round {round_no} failed: {error}"))
            return False, error, output, None
        files = generated.files
        folder = await self._run(self._write, build_id, round_no, name, generated)
        diff = _diff(previous, files)
        await self._run(self.store.update, build_id, staging_path=str(folder))
        await self._status(
            build_id, "validating", "validate", f"Round {round_no}: testing it in the sandbox…"
        )
        try:
            await self.modules.install(folder)
            report = await self.modules.validate(name)
        except (ModuleError, OSError) as failure:
            report = {"ok": False, "error": f"It could not be installed: {failure}", "checks": []}
        passed = bool(report.get("ok"))
        error = "" if passed else _failure_text(report)
        await self._run(
            self.store.finish_round,
            build_id,
            round_no,
            output=output,
            files=[{"path": p, "content": c} for p, c in files.items()],
            diff=diff,
            test_report=report,
            passed=passed,
        )
        summary = "its tests passed in the sandbox" if passed else f"failed: {report.get('error')}"
        self.emit(BuildUpdate(build_id, "validate", "validating", f"Round {round_no}: {summary}"))
        return passed, error, output, files

    async def _fits(self, source: ModelSource, messages: tuple[ChatMessage, ...]) -> bool:
        used = sum(await source.count_tokens([m.content for m in messages]))
        return used + MIN_ANSWER_TOKENS <= source.context_size

    async def _ask(
        self,
        source: ModelSource,
        messages: tuple[ChatMessage, ...],
        max_tokens: int,
        *,
        json_schema: dict[str, Any] | None = None,
        repeat_penalty: float = _SAMPLING.repeat_penalty,
    ) -> str:
        used = sum(await source.count_tokens([m.content for m in messages])) + 64
        room = max(256, min(max_tokens, source.context_size - used))
        sampling = dataclasses.replace(_SAMPLING, max_tokens=room, repeat_penalty=repeat_penalty)
        reply = await source(ChatInput(messages, sampling, json_schema=json_schema), RunContext())
        return reply.text

    def _collect_example(self, build_id: int, name: str, first: tuple[ChatMessage, ...], output: str) -> None:
        # The training example is the first prompt and the answer that passed (not the repairs):
        # what a code model should learn to write at once.
        try:
            files = parse_files(output, name).files
            model_files = {path: text for path, text in files.items() if path != "conftest.py"}
            self.collect(ModuleBuilt(tuple((m.role, m.content) for m in first), answer_json(model_files)))
        except Exception:  # training data is a by-product: never a reason for a build to fail
            log.exception("Could not collect build %s as a training example", build_id)

    async def _finish(self, build_id: int, round_no: int, output: str, error: str) -> None:
        await self._run(self.store.finish_round, build_id, round_no, output=output, parse_error=error)

    async def _status(self, build_id: int, status: str, step: str, text: str) -> None:
        await self._run(self.store.update, build_id, status=status)
        self.emit(BuildUpdate(build_id, step, status, text))

    async def _uninstall(self, name: str) -> None:
        try:
            await self.modules.uninstall(name)
        except ModuleError:
            pass  # this round's files never got installed

    def _write(self, build_id: int, round_no: int, name: str, generated: GeneratedFiles) -> Path:
        """The round's files in their own staging folder (kept for inspection)."""
        folder = self.staging_dir / f"build-{build_id}" / f"round-{round_no}" / name
        if folder.exists():
            shutil.rmtree(folder)
        for relative, text in generated.files.items():
            target = folder / relative
            if not target.resolve().is_relative_to(folder.resolve()):  # parse_files refused these already
                raise OutputError(f"{relative} leaves the module folder.")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return folder


def _message(message: ChatMessage) -> dict[str, str]:
    return {"role": message.role, "content": message.content}


def _diff(previous: dict[str, str], files: dict[str, str]) -> str:
    """What changed since the previous round's files (everything, in round 1)."""
    chunks: list[str] = []
    for path in sorted(set(previous) | set(files)):
        before, after = previous.get(path, ""), files.get(path, "")
        if before != after:
            chunks += difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"a/{path}" if path in previous else "/dev/null",
                tofile=f"b/{path}" if path in files else "/dev/null",
            )
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def _failure_text(report: dict[str, Any]) -> str:
    """What failed, for the repair prompt: each failing check's problems and the tests' last lines."""
    lines = [str(report.get("error") or "It failed validation.")]
    for check in report.get("checks", []):
        if check.get("ok"):
            continue
        lines += [f"- {problem}" for problem in check.get("problems", [])[:10]]
        output = check.get("output") or []
        if output:
            lines.append(f"Last lines of the {check.get('name')} output:")
            lines += [str(line) for line in output[-TEST_OUTPUT_LINES:]]
    return "\n".join(lines)
