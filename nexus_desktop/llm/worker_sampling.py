"""How the llama.cpp worker samples a reply: the settings llama-cpp-python takes as they are,
a JSON schema or grammar that constrains the reply, and the DRY sampler, which llama-cpp-python's
chain has no place for.  Runs inside the worker process, where llama_cpp may be imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

# The sampling fields llama-cpp-python's chat completion takes under the same names.
LLAMA_SAMPLING = (
    "temperature", "top_p", "min_p", "top_k", "typical_p", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta", "max_tokens",
)  # fmt: skip
# SillyTavern's and llama.cpp server's default DRY sequence breakers: a repeat across them is fine.
DRY_BREAKERS = ["\n", ":", '"', "*"]

DryArguments = tuple[float, float, int, int]
"""(multiplier, base, allowed length, last n tokens) of the DRY sampler."""


class SamplerUnavailable(Exception):
    """A sampler the request asks for is missing from this llama.cpp build."""


def dry_arguments(llama_cpp: Any, sampling: dict[str, Any], n_ctx: int) -> DryArguments | None:
    """DRY's arguments for ``CountingLlama``, or None when it is off."""
    multiplier = float(sampling.get("dry_multiplier") or 0.0)
    if multiplier <= 0:
        return None
    if not hasattr(llama_cpp, "llama_sampler_init_dry"):
        raise SamplerUnavailable(
            "This llama.cpp build has no DRY sampler; set DRY to 0 in Settings → Generation."
        )
    # The last n tokens DRY looks at: the whole context (this build reads -1 as "none").
    return multiplier, float(sampling["dry_base"]), int(sampling["dry_allowed_length"]), n_ctx


def constraint(command: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp arguments that force the reply into a JSON schema or a GBNF grammar."""
    if command.get("grammar"):
        from llama_cpp import LlamaGrammar

        return {"grammar": LlamaGrammar.from_string(command["grammar"], verbose=False)}
    if command.get("json_schema"):
        return {"response_format": {"type": "json_object", "schema": command["json_schema"]}}
    return {}


def counting_llama_class(llama_cpp: Any) -> Any:
    """A ``Llama`` that counts the prompt and reply tokens of each chat completion exactly, keeps
    the last prompt, and adds the DRY sampler when asked.

    ``create_chat_completion`` hands the whole tokenized prompt to ``generate``, which yields every
    sampled token, the end-of-generation token included; that is the only place both are visible.
    """
    from llama_cpp import _internals

    class CountingLlama(llama_cpp.Llama):  # type: ignore[misc]
        counts: list[int]
        last_prompt: Sequence[int] = ()
        dry: DryArguments | None = None
        """DRY's arguments for the next reply, or None."""

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Iterator[int]:
            self.counts = [len(tokens), 0]
            self.last_prompt = tokens
            for token in super().generate(tokens, *args, **kwargs):
                if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                    self.counts[1] += 1
                yield token

        def _init_sampler(self, **options: Any) -> Any:
            """llama-cpp-python's sampler chain, with DRY after its repetition penalties.

            Its chain has no place for DRY, so the samplers are moved into a new chain with DRY
            put in after the first (the penalties, first whenever no logits processor is given).
            """
            chain = super()._init_sampler(**options)
            if self.dry is None or options.get("logits_processor") is not None:
                return chain
            with_dry = _internals.LlamaSampler()
            move = llama_cpp.llama_sampler_chain_remove
            llama_cpp.llama_sampler_chain_add(with_dry.sampler, move(chain.sampler, 0))
            with_dry.add_dry(self._model, *self.dry, DRY_BREAKERS)
            while llama_cpp.llama_sampler_chain_n(chain.sampler) > 0:
                llama_cpp.llama_sampler_chain_add(with_dry.sampler, move(chain.sampler, 0))
            return with_dry

    return CountingLlama
