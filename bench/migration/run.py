"""The million-row fold benchmark (issue 10): legacy rows of five
departments generated into MariaDB (three) and PostgreSQL (two), folded
with ``idp migrate run`` into a fresh PostgreSQL database. Prints the rows
per second of each department and in all, the fold processes' peak RSS,
and the totals.

    .venv/bin/python bench/migration/run.py --rows 1000000
    .venv/bin/python bench/migration/run.py --rows 100000    # memory must not grow with rows

Everything runs on 127.0.0.1; the databases it makes are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.migration import synthetic  # noqa: E402

#: Where each department's legacy system keeps its table.
SOURCES = {"HS": "mariadb", "CA": "mariadb", "HR": "mariadb", "ED": "postgresql",
           "TR": "postgresql"}
#: Rows per person on average, from the departments' shares.
ROWS_PER_PERSON = sum(spec.share for spec in synthetic.departments()) * 1.004


def measured(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``command``; returns its outcome and its peak resident memory,
    MiB (VmHWM, read while it runs)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak = 0
        while child.poll() is None:
            try:
                with open(f"/proc/{child.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) // 1024)
            except OSError:
                pass
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, child.returncode, out.read(),
                                           err.read()), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=2000)
    args = parser.parse_args()
    idp = str(ROOT / ".venv" / "bin" / "idp")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as work:
        urls = {kind: stack.enter_context(synthetic.legacy_database(kind))
                for kind in ("mariadb", "postgresql")}
        target = stack.enter_context(synthetic.legacy_database("postgresql"))
        started = time.perf_counter()
        crowd = synthetic.people(int(args.rows / ROWS_PER_PERSON))
        mappings = {}
        total = 0
        for spec in synthetic.departments():
            url = urls[SOURCES[spec.code]]
            total += synthetic.write(url, spec, crowd)
            path = Path(work) / f"{spec.code}.toml"
            path.write_text(synthetic.mapping(spec, f'url = "{url}"\ntable = "{spec.table}"'),
                            encoding="utf-8")
            mappings[spec.code] = path
        del crowd
        print(f"generated {total:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        env = {**os.environ, "IDP_DATABASE_URL": target, "IDP_INSTANCE_PATH": work}
        subprocess.run([idp, "db", "upgrade"], env=env, check=True, capture_output=True)
        folded_rows, began, peak = 0, time.perf_counter(), 0
        totals: dict[str, int] = {}
        for code, path in mappings.items():
            start = time.perf_counter()
            done, memory = measured([idp, "migrate", "run", str(path), "--json",
                                     "--batch-rows", str(args.batch_rows)], env)
            peak = max(peak, memory)
            if done.returncode != 0:
                raise SystemExit(f"{code}: {done.stderr or done.stdout}")
            answer = json.loads(done.stdout)
            seconds = time.perf_counter() - start
            folded_rows += answer["rows"]
            for key in ("new", "matched", "conflicts", "proposals", "rejected", "tombstones"):
                totals[key] = totals.get(key, 0) + answer[key]
            print(f"{code} ({SOURCES[code]}): {answer['rows']:,} rows in {seconds:.1f} s = "
                  f"{answer['rows'] / seconds:,.0f} rows/s, peak RSS {memory:,} MiB", flush=True)
        seconds = time.perf_counter() - began
        again = subprocess.run([idp, "migrate", "run", str(mappings["HS"]), "--json"],
                               env=env, capture_output=True, text=True)
        print(f"all: {folded_rows:,} rows in {seconds:.1f} s = {folded_rows / seconds:,.0f} "
              f"rows/s; peak RSS of a fold process {peak:,.0f} MiB")
        print("totals: " + ", ".join(f"{key} {value:,}" for key, value in totals.items()))
        print(f"second run of HS: written {json.loads(again.stdout)['written']}")


if __name__ == "__main__":
    main()
