"""Engram served on the bus (memory://): a worker imprints and recalls for the app, with real
embeddings; refused input is ``bad_input`` and stores nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_desktop.bus.axon import TaskError
from nexus_desktop.changes import Changes
from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.engram.embedder import Embedder
from nexus_desktop.engram.neurons import IMPRINT_NEURON, RECALL_NEURON, engram_axons
from nexus_desktop.engram.service import Engram
from nexus_desktop.llm.catalog import default_model_path
from tests.bus_support import Ends

pytestmark = pytest.mark.model


def test_a_worker_serves_imprint_and_recall_and_refuses_bad_input(tmp_path: Path) -> None:
    store = Store(tmp_path / "nexus.db")
    vega = store.add_character("Vega", {}).id

    async def scenario() -> None:
        engram = Engram(AsyncStore(store), Changes(), Embedder(default_model_path()))
        try:
            async with Ends("memory://engram") as ends:
                await ends.end("memory-worker", *engram_axons(engram), role="worker")
                app = await ends.end("app")
                for text in ("Mara grew up on a farm in Ireland.", "Mara reads detective novels before bed."):
                    answer = await app.dispatch_and_wait(IMPRINT_NEURON, {"character_id": vega, "text": text})
                    assert answer.worker == "memory-worker" and answer.output["text"] == text
                found = await app.dispatch_and_wait(
                    RECALL_NEURON, {"character_id": vega, "query": "Where was her childhood home?", "k": 1}
                )
                [first] = found.output["memories"]
                assert first["text"] == "Mara grew up on a farm in Ireland." and -1 <= first["score"] <= 1
                for bad in ({"character_id": vega, "text": ""}, {"character_id": 999, "text": "Nobody's."}):
                    with pytest.raises(TaskError) as refused:
                        await app.dispatch_and_wait(IMPRINT_NEURON, bad)
                    assert refused.value.code == "bad_input"
                assert len(await engram.list(vega)) == 2
        finally:
            await engram.aclose()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
