"""A seeded sandbox gateway served on 127.0.0.1, for tests that need the
registries or the SMS gateway over real HTTP."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server

from connectors.sandbox import create_sandbox, seed
from connectors.sandbox.app import SandboxState

KEY, SECRET = "test-key", "test-secret-0123456789"


@dataclass
class Gateway:
    """A live sandbox: its URL, in-process state hooks and dataset file."""

    url: str
    state: SandboxState
    data_path: str
    server: Any

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_sandbox(directory, people: int = 60, entities: int = 12,
                  outbox_page: bool = False) -> Gateway:
    """Seed a dataset in ``directory`` and serve it from a thread (with the
    HTML outbox page of the demo when ``outbox_page``)."""
    path = str(directory / "sandbox.sqlite3")
    seed(path, people=people, entities=entities, seed=7)
    app = create_sandbox(path, {KEY: SECRET}, outbox_page=outbox_page)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Gateway(f"http://127.0.0.1:{server.server_port}",
                   app.extensions["gateway_sandbox"], path, server)


_used: set[str] = set()


def fresh_person(gateway: Gateway, card_status: str = "active"):
    """A person of the sandbox in good standing (alive, card ``card_status``)
    that no other test of this run has used: accounts of a run may share one
    database, where an ID number belongs to one account only."""
    from connectors.sandbox import demo_people

    for person in demo_people(gateway.data_path, limit=1000)[9:]:
        if (person.status == "alive" and person.card_status == card_status
                and person.id_number not in _used):
            _used.add(person.id_number)
            return person
    raise LookupError("the sandbox dataset has no unused person of that kind")


def start_gateway_provider(tmp_path_factory, database_url, **sections):
    """A sandbox gateway and a provider wired to it: ``(provider, gateway)``."""
    from tests.conftest import start_provider

    gateway = start_sandbox(tmp_path_factory.mktemp("sandbox"), people=200,
                            outbox_page=sections.pop("outbox_page", False))
    gateway_settings = {"url": gateway.url, "access_key": KEY, "secret": SECRET,
                        **sections.pop("gateway", {})}
    provider = start_provider(tmp_path_factory.mktemp("idp-gw"), database_url,
                              gateway=gateway_settings, **sections)
    return provider, gateway


def fresh_entity(gateway: Gateway):
    """An active legal entity of the sandbox whose legal representative is a
    person in good standing no other test used: ``(entity, person)``."""
    import sqlite3

    from connectors.sandbox import demo_people
    from connectors.sandbox.dataset import Entity

    people = {p.id_number: p for p in demo_people(gateway.data_path, limit=1000)}
    with sqlite3.connect(gateway.data_path) as conn:
        rows = conn.execute("SELECT uscc, name, status, representative_name, "
                            "representative_id FROM entities WHERE idx > 3 AND "
                            "status = 'active' ORDER BY idx").fetchall()
    conn.close()
    for row in rows:
        entity = Entity(*row)
        person = people[entity.representative_id]
        if person.status == "alive" and entity.representative_id not in _used:
            _used.add(entity.representative_id)
            return entity, person
    raise LookupError("the sandbox dataset has no unused entity of that kind")
