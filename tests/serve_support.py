"""``idp serve`` in a subprocess, for the tests that need the real server's
workers: on the run's database and store, with an instance folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SECRETS, free_port
from tests.helpers import running_server


@dataclass(frozen=True)
class Served:
    """A running ``idp serve``.

    :ivar env: the environment it runs in, for commands on the same instance.
    """

    url: str
    port: int
    env: Mapping[str, str]
    proc: subprocess.Popen

    def workers(self) -> set[int]:
        """The pids of its granian workers (the children of ``idp serve``)."""
        children = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                children.add(int(entry))
        return children


@contextmanager
def running_serve(instance: Path, database_url: str | None, *, workers: int = 1,
                  threads: int = 2, ready_path: str = "/.well-known/openid-configuration",
                  settings: Mapping[str, str] | None = None) -> Iterator[Served]:
    """Start ``idp serve`` on a free port and wait until ``ready_path``
    answers 200 and every worker has started; stop it on leaving.

    :param settings: more ``IDP_*`` environment variables.
    :raises AssertionError: it exits or does not answer within 30 seconds.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update({
        "IDP_INSTANCE_PATH": str(instance), "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_DATABASE_URL": database_url or "",
        "IDP_REDIS_URL": os.environ.get("IDP_TEST_REDIS_URL", ""),
        "IDP_STORE_PREFIX": f"idpserve:{instance.name}:",
        **{f"IDP_SECRETS__{k.upper()}": v for k, v in SECRETS.items()},
        **(settings or {}),
    })
    url = f"http://127.0.0.1:{port}"
    with running_server(
            [sys.executable, "-m", "idp.cli", "serve", "--port", str(port), "--workers",
             str(workers), "--threads", str(threads)],
            env, instance / "serve.log", url + ready_path, start_timeout=30) as proc:
        served = Served(url, port, env, proc)
        deadline = time.monotonic() + 30
        while len(served.workers()) != workers:
            assert time.monotonic() < deadline, "idp serve did not start every worker"
            time.sleep(0.1)
        yield served
