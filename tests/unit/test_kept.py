"""What a process keeps of the store (:mod:`idp.store.kept`): the bounded
table, and the rules by which kept values of a Redis store are relied on."""

from __future__ import annotations

import math
import time

import pytest

from idp.store import kept
from idp.store.kept import KeptTexts, PushedKeeps


def _trusted(keeps: PushedKeeps) -> int:
    keeps.confirmed(time.monotonic() + 60)
    epoch = keeps.trusted()
    assert epoch is not None
    return epoch


def test_the_table_counts_the_bytes_it_keeps_and_drops(monkeypatch):
    table = KeptTexts()
    table.keep("a", ("x",), '{"v":"\U0001f600"}')  # 4 bytes for the one character
    table.keep("b", ("y",), None)
    assert table.size == len('{"v":"\U0001f600"}'.encode()) and len(table) == 2
    table.keep("a", ("z",), "{}")
    assert table.size == 2
    table.drop(["a", "missing"])
    assert table.size == 0 and table.get("a") is None and table.get("b") == ("y",)


def test_the_table_empties_past_its_bounds(monkeypatch):
    monkeypatch.setattr(kept, "KEPT_MAX", 3)
    table = KeptTexts()
    for name in "abcd":
        table.keep(name, (name,), "{}")
    assert len(table) == 1 and table.get("d") == ("d",)
    table.keep("long", ("l",), "x" * (kept.KEPT_LONGEST + 1))
    assert table.get("long") is None


def test_nothing_is_relied_on_until_confirmed():
    keeps = PushedKeeps(["revoked:"])
    assert keeps.trusted() is None
    keeps.confirmed(time.monotonic() - 0.001)
    assert keeps.trusted() is None


def test_a_value_read_before_a_change_was_told_is_not_kept():
    keeps = PushedKeeps(["revoked:"])
    epoch = _trusted(keeps)
    keeps.published({"keys": ["revoked:jti:other"]})  # any change moves the epoch
    keeps.keep(epoch, [("revoked:jti:j", None, math.inf)])
    assert keeps.lookup("revoked:jti:j", time.monotonic()) == (False, None)
    keeps.keep(_trusted(keeps), [("revoked:jti:j", None, math.inf)])
    assert keeps.lookup("revoked:jti:j", time.monotonic()) == (True, None)


def test_a_kept_value_is_not_used_past_its_expiry():
    keeps = PushedKeeps(["revoked:"])
    now = time.monotonic()
    keeps.keep(_trusted(keeps), [("revoked:jti:j", b"{}", now + 1)])
    assert keeps.lookup("revoked:jti:j", now) == (True, b"{}")
    assert keeps.lookup("revoked:jti:j", now + 1) == (False, None)


@pytest.mark.parametrize("message", [{"keys": "revoked:jti:j"}, {"keys": [1]}, {}, None])
def test_a_message_that_names_no_keys_forgets_everything(message):
    keeps = PushedKeeps(["revoked:"])
    keeps.keep(_trusted(keeps), [("revoked:jti:j", None, math.inf)])
    keeps.published(message)
    assert len(keeps) == 0 and keeps.trusted() is None


@pytest.mark.parametrize("event", ["watching", "lost"])
def test_a_new_or_lost_subscription_forgets_everything(event):
    keeps = PushedKeeps(["revoked:"])
    keeps.keep(_trusted(keeps), [("revoked:jti:j", None, math.inf)])
    if event == "watching":
        keeps.watching(None)
    else:
        keeps.lost()
    assert len(keeps) == 0 and keeps.trusted() is None


def test_only_keys_under_the_prefixes_are_covered():
    keeps = PushedKeeps(["revoked:", "accounts:version:"])
    assert keeps.covers("revoked:jti:j") and keeps.covers("accounts:version:7")
    assert not keeps.covers("session:s") and not PushedKeeps([]).covers("revoked:jti:j")
