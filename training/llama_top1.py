"""Child process: llama.cpp's top-1 next token at every position, with a LoRA adapter applied.

Reads {"model", "lora", "texts", "threads"} as JSON on stdin, prints {"tokens": [[...]], "top1": [[...]]}.
A separate process because a bad adapter can crash llama.cpp; the trainer then reports it cleanly.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    request = json.load(sys.stdin)
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(
        model_path=request["model"],
        lora_path=request.get("lora"),
        n_ctx=int(request.get("n_ctx", 512)),
        n_threads=int(request.get("threads", 1)),
        logits_all=True,
        verbose=False,
    )
    tokens: list[list[int]] = []
    top1: list[list[int]] = []
    for text in request["texts"]:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        scores = np.asarray(llm.scores[: len(ids)])
        tokens.append([int(i) for i in ids])
        top1.append([int(i) for i in scores.argmax(axis=-1)])
    sys.stdout.write(json.dumps({"tokens": tokens, "top1": top1}) + "\n")


if __name__ == "__main__":
    main()
