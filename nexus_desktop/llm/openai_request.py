"""The body of an OpenAI-compatible chat request.

OpenAI's own fields always go; the samplers beyond them (top-k, min-p, Mirostat, DRY...) go as
extra fields under the names local servers read (``sampler_fields``).  A server that rejects
unknown fields, as OpenAI's does, names one of them (``names_a_sampler_field``), and the request
is sent again without them.
"""

from __future__ import annotations

import re
from typing import Any

from nexus_desktop.llm.contract import ChatInput, SamplingSettings


def sampler_fields(sampling: SamplingSettings) -> dict[str, Any]:
    """The samplers outside the OpenAI API, as extra body fields, each only when it is switched on.

    The names are those of llama.cpp's server, which KoboldCpp and LM Studio share; the two that
    others spell differently go under both names (``repetition_penalty`` for vLLM and KoboldCpp,
    ``mirostat_mode`` for llama-cpp-python's server).  A server ignores the names it does not know.
    """
    fields: dict[str, Any] = {}
    if sampling.top_k > 0:
        fields["top_k"] = sampling.top_k
    if sampling.min_p > 0:
        fields["min_p"] = sampling.min_p
    if sampling.typical_p < 1:
        fields["typical_p"] = sampling.typical_p
    if sampling.repeat_penalty != 1:
        fields["repeat_penalty"] = fields["repetition_penalty"] = sampling.repeat_penalty
    if sampling.mirostat_mode:
        fields["mirostat"] = fields["mirostat_mode"] = sampling.mirostat_mode
        fields["mirostat_tau"] = sampling.mirostat_tau
        fields["mirostat_eta"] = sampling.mirostat_eta
    if sampling.dry_multiplier > 0:
        fields["dry_multiplier"] = sampling.dry_multiplier
        fields["dry_base"] = sampling.dry_base
        fields["dry_allowed_length"] = sampling.dry_allowed_length
    return fields


SAMPLER_FIELD_NAMES = frozenset(
    sampler_fields(SamplingSettings(typical_p=0.5, repeat_penalty=1.2, mirostat_mode=2, dry_multiplier=1.0))
)
"""Every name ``sampler_fields`` may use."""


def request_body(
    model: str, request: ChatInput, *, include_usage: bool, with_samplers: bool
) -> dict[str, Any]:
    """The streaming ``/chat/completions`` body for ``request`` to ``model``; ``with_samplers``
    adds ``sampler_fields``, ``include_usage`` asks for token counts in a last chunk."""
    sampling = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
    }
    if sampling.presence_penalty:
        body["presence_penalty"] = sampling.presence_penalty
    if sampling.frequency_penalty:
        body["frequency_penalty"] = sampling.frequency_penalty
    if with_samplers:
        body.update(sampler_fields(sampling))
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": request.json_schema, "strict": True},
        }
    if request.grammar is not None:
        body["grammar"] = request.grammar  # llama.cpp server and vLLM; others ignore it
    return body


def names_a_sampler_field(body: dict[str, Any], status: int, message: str) -> bool:
    """Whether the server refused ``body`` over one of ``sampler_fields`` (OpenAI answers
    400 "Unrecognized request argument supplied: top_k")."""
    if status not in (400, 422):
        return False
    return any(re.search(rf"\b{name}\b", message) for name in body if name in SAMPLER_FIELD_NAMES)
