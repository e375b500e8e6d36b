"""A seeded sandbox gateway served on 127.0.0.1, for tests that need the
registries or the SMS gateway over real HTTP, and its SMTP receiver for
tests of e-mail."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server

from connectors.sandbox import create_sandbox, read_mail, seed
from connectors.sandbox.app import SandboxState
from connectors.sandbox.smtp import SandboxSmtp

KEY, SECRET = "test-key", "test-secret-0123456789"
#: Mail settings of a provider sending to the sandbox's SMTP receiver (plain
#: SMTP on 127.0.0.1, as the demo does); the port is added per sandbox.
MAIL_SETTINGS = {"host": "127.0.0.1", "security": "none",
                 "from_address": "no-reply@idp.example.test", "timeout": 5.0}


@dataclass
class Gateway:
    """A live sandbox: its URL, in-process state hooks and dataset file, and
    its SMTP receiver when started with one (``smtp_port``)."""

    url: str
    state: SandboxState
    data_path: str
    server: Any
    smtp: SandboxSmtp | None = None

    @property
    def smtp_port(self) -> int:
        assert self.smtp is not None, "started without an SMTP receiver"
        return self.smtp.port

    def mails(self, to: str) -> list[dict]:
        """Mails the SMTP receiver took for ``to``, oldest first."""
        return read_mail(self.data_path, to)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.smtp is not None:
            self.smtp.stop()


def start_smtp(data_path: str, **options) -> SandboxSmtp:
    """The sandbox's SMTP receiver for ``data_path`` on a free port of
    127.0.0.1 (``options`` as :class:`SandboxSmtp` takes them)."""
    from tests.conftest import free_port

    for _ in range(5):
        receiver = SandboxSmtp(data_path, free_port(), **options)
        try:
            receiver.start()
        except OSError:  # taken between free_port() and the bind: try another
            continue
        return receiver
    raise RuntimeError("no free port for the SMTP receiver")


def start_sandbox(directory, people: int = 60, entities: int = 12,
                  outbox_page: bool = False, smtp: bool = False) -> Gateway:
    """Seed a dataset in ``directory`` and serve it from a thread (with the
    HTML outbox pages of the demo when ``outbox_page``, and the SMTP
    receiver when ``smtp``)."""
    path = str(directory / "sandbox.sqlite3")
    seed(path, people=people, entities=entities, seed=7)
    app = create_sandbox(path, {KEY: SECRET}, outbox_page=outbox_page)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Gateway(f"http://127.0.0.1:{server.server_port}",
                   app.extensions["gateway_sandbox"], path, server,
                   start_smtp(path) if smtp else None)


_used: set[str] = set()


def _representatives(gateway: Gateway) -> set[str]:
    """The ID numbers of the sandbox's legal representatives."""
    import sqlite3

    with sqlite3.connect(gateway.data_path) as conn:
        rows = conn.execute("SELECT representative_id FROM entities").fetchall()
    conn.close()
    return {row[0] for row in rows}


def fresh_person(gateway: Gateway, card_status: str = "active"):
    """A person of the sandbox in good standing (alive, card ``card_status``)
    that no other test of this run has used: accounts of a run may share one
    database, where an ID number belongs to one account only. Never a legal
    representative: they are kept for :func:`fresh_entity`, or a long run
    would use them all up as plain people."""
    from connectors.sandbox import demo_people

    reserved = _representatives(gateway)
    for person in demo_people(gateway.data_path, limit=1000)[9:]:
        if (person.status == "alive" and person.card_status == card_status
                and person.id_number not in _used and person.id_number not in reserved):
            _used.add(person.id_number)
            return person
    raise LookupError("the sandbox dataset has no unused person of that kind")


def start_gateway_provider(tmp_path_factory, database_url, **sections):
    """A sandbox gateway and a provider wired to it: ``(provider, gateway)``."""
    from tests.conftest import start_provider

    # Entities enough for every test of a run that takes a fresh one
    # (fresh_entity: a representative is used once per run).
    gateway = start_sandbox(tmp_path_factory.mktemp("sandbox"), people=200, entities=40,
                            outbox_page=sections.pop("outbox_page", False), smtp=True)
    gateway_settings = {"url": gateway.url, "access_key": KEY, "secret": SECRET,
                        **sections.pop("gateway", {})}
    mail_settings = {**MAIL_SETTINGS, "port": gateway.smtp_port, **sections.pop("mail", {})}
    provider = start_provider(tmp_path_factory.mktemp("idp-gw"), database_url,
                              gateway=gateway_settings, mail=mail_settings, **sections)
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
