"""`healthscore publish` and `notify`: a scoring run in a database (DuckDB and a real PostgreSQL
server) and per-CSM digests to a webhook (a local HTTP receiver).

The PostgreSQL server is Debian's package (``make postgres`` installs it), started here on a
Unix socket in a temporary folder and stopped at the end; ``HEALTHSCORE_REQUIRE_POSTGRES=1``
(``make test``) turns a missing server into a failure instead of a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import stages
from pipeline.cli import EXIT_DATA, app
from pipeline.config import load_params
from pipeline.io import catalog, warehouse
from tests.pipeline.receiver import Receiver
from tests.pipeline.test_train import small

ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND = date(2026, 9, 1), date(2026, 10, 1)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two scoring runs and a plan on a small world."""
    tmp = tmp_path_factory.mktemp("publish")
    params = load_params(ROOT / "params.yaml", small(tmp))
    stages.run_data(params, quiet=True)
    stages.run_features(params, quiet=True)
    stages.run_train(params)
    for day in (FIRST, SECOND):
        stages.run_score(params, day, allow_stale=True)
    stages.run_plan(params, SECOND)
    return params


def _count(url: str, table: str, where: str = "") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar())
    finally:
        engine.dispose()


def _check_publish(params, url: str) -> None:
    """The contract on any database: history keyed by date, idempotent, latest view."""
    moved = params.model_copy(update={"publish": params.publish.model_copy(update={"url": url})})
    scores = catalog.SCORED.read(params.output_dir, SECOND)
    first = stages.run_publish(moved, FIRST)
    second = stages.run_publish(moved, SECOND)
    # one row per account and date, every driver, the plan of the date that has one
    assert second.rows["account_health"] == len(scores)
    assert _count(url, "account_health") == first.rows["account_health"] + len(scores)
    drivers = catalog.DRIVERS.read(params.output_dir, SECOND)
    assert _count(url, "account_drivers", f"WHERE as_of = '{SECOND}'") == len(drivers)
    assert second.rows["account_plays"] == len(catalog.PLANNED.read(params.output_dir, SECOND))
    assert first.rows["account_plays"] == 0 and first.rows["alerts"] == 0
    # a re-run replaces the date: no duplicate
    again = stages.run_publish(moved, SECOND)
    assert again.rows == second.rows
    assert _count(url, "account_health") == first.rows["account_health"] + len(scores)
    # the latest view holds the newest date only, the same health as the run
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        latest = pd.read_sql(sa.text(f"SELECT account_id, as_of, health FROM "
                                     f"{warehouse.LATEST_VIEW}"), conn)  # fmt: skip
        version = conn.execute(sa.text("SELECT version FROM healthscore_schema")).scalar()
    engine.dispose()
    assert len(latest) == len(scores) and {str(d)[:10] for d in latest["as_of"]} == {str(SECOND)}
    by_id = scores.set_index("account_id")["health"]
    assert (latest.set_index("account_id")["health"] == by_id.reindex(latest["account_id"])).all()
    assert version == warehouse.SCHEMA_VERSION


def _check_crash(params, url: str, monkeypatch) -> None:
    """A failure half-way through leaves the previous state whole (one transaction)."""
    moved = params.model_copy(update={"publish": params.publish.model_copy(update={"url": url})})
    stages.run_publish(moved, SECOND)
    before = {t: _count(url, t) for t in warehouse.TABLES}
    real = warehouse._records
    calls = {"n": 0}

    def failing(table, frame):
        calls["n"] += 1
        if calls["n"] == 3:  # after two tables were deleted and rewritten
            raise RuntimeError("the connection dropped")
        return real(table, frame)

    monkeypatch.setattr(warehouse, "_records", failing)
    with pytest.raises(RuntimeError, match="dropped"):
        stages.run_publish(moved, SECOND)
    monkeypatch.setattr(warehouse, "_records", real)
    assert {t: _count(url, t) for t in warehouse.TABLES} == before


def test_publish_to_duckdb_by_default(scored, monkeypatch):
    params = scored
    # the default: an embedded DuckDB file in output_dir, through the CLI
    args = [f"--set={kv}" for kv in small(params.output_dir.parent)]
    out = CliRunner().invoke(app, ["publish", "--as-of", str(SECOND), *args])
    assert out.exit_code == 0, out.output
    path = params.output_dir / "healthscore.duckdb"
    assert path.exists() and str(path) in out.output
    url = f"duckdb:///{path}"
    assert _count(url, "account_health") == len(catalog.SCORED.read(params.output_dir, SECOND))
    _check_publish(params, f"duckdb:///{params.output_dir}/contract.duckdb")
    _check_crash(params, f"duckdb:///{params.output_dir}/crash.duckdb", monkeypatch)
    # a date with no scoring run exits 3 naming the runs there are
    missing = CliRunner().invoke(app, ["publish", "--as-of", "2020-01-01", *args])
    assert missing.exit_code == EXIT_DATA and str(SECOND) in missing.output


def test_a_database_of_another_schema_version_is_refused(scored, monkeypatch):
    params = scored
    url = f"duckdb:///{params.output_dir}/old.duckdb"
    moved = params.model_copy(update={"publish": params.publish.model_copy(update={"url": url})})
    stages.run_publish(moved, SECOND)
    monkeypatch.setattr(warehouse, "SCHEMA_VERSION", warehouse.SCHEMA_VERSION + 1)
    with pytest.raises(warehouse.SchemaMismatch, match="schema version"):
        stages.run_publish(moved, SECOND)


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server on a Unix socket in a temporary folder, for this module."""
    binaries = _postgres_bin()
    if binaries is None:
        if os.environ.get("HEALTHSCORE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (make postgres installs Debian's package)")
        pytest.skip("no PostgreSQL server installed (make postgres)")
    folder = Path(tempfile.mkdtemp(prefix="healthscore-pg-", dir="/tmp"))
    data = folder / "data"
    run: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        shutil.chown(folder, "postgres")
        run = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "healthscore"], check=True, capture_output=True)  # fmt: skip
    options = f"-k {folder} -c listen_addresses='' -p 5439"
    log = str(folder / "log")
    subprocess.run([*run, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", log,
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://healthscore@/postgres?host={folder}&port=5439"
    finally:
        subprocess.run([*run, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def test_publish_to_a_real_postgresql_server(scored, postgres, monkeypatch):
    params = scored
    _check_publish(params, postgres)
    _check_crash(params, postgres, monkeypatch)


def test_readers_never_see_half_a_run_on_postgresql(scored, postgres):
    params = scored
    moved = params.model_copy(
        update={"publish": params.publish.model_copy(update={"url": postgres})}
    )
    stages.run_publish(moved, SECOND)
    whole = _count(postgres, "account_health", f"WHERE as_of = '{SECOND}'")
    seen, done = [], threading.Event()

    def read() -> None:
        engine = sa.create_engine(postgres)
        with engine.connect() as conn:
            while not done.is_set():
                seen.append(int(conn.execute(sa.text(
                    f"SELECT count(*) FROM account_health WHERE as_of = '{SECOND}'"
                )).scalar()))  # fmt: skip
                conn.commit()
                time.sleep(0.005)
        engine.dispose()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            stages.run_publish(moved, SECOND)
    finally:
        done.set()
        reader.join()
    # every read saw the date whole: the delete and the inserts commit together
    assert seen and set(seen) == {whole}


def _receiver(fail_first: int = 0, always: int | None = None) -> Receiver:
    """A local webhook: accepts each POSTed JSON with 200; answers ``fail_first`` requests
    with 500, or every one with ``always`` when set."""
    receiver = Receiver(lambda path, body, headers: (always or 200, "no" if always else "ok"),
                        fail_first=fail_first, fail_status=500)  # fmt: skip
    receiver.url += "/hook"
    return receiver


def _with_hook(params, url, folder):
    return params.model_copy(update={
        "notify": params.notify.model_copy(update={"webhook_url": url, "retries": 2}),
        "output_dir": folder,
    })  # fmt: skip


def test_digests_go_once_per_csm_with_retries_and_a_dry_run_first(scored, tmp_path):
    params = scored
    alerts = catalog.ALERTS.read(params.output_dir, SECOND)
    scores = catalog.SCORED.read(params.output_dir, SECOND).set_index("account_id")
    assert len(alerts) > 0, "the small world's second run has alerts"
    # a dry run: every CSM with an alert gets a payload, written, nothing sent
    dry = stages.run_notify(params, SECOND)
    assert dry.dry_run and dry.sent == 0
    messages = __import__("json").loads(dry.payloads.read_text())
    csms = set(scores.loc[alerts["account_id"], "csm_id"].fillna("(no CSM)"))
    assert set(messages) == csms and dry.digests == len(csms)
    text = " ".join(b["text"]["text"] for m in messages.values() for b in m["blocks"])
    assert "top_risk" not in text and "health" in text
    # then to a webhook that fails once: retried, each digest received exactly once
    receiver = _receiver(fail_first=1)
    try:
        live = _with_hook(params, receiver.url, params.output_dir)
        first = stages.run_notify(live, SECOND)
        assert first.sent == len(csms) and receiver.requests == len(csms) + 1
        assert sorted(b["text"] for b in receiver.bodies) == sorted(
            m["text"] for m in messages.values()
        )
        # a re-run of the same date sends nothing again
        again = stages.run_notify(live, SECOND)
        assert again.sent == 0 and again.skipped == len(csms)
        assert receiver.requests == len(csms) + 1
    finally:
        receiver.close()


def test_a_webhook_that_refuses_is_a_clear_error_and_nothing_is_recorded(scored, tmp_path):
    params = scored
    ledger = params.output_dir / "notifications" / f"sent_{SECOND}.json"
    ledger.unlink(missing_ok=True)  # whatever an earlier test sent
    receiver = _receiver(always=404)
    try:
        args = [f"--set={kv}" for kv in small(params.output_dir.parent)]
        out = CliRunner().invoke(app, ["notify", "--as-of", str(SECOND), *args,
                                       f"--set=notify.webhook_url={receiver.url}"])  # fmt: skip
        assert out.exit_code == EXIT_DATA and "answered 404" in out.output
        assert receiver.requests == 1  # a 404 is not retried: it will not get better
    finally:
        receiver.close()
    assert not ledger.exists(), "nothing went out, so nothing is recorded"


def test_funded_plays_become_crm_tasks_in_each_shape(scored):
    params = scored
    result = stages.run_tasks(params, SECOND, due_within_days=7)
    plans = catalog.PLANNED.read(params.output_dir, SECOND)
    funded = plans[plans["arm"] == "plan"]
    plays = sum(len(str(p).split(" + ")) for p in funded["recommended"])
    assert result.tasks == plays > 0 and result.accounts == funded["account_id"].nunique()
    task = pd.read_csv(result.folder / f"tasks_{SECOND}.csv")
    # owner, account, play in words, a due date from the play's timing, lift and ARR saved
    assert set(task["account_id"]) == set(funded["account_id"])
    assert not task["play"].str.contains("_").any()
    offsets = funded["recommended"].str.extract(r"\+(\d+)d")[0].dropna().astype(int)
    earliest = str(SECOND + timedelta(days=7))
    assert task["due"].min() == earliest
    if len(offsets):
        latest = SECOND + timedelta(days=7 + int(offsets.max()))
        assert task["due"].max() == str(latest)
    owner = funded.set_index("account_id")["csm_id"]
    assert (task["owner"] == task["account_id"].map(owner)).all()
    # the same tasks in Salesforce's and HubSpot's import columns
    sf = pd.read_csv(result.folder / f"tasks_{SECOND}_salesforce.csv")
    assert list(sf.columns) == ["Subject", "Description", "ActivityDate", "OwnerId", "WhatId",
                                "Status", "Priority"] and len(sf) == len(task)  # fmt: skip
    assert sf["Description"].str.startswith("Why: ").all()
    # one line per task: its own lift and ARR saved (the body once held the whole column)
    assert (
        sf["Description"]
        .str.fullmatch(
            r"Why: [^\n]+\. Plan: [^\n]+; expected lift [+-]\d+\.\d points, ARR saved \$[\d,]+\."
        )
        .all()
    ), sf["Description"].head(2).tolist()
    hub = pd.read_csv(result.folder / f"tasks_{SECOND}_hubspot.csv")
    assert {"hs_task_subject", "hs_timestamp", "hubspot_owner_id"} <= set(hub.columns)
    fields = pd.read_csv(result.folder / f"account_fields_{SECOND}.csv")
    assert len(fields) == len(catalog.SCORED.read(params.output_dir, SECOND))
    assert fields["priority"].is_monotonic_increasing
    # a date without a plan run exits 3 saying what to run
    args = [f"--set={kv}" for kv in small(params.output_dir.parent)]
    out = CliRunner().invoke(app, ["tasks", "--as-of", str(FIRST), *args])
    assert out.exit_code == EXIT_DATA and "healthscore plan" in out.output


PUBLISH_WITH_ORM = """
import sys
import sqlalchemy.orm  # as MLflow loads it
from datetime import date
import pandas as pd
from pipeline.io import warehouse
frames = {"account_health": pd.DataFrame({"account_id": ["a", "b"], "health": [50, 60]})}
print(warehouse.publish("duckdb:///" + sys.argv[1], date(2026, 1, 1), frames).rows)
"""


def test_a_duckdb_publish_beside_sqlalchemy_orm_ends_quietly(tmp_path):
    # the process exits with nothing on stderr: no "nanobind: leaked …" lines from duckdb
    done = subprocess.run(
        [sys.executable, "-c", PUBLISH_WITH_ORM, str(tmp_path / "health.duckdb")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "{'account_health': 2}"
    assert "nanobind" not in done.stderr, done.stderr[:500]
