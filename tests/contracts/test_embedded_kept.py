"""The embedded store keeps what a process read and reads a key again only
once it has changed (:mod:`idp.store.changes`): a change by any process,
committed before its call returned, is seen by the next read anywhere."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from idp.store import StoreError, kept
from idp.store.changes import SLOTS, ChangeCounters
from idp.store.embedded import EmbeddedStore


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "store.sqlite3")


def _unreadable(store: EmbeddedStore, monkeypatch) -> None:
    """Any query from now on fails: what is answered comes from what was kept."""
    def refuse():
        raise AssertionError("the store was queried")
    monkeypatch.setattr(store, "_connection", refuse)


def test_an_unchanged_key_is_answered_without_a_query(path, monkeypatch):
    store = EmbeddedStore(path)
    store.put("generation", {"g": 1}, 60)
    assert store.get_many(["generation", "absent"]) == [{"g": 1}, None]
    _unreadable(store, monkeypatch)
    assert store.get("generation") == {"g": 1} and store.get("absent") is None
    assert store.get_many(["absent", "generation", "absent"]) == [None, {"g": 1}, None]
    first = store.get("generation")
    first["g"] = 2  # a caller's copy: what is kept does not change
    assert store.get("generation") == {"g": 1}


def test_a_change_by_another_instance_is_seen_at_the_next_read(path):
    reader, writer = EmbeddedStore(path), EmbeddedStore(path)
    assert reader.get_many(["k", "marker"]) == [None, None]
    writer.put("k", {"v": 1}, 60)
    assert reader.get("k") == {"v": 1}
    writer.put_many([("k", {"v": 2}, 60), ("marker", {"revoked": True}, 60)])
    assert reader.get_many(["k", "marker"]) == [{"v": 2}, {"revoked": True}]
    assert writer.replace("k", {"v": 3}, 60) and reader.get("k") == {"v": 3}
    assert writer.take("k") == {"v": 3} and reader.get("k") is None
    assert writer.add("k", {"v": 4}, 60) and reader.get("k") == {"v": 4}
    writer.delete("k")
    assert reader.get("k") is None
    writer.incr("n", 60)
    assert reader.counter("n") == 1
    writer.incr("n", 60)
    assert reader.counter("n") == 2
    assert writer.put_many_counted("n", 60, 10, [("code", {"c": 1}, 60)]) == 3
    assert reader.get_many(["n", "code"]) == [3, {"c": 1}]


def _write(path: str) -> None:
    EmbeddedStore(path).put("k", {"from": "child"}, 60)


def test_a_change_by_another_process_is_seen_at_the_next_read(path):
    store = EmbeddedStore(path)
    assert store.get("k") is None
    child = multiprocessing.get_context("spawn").Process(target=_write, args=(path,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store.get("k") == {"from": "child"}


def test_a_kept_value_still_expires(path):
    store = EmbeddedStore(path)
    store.put("short", {"v": 1}, 1)
    assert store.get("short") == {"v": 1}
    time.sleep(1.1)
    assert store.get("short") is None


def test_a_kept_value_is_read_again_after_a_second(path, monkeypatch):
    """The bound on a stale read when a writer died between its commit and
    its count: the value is read again within a second anyway."""
    store = EmbeddedStore(path)
    store.put("k", {"v": 1}, 60)
    assert store.get("k") == {"v": 1}
    stale = '{"v": "stale"}'
    store._kept.keep("k", (store._kept.get("k")[0], time.monotonic() - 1.5, stale, 1e18), stale)
    assert store.get("k") == {"v": 1}


def test_counters_are_shared_through_the_file(path):
    one, two = ChangeCounters(path + ".changes"), ChangeCounters(path + ".changes")
    slot = one.slot("idp:clients:generation")
    assert 0 <= slot < SLOTS and slot == two.slot("idp:clients:generation")
    before = two.read(slot)
    one.count([slot, slot])  # once per call, however often a slot is named
    assert two.read(slot) == before + 1


def test_a_counter_file_that_cannot_be_made_is_a_store_error(tmp_path):
    store = EmbeddedStore(str(tmp_path / "missing-dir" / "store.sqlite3"))
    with pytest.raises(StoreError):
        store.get("k")


def test_a_long_value_is_not_kept(path, monkeypatch):
    store = EmbeddedStore(path)
    store.put("long", {"v": "x" * kept.KEPT_LONGEST}, 60)
    assert store.get("long")["v"].startswith("x")
    _unreadable(store, monkeypatch)
    with pytest.raises(AssertionError, match="queried"):
        store.get("long")


@pytest.mark.parametrize("text", ["y" * 40, "\U0001f600" * 10])  # 40 bytes of JSON text each
def test_what_is_kept_is_bounded_in_bytes(path, monkeypatch, text):
    monkeypatch.setattr(kept, "KEPT_MAX_BYTES", 1000)
    store = EmbeddedStore(path)
    for n in range(40):  # about 2,000 bytes of values, read once each
        store.put(f"k{n}", {"v": text}, 60)
        store.get(f"k{n}")
        entries = [store._kept.get(f"k{m}") for m in range(n + 1)]
        assert store._kept.size <= 1000
        assert store._kept.size == sum(len((entry[2] or "").encode())
                                       for entry in entries if entry is not None)
    assert 0 < len(store._kept) < 40


def test_a_value_long_in_bytes_but_not_in_characters_is_not_kept(path, monkeypatch):
    store = EmbeddedStore(path)
    store.put("wide", {"v": "\U0001f600" * (kept.KEPT_LONGEST // 4)}, 60)
    store.get("wide")
    _unreadable(store, monkeypatch)
    with pytest.raises(AssertionError, match="queried"):
        store.get("wide")


def _slots_of(path: str, queue) -> None:
    counters = ChangeCounters(path)
    queue.put([counters.slot(f"idp:key:{n}") for n in range(32)])


def test_processes_starting_together_agree_on_the_slots(tmp_path):
    path = str(tmp_path / "fresh.changes")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_slots_of, args=(path, queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    answers = [queue.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert all(answer == answers[0] for answer in answers)


def test_slots_are_keyed_per_file_so_clients_cannot_aim_at_one(tmp_path):
    keys = [f"idp:key:{n}" for n in range(32)]
    one = ChangeCounters(str(tmp_path / "one.changes"))
    two = ChangeCounters(str(tmp_path / "two.changes"))
    assert [one.slot(key) for key in keys] != [two.slot(key) for key in keys]
    # The key is in the file, not public: it is random and stays put.
    assert Path(tmp_path / "one.changes").read_bytes()[-16:] != bytes(16)
    assert [ChangeCounters(str(tmp_path / "one.changes")).slot(key) for key in keys] == \
        [one.slot(key) for key in keys]
