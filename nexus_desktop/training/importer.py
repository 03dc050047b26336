"""Bring your own labelled data: a JSONL file of Alpaca, ShareGPT or ``{"text", "label"}`` rows
becomes training examples of one zoo model, beside what the app collected.

Every row is read on its own: a bad row is reported with its line number and what to fix, and the
good rows are kept.  Rows already present (the same content) are counted, not stored twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.training.datasets import DatasetError
from nexus_desktop.training.examples import IMPORTED, Example, rejection_reason
from nexus_desktop.training.tables import TrainingExample
from nexus_desktop.training.zoo import ZooSpec

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class ImportReport:
    rows: int
    added: int
    duplicates: int
    problems: tuple[str, ...]
    """One line per bad row: ``line 7: ...``."""
    missing_labels: tuple[str, ...] = ()
    """A classifier's labels with no example in the file (the model cannot learn them from it)."""

    def summary(self, model: str) -> str:
        lines = [f"Imported {self.added} of {self.rows} rows into {model}"]
        if self.duplicates:
            lines[0] += f" ({self.duplicates} were already there)"
        lines[0] += "."
        if self.problems:
            lines.append(f"{len(self.problems)} rows were skipped:")
            lines.extend(f"  {problem}" for problem in self.problems[:_SHOWN_PROBLEMS])
            if len(self.problems) > _SHOWN_PROBLEMS:
                lines.append(f"  ... and {len(self.problems) - _SHOWN_PROBLEMS} more")
        if self.missing_labels:
            lines.append("No row has the label " + ", ".join(self.missing_labels) + ": add some to teach it.")
        return "\n".join(lines)


def import_file(engine: Engine, spec: ZooSpec, path: Path) -> ImportReport:
    """Store the good rows of ``path`` as ``spec``'s examples; raises ``DatasetError`` when the file
    cannot be read or no row at all is usable (then nothing is stored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} cannot be read ({error}); pick a UTF-8 JSONL file.") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise DatasetError(
            f"{path} is empty; write one JSON object per line (Alpaca, ShareGPT or text/label)."
        )
    examples: list[Example] = []
    problems: list[str] = []
    for number, line in lines:
        try:
            example = example_from(spec, json.loads(line))
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error.msg}); write one JSON object per line")
            continue
        except ValueError as error:
            problems.append(f"line {number}: {error}")
            continue
        reason = rejection_reason(example)
        if reason is not None:
            problems.append(f"line {number}: the text is {reason.replace('_', ' ')}; it teaches nothing")
            continue
        examples.append(example)
    if not examples:
        shown = "; ".join(problems[:3])
        raise DatasetError(f"No row of {path.name} could be used, so nothing was imported: {shown}.")
    added, duplicates = _store(engine, examples)
    missing: tuple[str, ...] = ()
    if spec.labelled:
        present = {example.payload["label"] for example in examples}
        missing = tuple(label for label in spec.labels if label not in present)
    return ImportReport(len(lines), added, duplicates, tuple(problems), missing)


def example_from(spec: ZooSpec, row: Any) -> Example:
    """One row as an example of ``spec``'s kind; ``ValueError`` says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object; each line must be one {...}")
    if spec.labelled:
        return Example(spec.dataset, "classification", IMPORTED, _labelled(spec, row))
    return Example(spec.dataset, "sft", IMPORTED, {"messages": _chat(row)})


def _labelled(spec: ZooSpec, row: dict[str, Any]) -> dict[str, str]:
    if "text" in row or "label" in row:
        text, label = row.get("text"), row.get("label")
    elif "instruction" in row and "output" in row:  # Alpaca: the output is the label
        text = "\n".join(str(row[key]) for key in ("instruction", "input") if row.get(key))
        label = row.get("output")
    else:
        raise ValueError(
            f'{spec.id} learns labels: give {{"text": ..., "label": ...}} (or Alpaca, label as output)'
        )
    if not isinstance(text, str) or not text.strip():
        raise ValueError('"text" is missing or empty')
    if not isinstance(label, str) or label.strip() not in spec.labels:
        raise ValueError(f"the label {label!r} is not one of {', '.join(spec.labels)}")
    return {"text": text.strip(), "label": label.strip()}


def _chat(row: dict[str, Any]) -> list[dict[str, str]]:
    if "conversations" in row:  # ShareGPT
        turns = row["conversations"]
        if not isinstance(turns, list):
            raise ValueError('"conversations" must be a list of {"from", "value"} turns')
        messages = [_turn(turn.get("from"), turn.get("value")) for turn in turns if isinstance(turn, dict)]
        if len(messages) != len(turns):
            raise ValueError('every turn in "conversations" must be a {"from", "value"} object')
    elif "messages" in row:
        turns = row["messages"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise ValueError('"messages" must be a list of {"role", "content"} objects')
        messages = [_turn(turn.get("role"), turn.get("content")) for turn in turns]
    elif "instruction" in row and "output" in row:  # Alpaca
        prompt = "\n\n".join(str(row[key]) for key in ("instruction", "input") if row.get(key))
        messages = [_turn("user", prompt), _turn("assistant", row["output"])]
    else:
        raise ValueError('use Alpaca {"instruction", "input", "output"} or ShareGPT {"conversations": [...]}')
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with the reply to learn (an assistant/gpt turn)")
    return messages


def _turn(role: Any, content: Any) -> dict[str, str]:
    if role not in _ROLES:
        raise ValueError(f"the role {role!r} is not one of human, gpt, user, assistant, system")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"a {role} turn has no text")
    return {"role": _ROLES[role], "content": content}


def _store(engine: Engine, examples: list[Example]) -> tuple[int, int]:
    """Insert the examples not already stored, in one transaction; returns (added, duplicates)."""
    rows: dict[str, Example] = {}
    for example in examples:
        payload_json = example.payload_json()
        rows.setdefault(example.content_hash(payload_json), example)
    with Session(engine) as s:
        known = set(
            s.exec(
                select(TrainingExample.content_hash).where(col(TrainingExample.content_hash).in_(list(rows)))
            )
        )
        for digest, example in rows.items():
            if digest not in known:
                s.add(
                    TrainingExample(
                        dataset=example.dataset,
                        kind=example.kind,
                        signal=example.signal,
                        content_hash=digest,
                        payload=example.payload,
                    )
                )
        s.commit()
    added = len(rows) - len(known)
    return added, len(examples) - added
