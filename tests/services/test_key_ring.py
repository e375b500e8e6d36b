"""The process's copy of the signing keys (:class:`idp.oidc.keys.KeyRing`):
reloaded every ``keys.cache_seconds``, without importing again the keys it
imported already (an RSA private key's import costs tens of milliseconds),
and once for all the threads that find it stale together."""

from __future__ import annotations

import threading
import time

import pytest


class _CountingImporter:
    def __init__(self, importer, calls: list[str]) -> None:
        self._importer, self._calls = importer, calls

    def import_key(self, value):
        self._calls.append(value["kty"])
        return self._importer.import_key(value)


@pytest.fixture
def imports(monkeypatch) -> list[str]:
    from idp.oidc import keys

    calls: list[str] = []
    monkeypatch.setattr(keys, "_IMPORTERS", {kty: _CountingImporter(importer, calls)
                                             for kty, importer in keys._IMPORTERS.items()})
    return calls


def test_a_reload_imports_only_the_keys_it_has_not_imported(rt, imports, monkeypatch):
    from idp.extensions import db

    ring = rt.keys
    ring.public_keys()
    monkeypatch.setattr(ring, "_cache_seconds", 0)  # every use reloads
    imports.clear()
    before = {key.kid for key in ring.public_keys().keys}
    signing = {alg: ring.signing_key(alg).kid for alg in ring.algorithms()}
    assert imports == [] and before
    (new,) = ring.rotate(("ES256",))
    db.session.commit()
    ring.invalidate()
    assert ring.signing_key("ES256").kid == new.kid != signing["ES256"]
    # The new key's public and private halves, once each; the others none.
    assert sorted(imports) == ["EC", "EC"]
    assert {key.kid for key in ring.public_keys().keys} == before | {new.kid}


def test_threads_finding_the_copy_stale_together_reload_it_once(idp, monkeypatch):
    from idp.oidc import keys

    ring = idp.runtime.keys
    reloads: list[float] = []
    real_utcnow = keys.utcnow

    def slow_utcnow():
        reloads.append(time.monotonic())
        time.sleep(0.05)  # the others reach the lock meanwhile
        return real_utcnow()

    monkeypatch.setattr(keys, "utcnow", slow_utcnow)
    ring.invalidate()
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def use() -> None:
        try:
            with idp.app.app_context():
                start.wait(5)
                ring.public_keys()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == [] and len(reloads) == 1
