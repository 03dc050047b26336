"""Chat signals become de-duplicated, filtered training examples without slowing the chat."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from sqlmodel import Session, select

from nexus_desktop.db.store import Store
from nexus_desktop.training.collector import Collector
from nexus_desktop.training.examples import (
    ReplyEdited,
    ReplyRated,
    ReplySaved,
    RouteDecided,
    SwipeChosen,
    ToolCalled,
)
from nexus_desktop.training.tables import TrainingExample

CONTEXT = (("system", "You are Vega."), ("user", "Any tips for this boss?"))


def stored(store: Store) -> list[TrainingExample]:
    with Session(store.engine) as s:
        return list(s.exec(select(TrainingExample).order_by(TrainingExample.id)))  # type: ignore[arg-type]


def test_every_kind_of_chat_signal_is_stored_as_typed_examples(store: Store) -> None:
    collector = Collector(store.path)
    collector.collect(ReplyRated("Vega", CONTEXT, "Dodge right, then strike.", thumbs_up=True))
    collector.collect(
        ReplyRated("Vega", CONTEXT, "No idea.", thumbs_up=False, corrected="Heal at thirty percent.")
    )
    collector.collect(ReplyEdited("Vega", CONTEXT, "Go left.", "Go right, Captain."))
    collector.collect(
        SwipeChosen("Vega", CONTEXT, "Wait for the wind-up.", ["Just spam attack.", "Run away."])
    )
    collector.collect(RouteDecided("roll a d20 for me", "roll_dice"))
    collector.collect(
        RouteDecided(
            "note that I parked on level 3", "chat", confirmed=False, corrected_label="remember_note"
        )
    )
    collector.collect(ToolCalled("what's my GPU temperature", "system_status"))
    collector.close()

    examples = stored(store)
    kinds = {(e.dataset, e.kind, e.signal) for e in examples}
    assert ("persona:Vega", "sft", "thumbs_up") in kinds
    assert ("persona:Vega", "preference", "correction") in kinds
    assert ("persona:Vega", "sft", "edit") in kinds
    assert ("reply_quality", "classification", "thumbs_down") in kinds
    assert ("router", "classification", "route_corrected") in kinds
    assert ("tool_dispatch", "classification", "tool_call") in kinds
    swipes = [e.payload for e in examples if e.signal == "swipe"]
    assert [p["rejected"] for p in swipes] == ["Just spam attack.", "Run away."]
    assert swipes[0]["chosen"] == "Wait for the wind-up."
    corrected = next(e.payload for e in examples if e.signal == "route_corrected")
    assert corrected == {"text": "note that I parked on level 3", "label": "remember_note"}
    sft = next(e.payload for e in examples if e.signal == "thumbs_up" and e.kind == "sft")
    assert sft["messages"][-1] == {"role": "assistant", "content": "Dodge right, then strike."}


def test_duplicates_and_junk_are_filtered_and_counted(store: Store) -> None:
    collector = Collector(store.path)
    good = ReplySaved("Vega", CONTEXT, "Trust the plan, Captain.")
    collector.collect(good)
    collector.collect(good)
    collector.collect(ReplySaved("Vega", CONTEXT, "   "))
    collector.collect(ReplySaved("Vega", CONTEXT, "k"))
    collector.collect(ReplySaved("Vega", CONTEXT, "x" * 9000))
    collector.collect(ReplySaved("Vega", CONTEXT, "the the the the the the the the the the"))
    collector.collect(ReplySaved("Vega", CONTEXT, "@@@@ #### $$$$ %%%% ^^^^"))
    collector.close()

    assert [e.payload["messages"][-1]["content"] for e in stored(store)] == ["Trust the plan, Captain."]
    stats = collector.stats()
    assert stats.duplicates == 1
    assert stats.rejected == {"empty": 1, "too_short": 1, "too_long": 1, "garbage": 2}


def test_duplicates_are_recognised_across_restarts(store: Store) -> None:
    first = Collector(store.path)
    first.collect(RouteDecided("roll a d20", "roll_dice"))
    first.close()
    second = Collector(store.path)
    second.collect(RouteDecided("roll a d20", "roll_dice"))
    second.close()
    assert len(stored(store)) == 1
    assert second.stats().duplicates == 1


def test_collect_never_raises_even_with_nonsense_or_after_close(store: Store) -> None:
    collector = Collector(store.path)
    collector.collect("not a signal")  # type: ignore[arg-type]
    collector.collect(ReplySaved("Vega", None, "Hello there."))  # type: ignore[arg-type]
    collector.collect(RouteDecided("roll a d20", "roll_dice"))
    collector.close()
    collector.collect(RouteDecided("too late", "chat"))
    assert [e.payload["text"] for e in stored(store)] == ["roll a d20"]
    assert collector.stats().dropped == 1


def test_a_full_queue_drops_signals_instead_of_blocking_the_caller(store: Store) -> None:
    collector = Collector(store.path, max_pending=10, interval=5.0)
    for n in range(50):
        collector.collect(RouteDecided(f"message number {n}", "chat"))
    collector.close()
    stats = collector.stats()
    assert stats.received + stats.dropped == 50
    assert stats.stored == stats.received


def test_flush_and_clean_shutdown_lose_nothing_from_many_threads(store: Store) -> None:
    collector = Collector(store.path)

    def produce(worker: int) -> None:
        for n in range(2000):
            collector.collect(RouteDecided(f"worker {worker} message {n}", "chat"))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert collector.flush()
    assert len(stored(store)) == 8000
    collector.close()
    assert collector.stats().dropped == 0


def test_an_unwritable_database_does_not_break_the_caller(tmp_path: Path) -> None:
    collector = Collector(tmp_path / "missing-folder" / "nexus.db")
    collector.collect(RouteDecided("roll a d20", "roll_dice"))
    collector.close()
    assert collector.stats().errors >= 1
    json.dumps(collector.stats().rejected)


def test_the_training_migration_matches_the_table_models(store: Store) -> None:
    import sqlite3

    from sqlmodel import SQLModel

    from nexus_desktop.training import tables

    connection = sqlite3.connect(store.path)
    for model in (
        tables.TrainingExample,
        tables.TrainingJob,
        tables.TrainingStep,
        tables.GateDecisionRecord,
        tables.AdapterEvent,
    ):
        table = SQLModel.metadata.tables[model.__tablename__]  # type: ignore[index]
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table.name})")}
        assert columns == {c.name for c in table.columns}, table.name


def test_collect_returns_while_the_database_is_locked_and_stores_everything_afterwards(store: Store) -> None:
    import sqlite3

    collector = Collector(store.path, interval=0.01)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    # Every call below returns although the writer cannot write: the chat never waits on the disk.
    for n in range(5000):
        collector.collect(RouteDecided(f"locked message {n}", "chat"))
    assert collector.stats().received == 5000
    blocker.execute("COMMIT")
    blocker.close()
    collector.close()
    assert len(stored(store)) == 5000
