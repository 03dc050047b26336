"""Score a model (optionally with a LoRA adapter) on a labelled chat set through llama.cpp.

    python -m training.eval_router --model BASE.gguf [--lora ADAPTER.gguf] [--data FILE.jsonl]

Output is constrained by a GBNF grammar over the labels found in the data (the answers of the last
assistant turns), with ``max_tokens`` 16 so no label is truncated; greedy decoding.  Prints one
JSON object: accuracy, per-label accuracy, confusion counts and the time taken.  Needs only
llama-cpp-python, so it runs in the app's .venv as well as in .venv-train.  A quick check for
developers; the gate's benchmark runner is the real one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "resources" / "benchmarks" / "router_heldout.jsonl"


def label_grammar(labels: list[str]) -> str:
    return "root ::= " + " | ".join(json.dumps(label) for label in labels) + "\n"


def evaluate(
    model: str, lora: str | None, data: Path, threads: int = 1, limit: int | None = None
) -> dict[str, Any]:
    from llama_cpp import Llama, LlamaGrammar

    from nexus_desktop.llm.gguf_check import inspect_model, validate_lora_adapter

    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = sorted({row["messages"][-1]["content"].strip() for row in rows})
    rows = rows[:: max(1, len(rows) // limit)][:limit] if limit else rows  # spread over all labels
    if lora:  # A mismatched adapter would crash llama.cpp instead of failing cleanly.
        validate_lora_adapter(lora, inspect_model(model))
    llm = Llama(model_path=model, lora_path=lora, n_ctx=512, n_threads=threads, verbose=False)
    grammar = LlamaGrammar.from_string(label_grammar(labels), verbose=False)
    started = time.monotonic()
    correct: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    confusion: Counter[str] = Counter()
    for row in rows:
        expected = row["messages"][-1]["content"].strip()
        reply: Any = llm.create_chat_completion(
            messages=row["messages"][:-1], grammar=grammar, max_tokens=16, temperature=0.0
        )
        answer = (reply["choices"][0]["message"]["content"] or "").strip()
        seen[expected] += 1
        if answer == expected:
            correct[expected] += 1
        else:
            confusion[f"{expected}->{answer}"] += 1
    total = sum(seen.values())
    return {
        "model": Path(model).name,
        "lora": Path(lora).name if lora else None,
        "items": total,
        "accuracy": round(sum(correct.values()) / max(total, 1), 4),
        "per_label": {label: round(correct[label] / seen[label], 3) for label in labels if seen[label]},
        "confusion": dict(confusion.most_common(10)),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--lora")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    result = evaluate(args.model, args.lora, args.data, args.threads, args.limit)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
