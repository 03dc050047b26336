"""A worker: this machine's model and/or modules' tools, served on a ``role="worker"`` Dendrite.

``nexus worker`` (``cli_worker``) runs one.  The worker uses its own data folder: its settings
pick the model (the same ``LocalLlamaSource`` the window uses; ``--model`` overrides), and its
own module supervisor runs only the modules approved and enabled on this machine, in the same
kernel sandbox as local calls.  Nothing of the app's keyring travels: a worker's modules read
their credentials from this machine's keyring, and the bus carries only inputs and outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nexus_desktop.bus.axon import Axon
from nexus_desktop.bus.dendrite import Dendrite
from nexus_desktop.bus.neurons import chat_axon, count_tokens_axon, tool_axons
from nexus_desktop.bus.synapse import Connection, Synapse, open_synapse
from nexus_desktop.llm.contract import ChatInput, ChatMessage, RunContext, SamplingSettings

if TYPE_CHECKING:
    from nexus_desktop.db.store import Store
    from nexus_desktop.llm.contract import ModelSource
    from nexus_desktop.modules.service import ModuleService

log = logging.getLogger(__name__)

WARM_UP = ChatInput((ChatMessage("user", "Hi"),), SamplingSettings(max_tokens=1, seed=0))
Served = Literal["model", "tools"]
SERVABLE: tuple[Served, ...] = ("model", "tools")


@dataclass(frozen=True)
class WorkerPlan:
    connection: Connection
    serve: frozenset[Served]
    model_path: Path | None = None
    """A GGUF file instead of the one this machine's settings name."""


def parse_serve(text: str) -> frozenset[Served]:
    """``"model,tools"`` -> what to serve; ``ValueError`` says what is allowed."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = names - set(SERVABLE)
    if not names or unknown:
        raise ValueError(
            f"--serve takes model, tools or model,tools (not {', '.join(sorted(unknown)) or 'nothing'})"
        )
    return frozenset(name for name in SERVABLE if name in names)


class WorkerService:
    """Opens the bus, loads what it serves, registers the Neurons; ``aclose`` deregisters."""

    def __init__(self, plan: WorkerPlan, store: Store) -> None:
        self.plan = plan
        self._store = store
        self.source: ModelSource | None = None
        self.modules: ModuleService | None = None
        self.synapse: Synapse | None = None
        self.dendrite: Dendrite | None = None
        self.served: list[str] = []
        """The neuron ids it registered."""

    @property
    def name(self) -> str:
        return self.plan.connection.name

    async def start(self) -> None:
        """Connect first (a wrong address or refused credentials fail before a model loads),
        then load the model and start the modules, then announce them."""
        synapse = open_synapse(self.plan.connection)
        await synapse.connect()
        self.synapse = synapse
        axons: list[Axon] = []
        if "model" in self.plan.serve:
            self.source = await self._start_model()
            axons += [chat_axon(self.source), count_tokens_axon(self.source)]
        if "tools" in self.plan.serve:
            self.modules = await self._start_modules()
            axons += tool_axons(self.modules.supervisor)
        self.dendrite = Dendrite(
            synapse, name=self.name, role="worker", prefix=self.plan.connection.prefix, capacity=1
        )
        for axon in axons:
            self.dendrite.register(axon)
        await self.dendrite.start()
        self.served = [axon.neuron_id for axon in axons]

    async def aclose(self) -> None:
        """Deregister (callers stop sending at once), then stop the model and the modules."""
        dendrite, self.dendrite = self.dendrite, None
        if dendrite is not None:
            await dendrite.aclose()
        synapse, self.synapse = self.synapse, None
        if synapse is not None:
            await synapse.close()
        source, self.source = self.source, None
        if source is not None:
            await source.aclose()
        modules, self.modules = self.modules, None
        if modules is not None:
            await modules.aclose()

    async def _start_model(self) -> ModelSource:
        from nexus_desktop.chat.sources import local_model_path
        from nexus_desktop.llm.local import LocalLlamaSource

        settings = self._store.load_settings()
        path = self.plan.model_path or local_model_path(settings)
        source = LocalLlamaSource(
            path,
            context_size=settings.context_size,
            threads=settings.threads,
            gpu_layers=settings.gpu_layers,
            kv_cache_type=settings.kv_cache_type,
            vram_reserve_mb=settings.vram_reserve_mb,
        )
        try:
            await source.start()
            # A first reply allocates llama.cpp's buffers: do it now, not when a reply fails over here.
            await source(WARM_UP, RunContext())
        except BaseException:
            await source.aclose()
            raise
        return source

    async def _start_modules(self) -> ModuleService:
        from nexus_desktop.modules.service import ModuleService
        from nexus_desktop.secrets import SecretStore

        settings = self._store.load_settings()
        developer_dir = settings.modules_developer_dir
        modules = ModuleService(
            self._store.engine,
            SecretStore(),
            developer_dir=Path(developer_dir).expanduser() if developer_dir else None,
            developer_mode=settings.modules_developer_mode,
        )
        await modules.start()
        return modules


def describe(service: WorkerService) -> str:
    """The line ``nexus worker`` prints once it serves."""
    served = service.served
    parts = []
    if service.source is not None:
        parts.append(f"the model {service.source.name}")
    tools = sorted(neuron.removeprefix("tool.") for neuron in served if neuron.startswith("tool."))
    if service.modules is not None:
        parts.append(
            f"{len(tools)} tool{'s' if len(tools) != 1 else ''}" + (f" ({', '.join(tools)})" if tools else "")
        )
    what = " and ".join(parts) or "nothing"
    return f"Serving {what} as {service.name!r} on {service.plan.connection.url}. Ctrl+C stops."
