"""The gateway's routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Model ids are the active model (its file name, or the remote server's model) and each
character's name.  A character answers as it does in the chat: its card's system prompt built
by ``chat.prompt.build_prompt`` (the client's messages are the history), its persona adapter,
under its governor policy (tokens reserved before the call, settled after, released on failure;
a spent budget is a 429 with the governor's sentence).  Every call becomes a ``model_call`` row
(service ``gateway``) through the same ``MeteredSource`` the chat uses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.metering import MeteredSource
from nexus_desktop.chat.personas import list_personas, suggested_name
from nexus_desktop.chat.prompt import PromptTooLongError, Turn, build_prompt
from nexus_desktop.chat.sources import GameModeError, local_model_path, model_label
from nexus_desktop.control.governor import BudgetSpentError, TokenGrant
from nexus_desktop.control.policy import Policy, PolicyError
from nexus_desktop.gateway.http import HttpError, Reply, Request
from nexus_desktop.gateway.openai_map import (
    Completion,
    CompletionRequest,
    models_list,
    parse_request,
    sampling,
)
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatOutput,
    ModelError,
    ModelFileError,
    ModelSource,
    RunContext,
    SamplingSettings,
    StreamEvent,
    TokenEvent,
)
from nexus_desktop.settings import Settings

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character

log = logging.getLogger(__name__)

SERVICE = "gateway"


def active_model_id(settings: Settings) -> str:
    """The id ``/v1/models`` gives the active model, known without loading it."""
    if settings.source == "remote":
        return settings.remote_model or "remote"
    if settings.source == "local":
        try:
            return local_model_path(settings).name
        except ModelFileError:
            return "nexus"
    return model_label(settings)


@dataclass
class Call:
    """One prepared model call: the metered source, the request, and the character's grant."""

    source: MeteredSource
    request: ChatInput
    grant: TokenGrant | None = None
    settled: bool = False


class Gateway:
    def __init__(self, core: AppCore, get_key: Callable[[], str]) -> None:
        self.core = core
        self.get_key = get_key
        self.started = int(time.time())
        self.replying = 0
        """Replies being written now: keep-alive and game mode wait for them as for the chat's."""
        self.routes = {
            ("GET", "/v1/models"): self.models,
            ("POST", "/v1/chat/completions"): self.completions,
        }

    async def authorize(self, request: Request) -> None:
        from nexus_desktop.gateway.key import key_matches

        if not key_matches(request.headers.get("authorization"), self.get_key()):
            raise HttpError(
                401,
                "Send the NEXUS gateway key as 'Authorization: Bearer <key>' "
                "(Settings → Other apps shows it; so does 'nexus gateway key').",
                kind="authentication_error",
                code="invalid_api_key",
            )

    async def models(self, _request: Request, reply: Reply) -> None:
        await reply.json(200, models_list(await self._model_ids(), self.started))

    async def _model_ids(self) -> list[str]:
        characters = await self.core.db.call(self.core.store.list_characters)
        ids = [active_model_id(self.core.settings)]
        ids += [c.name for c in characters if c.name not in ids]
        return ids

    async def completions(self, request: Request, reply: Reply) -> None:
        asked = parse_request(request.json())
        call = await self._prepare(asked)
        try:
            await self._answer(asked, call, reply)
        finally:
            await self._settle(call, None)  # a reply that never ran (the client left) frees its grant

    async def _answer(self, asked: CompletionRequest, call: Call, reply: Reply) -> None:
        completion = Completion.new(asked.model)
        run = RunContext()
        if not asked.stream:
            output: ChatOutput | None = None
            try:
                async with contextlib.aclosing(self._run(call, run)) as events:
                    async for event in events:
                        if isinstance(event, ChatOutput):
                            output = event
            except ModelError as error:
                raise _failed(error) from error
            assert output is not None
            await reply.json(200, completion.whole(output))
            return
        await reply.start_events()
        await reply.event(json.dumps(completion.chunk({"role": "assistant", "content": ""})))
        try:
            # Closed on the way out: a client gone mid-stream stops the model and frees the grant.
            async with contextlib.aclosing(self._run(call, run)) as streamed:
                async for event in streamed:
                    if isinstance(event, TokenEvent):
                        await reply.event(json.dumps(completion.chunk({"content": event.text})))
                    else:
                        await reply.event(json.dumps(completion.last_chunk(event)))
        except ModelError as error:  # the answer has begun: the error goes in the stream
            await reply.event(json.dumps(_failed(error).body()))
        await reply.event("[DONE]")
        await reply.end_events()

    async def _run(self, call: Call, run: RunContext) -> AsyncGenerator[StreamEvent, None]:
        """The call's events; a grant is settled when it finishes and released otherwise (a
        failure, or a client gone mid-stream, which also stops the model)."""
        output: ChatOutput | None = None
        self.replying += 1
        try:
            async with contextlib.aclosing(self._events(call, run)) as events:
                try:
                    async for event in events:
                        if isinstance(event, ChatOutput):
                            output = event
                        yield event
                except BaseException:
                    run.cancel.cancel()
                    raise
            if output is None:
                raise ModelError("The model stopped without finishing its reply. Try again.")
        finally:
            self.replying -= 1
            await self._settle(call, output)

    @staticmethod
    def _events(call: Call, run: RunContext) -> AsyncGenerator[StreamEvent, None]:
        # MeteredSource.stream is an async generator; the contract only promises an iterator.
        return cast(AsyncGenerator[StreamEvent, None], call.source.stream(call.request, run))

    async def _settle(self, call: Call, output: ChatOutput | None) -> None:
        """Count a finished call's tokens (``output``), or release its grant; once per call."""
        if call.grant is None or call.settled:
            return
        call.settled = True
        governor = self.core.governor
        if output is None:
            await self.core.db.call(governor.release, call.grant)
        else:
            used = output.stats.prompt_tokens + output.stats.completion_tokens
            await self.core.db.call(governor.settle_tokens, call.grant, used, reply=bool(output.text))

    # Preparing a call --------------------------------------------------------------------------

    async def _prepare(self, asked: CompletionRequest) -> Call:
        settings = self.core.settings
        base = sampling(asked.body, settings.sampling())
        if asked.model == active_model_id(settings):
            source = self._metered(await self._source(None), "", Policy())
            return Call(source, ChatInput(messages=asked.messages, sampling=base))
        character = await self.core.db.call(self.core.store.find_character, asked.model)
        if character is None or character.name.lower() != asked.model.lower():
            ids = ", ".join(await self._model_ids())
            raise HttpError(
                404, f"NEXUS serves no model named {asked.model!r}; it serves: {ids}.", code="model_not_found"
            )
        return await self._character_call(character, asked, base)

    async def _character_call(
        self, character: Character, asked: CompletionRequest, base: SamplingSettings
    ) -> Call:
        assert character.id is not None
        card = CharacterCard.model_validate(character.card)
        policy, user_name, persona = await self.core.db.call(self._read_character, character.id)
        source = self._metered(await self._source(card.name), card.name, policy)
        wanted = base.max_tokens
        turns = [Turn(m.role, m.content) for m in asked.messages]
        try:
            plan = await build_prompt(
                card,
                turns,
                user_name=user_name,
                persona_description=persona,
                count_tokens=source.count_tokens,
                context_size=source.context_size,
                reply_tokens=wanted,
            )
        except PromptTooLongError as error:
            raise HttpError(400, str(error), code="context_length_exceeded") from error
        governor = self.core.governor
        try:
            grant = await self.core.db.call(
                governor.reserve_tokens, card.name, policy, plan.prompt_tokens, wanted
            )
        except BudgetSpentError as error:
            raise HttpError(429, str(error), kind="rate_limit_error", code="budget_spent") from error
        # As in the chat: the model must not write the user's next line.
        sampler = replace(base, max_tokens=grant.reply_tokens, stop=(*base.stop, f"\n{user_name}:"))
        return Call(source, ChatInput(messages=plan.messages, sampling=sampler), grant)

    def _read_character(self, character_id: int) -> tuple[Policy, str, str]:
        """The policy and who the user is (the default persona, as a new chat has), in one trip."""
        try:
            policy = self.core.governor.policy_for(character_id)
        except PolicyError as error:
            log.warning(
                "A character's limits could not be read (%s); the gateway runs it without them", error
            )
            policy = Policy()
        personas = list_personas(self.core.store.engine)
        if personas and personas[0].is_default:
            return policy, personas[0].name, personas[0].description
        return policy, suggested_name(), ""

    async def _source(self, character: str | None) -> ModelSource:
        try:
            return await self.core.sources.get(character)
        except GameModeError as error:
            raise HttpError(503, str(error), kind="server_error", code="model_unavailable") from error
        except ModelError as error:
            raise _failed(error) from error

    def _metered(self, inner: ModelSource, character: str, policy: Policy) -> MeteredSource:
        return MeteredSource(
            inner,
            character=character,
            governor=self.core.governor,
            policy=policy,
            count=inner.count_tokens,
            record=self.core.metrics.record,
            in_db=self.core.db.call,
            service=SERVICE,
        )


def _failed(error: ModelError) -> HttpError:
    """A model failure as the answer's error (the model's sentence says what to do)."""
    return HttpError(500, str(error), kind="server_error", code="model_error")
