"""The llama.cpp child process: ``python -m nexus_desktop.llm.worker``.

It speaks JSON lines.  Commands arrive on stdin::

    {"cmd": "load", "path", "n_ctx", "n_threads", "n_gpu_layers", "lora": {"path", "scale"} or null}
    {"cmd": "generate", "id": ..., "messages": [{"role", "content"}], "sampling": {...}, "continue_last"}
    {"cmd": "cancel", "id": ...}
    {"cmd": "tokenize", "id": ..., "texts": [...]}
    {"cmd": "last_prompt", "id": ...}
    {"cmd": "shutdown"}

``sampling`` holds ``contract.SamplingSettings``'s fields; its ``template`` (an
``InstructTemplate``'s fields, or null for the model's own chat template) writes the prompt.
``continue_last``: the last message is an unfinished reply, and the prompt ends with its text.

Events leave on stdout: ``hello``, ``loaded``, ``token``, ``done``, ``tokens``, ``prompt`` and ``error``
(see ``local.py`` for their fields).  Only this protocol uses the real stdout: file descriptor 1
is pointed at stderr at start-up, so anything llama.cpp or a library prints lands in the log the
parent drains from stderr.  A reader thread takes ``cancel`` and ``shutdown`` while the main
thread generates; llama.cpp's abort callback lets a cancel stop even a long prompt evaluation.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from nexus_desktop.children.jsonlines import Channel
from nexus_desktop.llm.templates import InstructTemplate

_EOF = {"cmd": "shutdown", "reason": "stdin closed"}
# The sampling fields llama-cpp-python's chat completion takes under the same names.
_LLAMA_SAMPLING = (
    "temperature", "top_p", "min_p", "top_k", "typical_p", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta", "max_tokens",
)  # fmt: skip
# SillyTavern's and llama.cpp server's default DRY sequence breakers: a repeat across them is fine.
_DRY_BREAKERS = ["\n", ":", '"', "*"]
# ggml_log_level in this llama.cpp: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
_LOG_WARN, _LOG_ERROR, _LOG_CONTINUE = 3, 4, 5


class Protocol:
    """Events to the parent, one JSON line each (``children.jsonlines.Channel``)."""

    def __init__(self) -> None:
        self._channel = Channel()

    def send(self, event: str, **fields: Any) -> None:
        self._channel.send({"event": event, **fields})


class Cancellation:
    """Which request is running and whether it should stop; shared with the reader thread.

    A cancel can overtake its own ``generate`` (it is read while the main thread is busy), so
    cancels for requests that have not begun are remembered until they do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: str | None = None
        self._early: set[str] = set()
        self.event = threading.Event()

    def begin(self, request_id: str) -> None:
        with self._lock:
            self._current = request_id
            if request_id in self._early:
                self._early.discard(request_id)
                self.event.set()
            else:
                self.event.clear()

    def end(self) -> None:
        with self._lock:
            self._current = None
            self.event.clear()

    def cancel(self, request_id: str | None) -> None:
        """Cancel ``request_id``, or whatever runs when it is None."""
        with self._lock:
            if request_id is None or request_id == self._current:
                if self._current is not None:
                    self.event.set()
            else:
                if len(self._early) > 1000:  # Cancels that arrived after their reply finished.
                    self._early.clear()
                self._early.add(str(request_id))


class LogTail:
    """llama.cpp log lines at warning level and above go to stderr; the last error explains a failure."""

    def __init__(self, llama_cpp: Any) -> None:
        self.errors: list[str] = []
        self._pending_level = 0
        self._stderr_fd = os.dup(2)  # Survives llama-cpp-python's own redirection during loading.

        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
            level = self._pending_level if level == _LOG_CONTINUE else level
            self._pending_level = level
            if level in (_LOG_WARN, _LOG_ERROR):
                message = text.decode("utf-8", errors="replace")
                os.write(self._stderr_fd, message.encode())
                if level == _LOG_ERROR and message.strip():
                    self.errors.append(message.strip())

        self._callback = on_log  # ctypes callbacks must outlive their registration.
        llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))

    def reason(self, fallback: str) -> str:
        """The most telling error llama.cpp logged, e.g. "unknown model architecture: 'xyz'"."""
        marker = "error loading model: "
        for line in self.errors:
            if marker in line:
                return line.split(marker, 1)[1]
        return self.errors[0] if self.errors else fallback


def read_commands(
    commands: queue.Queue[dict[str, Any]], cancellation: Cancellation, protocol: Protocol
) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            name = command["cmd"]
        except (ValueError, KeyError, TypeError):
            protocol.send("error", message=f"Bad command: {line[:200]!r}", kind="protocol")
            continue
        if name == "cancel":
            cancellation.cancel(command.get("id"))
            continue
        if name == "shutdown":
            cancellation.cancel(None)
        commands.put(command)
    # The parent is gone or closed the pipe: stop whatever runs and exit.
    cancellation.cancel(None)
    commands.put(_EOF)


def keep_native_stderr() -> None:
    """Stop llama-cpp-python from pointing fds 1 and 2 at /dev/null while a model loads.

    With ``verbose=False`` it silences them, which would also swallow llama.cpp's own message
    when it aborts, the one line that explains a crash.  Its chatter is still kept out: fd 1
    already goes to stderr, and the log callback passes only warnings and errors.
    """
    from llama_cpp import _utils

    silencer = getattr(_utils, "suppress_stdout_stderr", None)
    if silencer is None:
        return
    original_init = silencer.__init__

    def never_silence(self: Any, disable: bool = True) -> None:
        original_init(self, disable=True)

    silencer.__init__ = never_silence


class TemplateRefused(Exception):
    """The model's chat template refused the conversation in every shape."""


class SamplerUnavailable(Exception):
    """A sampler the request asks for is missing from this llama.cpp build."""


class Worker:
    def __init__(self, protocol: Protocol) -> None:
        import llama_cpp

        keep_native_stderr()
        self.llama_cpp = llama_cpp
        self.protocol = protocol
        self.cancellation = Cancellation()
        self.log = LogTail(llama_cpp)
        self.llm: Any = None
        self._abort_callback: Any = None
        self._shape = 0
        """Index into ``roles.SHAPES``: the first conversation shape this model's template took."""
        protocol.send(
            "hello",
            llama_cpp_version=llama_cpp.__version__,
            supports_gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
            pid=os.getpid(),
        )

    def handle(self, command: dict[str, Any]) -> None:
        handlers = {
            "load": self.load,
            "generate": self.generate,
            "tokenize": self.tokenize,
            "last_prompt": self.last_prompt,
        }
        handler = handlers.get(command["cmd"])
        if handler is None:
            self.protocol.send(
                "error", id=command.get("id"), message=f"Unknown command {command['cmd']!r}", kind="protocol"
            )
            return
        if command["cmd"] != "load" and self.llm is None:
            self.protocol.send("error", id=command.get("id"), message="No model is loaded.", kind="state")
            return
        try:
            handler(command)
        except Exception as error:  # Report and keep serving; the parent decides what to do.
            self.protocol.send(
                "error", id=command.get("id"), message=f"{type(error).__name__}: {error}", kind="internal"
            )

    def load(self, command: dict[str, Any]) -> None:
        llama_cpp = self.llama_cpp
        started = time.perf_counter()
        lora = command.get("lora") or {}
        self.log.errors.clear()
        try:
            llm = _counting_llama_class(llama_cpp)(
                model_path=command["path"],
                n_ctx=int(command["n_ctx"]),
                n_threads=int(command["n_threads"]),
                n_threads_batch=int(command["n_threads"]),
                n_gpu_layers=int(command["n_gpu_layers"]),
                lora_path=lora.get("path"),
                lora_scale=float(lora.get("scale", 1.0)),
                verbose=False,
            )
        except Exception as error:
            self.protocol.send("error", message=self.log.reason(str(error)), kind="load")
            return
        self.llm = llm
        self._shape = 0

        @llama_cpp.ggml_abort_callback  # type: ignore[untyped-decorator]
        def should_abort(_data: ctypes.c_void_p) -> bool:
            return self.cancellation.event.is_set()

        self._abort_callback = should_abort
        n_layers = int(llama_cpp.llama_model_n_layer(llm.model))
        requested_gpu = int(command["n_gpu_layers"])
        offloaded = 0
        if llama_cpp.llama_supports_gpu_offload():
            offloaded = n_layers if requested_gpu < 0 else min(requested_gpu, n_layers)
        self.protocol.send(
            "loaded",
            n_ctx=int(llm.n_ctx()),
            n_layers=n_layers,
            gpu_layers_used=offloaded,
            load_seconds=time.perf_counter() - started,
            chat_template=llm.metadata.get("tokenizer.chat_template"),
            chat_format=llm.chat_format,
        )

    @staticmethod
    def _constraint(command: dict[str, Any]) -> dict[str, Any]:
        """llama.cpp arguments that force the reply into a JSON schema or a GBNF grammar."""
        if command.get("grammar"):
            from llama_cpp import LlamaGrammar

            return {"grammar": LlamaGrammar.from_string(command["grammar"], verbose=False)}
        if command.get("json_schema"):
            return {"response_format": {"type": "json_object", "schema": command["json_schema"]}}
        return {}

    def _watch_for_abort(self, on: bool) -> None:
        """Let a cancel interrupt prompt evaluation.

        ggml calls the abort callback for every graph node, so it costs about 7% of generation
        speed; once tokens flow, the loop checks for a cancel between tokens instead.
        """
        callback = self._abort_callback if on else self.llama_cpp.ggml_abort_callback(0)
        self.llama_cpp.llama_set_abort_callback(self.llm._ctx.ctx, callback, None)

    def generate(self, command: dict[str, Any]) -> None:
        request_id = str(command["id"])
        sampling = command.get("sampling") or {}
        llm = self.llm
        self.cancellation.begin(request_id)
        started = time.perf_counter()
        first_token_at: float | None = None
        last_token_at = started
        parts: list[str] = []
        finish_reason = "stop"
        llm.counts = [0, 0]
        stream: Any = None
        try:
            self._watch_for_abort(True)
            llm.dry = self._dry(sampling)
            stream = self._chat_completion(
                list(command["messages"]),
                sampling.get("template"),
                bool(command.get("continue_last")),
                stream=True,
                **{name: sampling[name] for name in _LLAMA_SAMPLING if name in sampling},
                # llama-cpp-python derives a missing seed from the last one: the same "random" replies.
                seed=sampling.get("seed") if sampling.get("seed") is not None else random.randrange(2**31),
                stop=list(sampling.get("stop") or []),
                **self._constraint(command),
            )
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    last_token_at = time.perf_counter()
                    if first_token_at is None:
                        first_token_at = last_token_at
                        self._watch_for_abort(False)
                    parts.append(text)
                    self.protocol.send("token", id=request_id, text=text)
                finish_reason = choice.get("finish_reason") or finish_reason
                if self.cancellation.event.is_set():
                    break
        except TemplateRefused as error:
            self.protocol.send("error", id=request_id, message=str(error), kind="template")
            return
        except SamplerUnavailable as error:
            self.protocol.send("error", id=request_id, message=str(error), kind="sampler")
            return
        except ValueError as error:
            if "exceed context window" not in str(error):
                raise
            self.protocol.send("error", id=request_id, message=str(error), kind="context")
            return
        except RuntimeError:
            # llama_decode reports an abort as an error; a cancel is not a failure.
            if not self.cancellation.event.is_set():
                raise
        finally:
            if stream is not None:
                stream.close()  # Finish llama.cpp's generator before the next command.
            llm.dry = None
            cancelled = self.cancellation.event.is_set()
            self.cancellation.end()
        if first_token_at is None:
            first_token_at = last_token_at = time.perf_counter()
        self.protocol.send(
            "done",
            id=request_id,
            text="".join(parts),
            prompt_tokens=llm.counts[0],
            completion_tokens=llm.counts[1],
            first_token_seconds=first_token_at - started,
            seconds=last_token_at - first_token_at,
            finish_reason="cancelled" if cancelled else finish_reason,
        )

    def _dry(self, sampling: dict[str, Any]) -> tuple[float, float, int, int] | None:
        """DRY's arguments for ``CountingLlama``, or None when it is off."""
        multiplier = float(sampling.get("dry_multiplier") or 0.0)
        if multiplier <= 0:
            return None
        if not hasattr(self.llama_cpp, "llama_sampler_init_dry"):
            raise SamplerUnavailable(
                "This llama.cpp build has no DRY sampler; set DRY to 0 in Settings → Generation."
            )
        # The last n tokens DRY looks at: the whole context (this build reads -1 as "none").
        window = int(self.llm.n_ctx())
        return multiplier, float(sampling["dry_base"]), int(sampling["dry_allowed_length"]), window

    def _chat_completion(
        self,
        messages: list[dict[str, Any]],
        template: dict[str, str] | None,
        continue_last: bool,
        **options: Any,
    ) -> Any:
        """Start a reply.  A chosen instruct template writes the prompt; the model's own chat
        template, when it refuses the conversation, gets it in a stricter shape.
        ``continue_last``: the prompt ends with the last message's text, an unfinished reply.

        llama-cpp-python renders the template when called, before any token (a template's
        ``raise_exception`` is a ValueError), so a refused shape costs nothing to retry.
        """
        from jinja2 import TemplateError

        from nexus_desktop.llm.roles import shapes_from

        if template is not None:
            handler = _handler(_instruct_formatter(InstructTemplate(**template)), continue_last)
            return handler(llama=self.llm, messages=messages, **options)
        own = _handler(self._own_formatter(), continue_last=True) if continue_last else None
        refusals = []
        for index, shaped in shapes_from(self._shape, messages):
            try:
                if own is not None:
                    stream = own(llama=self.llm, messages=shaped, **options)
                else:
                    stream = self.llm.create_chat_completion(messages=shaped, **options)
            except (ValueError, TemplateError) as error:
                refusals.append(str(error))
                continue
            self._shape = index
            return stream
        raise TemplateRefused(refusals[0])

    def _own_formatter(self) -> Any:
        """The model's own chat template (its GGUF's), as the formatter llama-cpp-python makes of it."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise TemplateRefused("the model file carries no chat template of its own")
        eos, bos = self.llm.token_eos(), self.llm.token_bos()

        def text(token: int) -> str:
            return str(self.llm._model.token_get_text(token)) if token != -1 else ""

        return Jinja2ChatFormatter(template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos])

    def last_prompt(self, command: dict[str, Any]) -> None:
        """The prompt of the last reply as the model's tokenizer reads it back, special tokens
        included: the text the chat template made."""
        tokens = self.llm.last_prompt
        text = self.llm.detokenize(tokens, special=True).decode("utf-8", errors="replace")
        self.protocol.send("prompt", id=command.get("id"), text=text)

    def tokenize(self, command: dict[str, Any]) -> None:
        # special=True matches how the chat template's prompt is tokenized.
        counts = [
            len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            for text in command["texts"]
        ]
        self.protocol.send("tokens", id=command.get("id"), counts=counts)


def _instruct_formatter(template: InstructTemplate) -> Any:
    """A llama-cpp-python chat formatter that writes the prompt with ``template``."""
    from llama_cpp.llama_chat_format import ChatFormatterResponse

    def formatter(*, messages: list[Any], **_unused: Any) -> Any:
        return ChatFormatterResponse(prompt=template.render(messages), stop=template.stop_strings())

    return formatter


def _handler(formatter: Any, continue_last: bool) -> Any:
    """A llama-cpp-python chat handler that writes the prompt with ``formatter``: its streaming,
    stop strings, grammar and JSON-schema handling stay llama-cpp-python's own.

    ``continue_last``: the last message is an unfinished reply.  The messages before it are
    written as for a new reply, ending where the assistant's turn begins, and the reply's text
    follows with no end-of-turn after it, so the model goes on from its last word (SillyTavern's
    Continue in text-completion mode).
    """
    from llama_cpp.llama_chat_format import chat_formatter_to_chat_completion_handler

    def continuing(*, messages: list[Any], **kwargs: Any) -> Any:
        *before, unfinished = messages
        response = formatter(messages=before, **kwargs)
        return replace(response, prompt=response.prompt + str(unfinished.get("content") or ""))

    return chat_formatter_to_chat_completion_handler(continuing if continue_last else formatter)


def _counting_llama_class(llama_cpp: Any) -> Any:
    """A ``Llama`` that counts the prompt and reply tokens of each chat completion exactly, keeps
    the last prompt, and adds the DRY sampler when asked.

    ``create_chat_completion`` hands the whole tokenized prompt to ``generate``, which yields every
    sampled token, the end-of-generation token included; that is the only place both are visible.
    """
    from llama_cpp import _internals

    class CountingLlama(llama_cpp.Llama):  # type: ignore[misc]
        counts: list[int]
        last_prompt: Sequence[int] = ()
        dry: tuple[float, float, int, int] | None = None
        """(multiplier, base, allowed length, last n tokens) for the next reply, or None."""

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
            with_dry.add_dry(self._model, *self.dry, _DRY_BREAKERS)
            while llama_cpp.llama_sampler_chain_n(chain.sampler) > 0:
                llama_cpp.llama_sampler_chain_add(with_dry.sampler, move(chain.sampler, 0))
            return with_dry

    return CountingLlama


def main() -> int:
    protocol = Protocol()
    try:
        worker = Worker(protocol)
    except Exception as error:  # llama_cpp missing or broken: say so, then exit.
        protocol.send("error", message=f"{type(error).__name__}: {error}", kind="import")
        return 2
    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    reader = threading.Thread(
        target=read_commands, args=(commands, worker.cancellation, protocol), name="commands", daemon=True
    )
    reader.start()
    while True:
        command = commands.get()
        if command["cmd"] == "shutdown":
            return 0
        worker.handle(command)


if __name__ == "__main__":
    sys.exit(main())
