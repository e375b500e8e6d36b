"""A sandbox of the data-sharing gateway for development, tests and the demo:
the same signed JSON protocol as the real gateway (``docs/connectors.md``)
over a deterministic synthetic dataset, and an SMTP receiver that keeps the
mail it is sent (:mod:`connectors.sandbox.smtp`). Never for production."""

from connectors.sandbox.app import create_sandbox
from connectors.sandbox.dataset import (
    DEMO_ENTITIES,
    DEMO_PEOPLE,
    demo_people,
    read_mail,
    read_outbox,
    seed,
)

__all__ = ["DEMO_ENTITIES", "DEMO_PEOPLE", "create_sandbox", "demo_people", "read_mail",
           "read_outbox", "seed"]
