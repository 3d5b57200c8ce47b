"""The synthetic B2B SaaS world: the raw tables of the data contract, plus its oracle.

``write_world`` is the entry point (``healthscore data``). The modules:

- ``world``: the fixed physics and the accounts: dynamics constants, the calendar, the accounts'
  traits, the true effect of each play;
- ``simulation``: the world stepped month by month (health, hidden troubles, the CSMs' plays and
  any external ones, renewals), replayable under the same actions;
- ``tables``: the raw tables a CRM, product analytics and billing would export from that history;
- ``oracle``: the truth per snapshot (renewal probability, effect of each play) and the realism
  checks. Only evaluation code may read what it writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.config import FeaturesConfig, SyntheticConfig
from pipeline.io.storage import atomic_directory
from pipeline.synthetic.oracle import make_oracle, realism_checks, write_oracle
from pipeline.synthetic.simulation import World, simulate
from pipeline.synthetic.tables import (
    Context,
    accounts_table,
    activities_table,
    assignments_table,
    contacts_table,
    contract_frame,
    contracts_table,
    interventions_table,
    invoices_table,
    make_contacts,
    opportunities_table,
    sentiment_table,
    surveys_table,
    tickets_table,
    usage_table,
)
from pipeline.synthetic.world import (
    Accounts,
    Calendar,
    History,
    WorldSummary,
    make_accounts,
    make_calendar,
)

__all__ = [
    "TABLE_ORDER", "WorldSummary", "account_ids", "loop_world", "simulate_world", "write_tables",
    "write_world",
]  # fmt: skip


# ---- the world, written ----------------------------------------------------------------------

CHUNKED: dict[str, Callable[[Context, np.ndarray, np.random.Generator], pa.Table]] = {
    "usage_events": usage_table,
    "support_tickets": tickets_table,
    "surveys": surveys_table,
    "activities": activities_table,
    "sentiment": sentiment_table,
}
TABLE_ORDER = (
    "accounts",
    "contracts",
    "usage_events",
    "support_tickets",
    "surveys",
    "activities",
    "contacts",
    "sentiment",
    "invoices",
    "opportunities",
    "interventions",
)


class _TableWriter:
    """Streams chunks of one table to Parquet or CSV with one fixed schema."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path.with_suffix(f".{fmt}")
        self.fmt = fmt
        self.schema: pa.Schema | None = None
        self.writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
            if self.fmt == "parquet":
                self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
            else:
                self.writer = pacsv.CSVWriter(self.path, self.schema)
        table = table.cast(self.schema)
        assert self.writer is not None
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> int:
        if self.writer is not None:
            self.writer.close()
        return self.rows


def _write(table: pa.Table, path: Path, fmt: str) -> int:
    writer = _TableWriter(path, fmt)
    writer.write(table)
    return writer.close()


def _seed(cfg: SyntheticConfig, *stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *stream])


def simulate_world(cfg: SyntheticConfig, features: FeaturesConfig) -> Context:
    """Run the latent simulation (accounts, health, contracts, CSM decisions) in memory."""
    cal = make_calendar(cfg, features)
    acc = make_accounts(cfg, cal, _seed(cfg, 1))
    return _context(cfg, cal, acc, simulate(cfg, cal, acc))


def _ids(n: int) -> np.ndarray:
    """Account ids A000001 … by account index (wider past a million accounts)."""
    width = max(6, len(str(n)))
    return np.char.add("A", np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _context(cfg: SyntheticConfig, cal: Calendar, acc: Accounts, hist: History) -> Context:
    account_ids = _ids(acc.n)
    return Context(
        cfg=cfg,
        cal=cal,
        acc=acc,
        hist=hist,
        account_ids=account_ids.astype(object),
        account_ids_arrow=pa.array(account_ids),
        contact_offset=np.zeros(acc.n, dtype=int),
        contact_count=np.zeros(acc.n, dtype=int),
        contact_ids=np.array([], dtype=object),
    )


def loop_world(cfg: SyntheticConfig, features: FeaturesConfig, periods: int) -> World:
    """A world whose calendar reaches ``periods`` months past ``cfg.end_date``, run up to it.

    Its accounts and its months up to ``cfg.end_date`` are the plain world's (each month draws its
    own luck), whatever ``periods`` is: a loop of 2 periods and one of 12 start from the same
    state. No account arrives after ``cfg.end_date``. Step it a month at a time and write its
    tables with :func:`write_tables`.
    """
    end = np.datetime64(cfg.end_date, "M") + periods
    extended = cfg.model_copy(
        update={
            "end_date": end.astype("datetime64[D]").astype(object),
            "history_months": cfg.history_months + periods,
        }
    )
    cal = make_calendar(extended, features)
    acc = make_accounts(cfg, make_calendar(cfg, features), _seed(cfg, 1))
    return World(extended, cal, acc).run(until=cal.end_month - periods)


def account_ids(world: World) -> np.ndarray:
    """The account ids the tables of ``world`` use, by account index."""
    return _ids(world.acc.n).astype(object)


def write_tables(world: World, raw_dir: Path) -> dict[str, int]:
    """The raw tables of the months simulated so far, replacing ``raw_dir`` atomically.

    The data ends on the first day of the world's coming month: the as-of date a plan for that
    month is made on. Returns the rows written per table.
    """
    m = world.month
    cal = dataclasses.replace(world.cal, end_month=m - 1, end=world.cal.month_start(m))
    ctx = _context(world.cfg, cal, world.acc, world.history())
    with atomic_directory(raw_dir) as raw:
        return _write_tables(ctx, raw)


def _write_tables(
    ctx: Context, raw: Path, tick: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Write every raw table of ``ctx`` into ``raw``; the rows written per table."""
    tick = tick or (lambda _name, _n: None)
    cfg, fmt = ctx.cfg, ctx.cfg.format
    rows: dict[str, int] = {}
    contracts = contract_frame(ctx)
    contacts = make_contacts(ctx, _seed(cfg, 3))
    first = np.searchsorted(contacts["account"].to_numpy(), np.arange(ctx.acc.n))
    ctx.contact_offset = first
    ctx.contact_count = np.diff(np.append(first, len(contacts)))
    ctx.contact_ids = contacts["contact_id"].to_numpy()

    rows["accounts"] = _write(accounts_table(ctx), raw / "accounts", fmt)
    rows["contracts"] = _write(contracts_table(contracts, ctx), raw / "contracts", fmt)
    rows["contacts"] = _write(contacts_table(contacts, ctx, _seed(cfg, 4)), raw / "contacts", fmt)
    rows["invoices"] = _write(invoices_table(contracts, ctx, _seed(cfg, 5)), raw / "invoices", fmt)
    rows["opportunities"] = _write(
        opportunities_table(contracts, ctx, _seed(cfg, 6)), raw / "opportunities", fmt
    )
    rows["interventions"] = _write(
        interventions_table(ctx, _seed(cfg, 7)), raw / "interventions", fmt
    )
    if ctx.hist.assignments.get("account", np.array([])).size:
        rows["assignments"] = _write(assignments_table(ctx), raw / "assignments", fmt)
    tick("crm tables", 1)

    writers = {name: _TableWriter(raw / name, fmt) for name in CHUNKED}
    for c, start in enumerate(range(0, ctx.acc.n, cfg.chunk_accounts)):
        chunk = np.arange(start, min(start + cfg.chunk_accounts, ctx.acc.n))
        for t, (name, build) in enumerate(CHUNKED.items()):
            writers[name].write(build(ctx, chunk, _seed(cfg, 100 + t, c)))
        tick("events", chunk.size)
    rows.update({name: w.close() for name, w in writers.items()})
    return rows


def write_world(
    cfg: SyntheticConfig,
    features: FeaturesConfig,
    raw_dir: Path,
    oracle_dir: Path,
    progress: Callable[[str, int], None] | None = None,
) -> WorldSummary:
    """Simulate the world and write its raw tables to ``raw_dir`` and its truth to ``oracle_dir``.

    Both folders are replaced atomically: a failure leaves the previous world intact.

    Args:
        cfg: scale, segments and seed of the world.
        features: the snapshot grid and horizon the oracle is written on.
        raw_dir: destination of the data-contract tables (assignments only when any).
        oracle_dir: destination of the truth (evaluation code only).
        progress: called with (step name, units done) as work advances.
    """
    tick = progress or (lambda _name, _n: None)
    ctx = simulate_world(cfg, features)
    tick("simulate", 1)
    with atomic_directory(raw_dir) as raw, atomic_directory(oracle_dir) as truth:
        rows = _write_tables(ctx, raw, tick)
        contracts = contract_frame(ctx)
        snapshots, effects = make_oracle(
            cfg, features, ctx.cal, ctx.acc, ctx.hist,
            contracts.sort_values("index")["contract_id"].to_numpy(), ctx.account_ids,
        )  # fmt: skip
        summary = WorldSummary(
            accounts=ctx.acc.n,
            rows={name: rows[name] for name in (*TABLE_ORDER, "assignments") if name in rows},
            checks=realism_checks(ctx, contracts, snapshots, effects),
        )
        write_oracle(truth, ctx, snapshots, effects, summary)
        tick("oracle", 1)
    return summary
