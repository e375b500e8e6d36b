"""A run killed half-way (SIGKILL, nothing cleaned up) resumes from its last
committed batch with no duplicate account (issue 10, "Done when")."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from bench.migration import synthetic
from tests.conftest import SECRETS

IDP = str(Path(sys.executable).with_name("idp"))


def test_a_killed_run_resumes_without_duplicates(tmp_path, database_url):
    spec = synthetic.departments()[0]
    rows = list(synthetic.rows(spec, synthetic.people(16000, seed=5), fault_rate=0.01))
    with (tmp_path / "hs.csv").open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, list(dict.fromkeys(spec.columns.values())))
        writer.writeheader()
        writer.writerows(rows)
    mapping = tmp_path / "hs.toml"
    mapping.write_text(synthetic.mapping(spec, 'file = "hs.csv"').replace(
        f'code = "{spec.code}"', 'code = "KILL"'), encoding="utf-8")
    url = database_url or f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    env = {**os.environ, "IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": url,
           **{f"IDP_SECRETS__{k.upper()}": v for k, v in SECRETS.items()}}
    subprocess.run([IDP, "db", "upgrade"], env=env, check=True, capture_output=True)
    engine = sa.create_engine(url)

    def folded() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM legacy_records "
                                        "WHERE department = 'KILL'")).scalar_one()

    run = subprocess.Popen([IDP, "migrate", "run", str(mapping), "--json",
                            "--batch-rows", "100"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while folded() < 300 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    committed = folded()
    assert 300 <= committed < len(rows), "the run was not stopped half-way"
    again = subprocess.run([IDP, "migrate", "run", str(mapping), "--json"], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["unchanged"] == committed
    assert answer["rows"] == len(rows)
    with engine.connect() as conn:
        def one(query: str):
            return conn.execute(sa.text(query)).scalar_one()

        records = one("SELECT count(*) FROM legacy_records WHERE department = 'KILL'")
        linked = one("SELECT count(*) FROM legacy_records WHERE department = 'KILL' "
                     "AND account_id IS NOT NULL")
        links = one("SELECT count(*) FROM identity_links WHERE kind = 'legacy' "
                    "AND issuer = 'KILL'")
        imported = one("SELECT count(*) FROM legacy_records WHERE department = 'KILL' "
                       "AND outcome = 'imported'")
        made = one("SELECT count(DISTINCT account_id) FROM legacy_records "
                   "WHERE department = 'KILL' AND outcome = 'imported'")
        split = conn.execute(sa.text(
            "SELECT resident_id_index FROM legacy_records WHERE department = 'KILL' "
            "AND account_id IS NOT NULL AND resident_id_index IS NOT NULL "
            "GROUP BY resident_id_index HAVING count(DISTINCT account_id) > 1")).all()
        states = [state for (state,) in conn.execute(sa.text(
            "SELECT state FROM migration_batches WHERE department = 'KILL' ORDER BY id"))]
    engine.dispose()
    # Every row once: a record each (but rows without a usable legacy id),
    # a link per row that went to an account, an account per imported row,
    # and no person (ID number) in two accounts.
    unkeyed = sum(answer["rejected_reasons"].get(k, 0)
                  for k in ("legacy_id", "duplicate_legacy_id"))
    assert records + unkeyed == len(rows)
    assert links == linked and imported == made and split == []
    assert states == ["interrupted", "finished"]
    second = json.loads(subprocess.run([IDP, "migrate", "run", str(mapping), "--json"],
                                       env=env, capture_output=True, text=True).stdout)
    assert second["written"] == 0
