"""``healthscore publish``: a scoring run (and its plan) written to a database teams read by SQL.

Flow: the scoring partition of the date (default the latest) → its scores, drivers and alerts,
and the plan of the same date when there is one → one transaction on ``publish.url``
(:mod:`pipeline.io.warehouse`): the date's rows of every table replaced, so a re-run writes no
duplicate and a failure leaves the previous state whole.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.config import Params
from pipeline.io import catalog, warehouse

log = logging.getLogger("healthscore")

SCORE_FIRST = "run `healthscore score --as-of DATE` first"
DEFAULT_FILE = "healthscore.duckdb"  # in output_dir, when publish.url is not set


def run_publish(params: Params, as_of: date | None = None) -> warehouse.Published:
    """Publish the scoring run of ``as_of`` (default the latest) to ``publish.url`` (default
    an embedded DuckDB file in ``output_dir``).

    Raises:
        MissingRun: no scoring run on that date (or none at all).
        SchemaMismatch: the database holds another schema version.
    """
    as_of = catalog.pick_run(catalog.SCORES, params.output_dir, as_of, SCORE_FIRST)
    folder = catalog.SCORES.path(params.output_dir, as_of)
    frames = {
        "account_health": catalog.SCORED.read_from(folder),
        "account_drivers": _drivers(folder),
        "alerts": _alerts(folder),
    }
    if catalog.PLANNED.exists(params.output_dir, as_of):
        frames["account_plays"] = catalog.PLANNED.read(params.output_dir, as_of)
    else:
        log.info("publish: no plan run on %s: account_plays keeps no rows for it", as_of)
        frames["account_plays"] = pd.DataFrame(columns=["account_id"])
    url = params.publish.url or f"duckdb:///{(params.output_dir / DEFAULT_FILE).resolve()}"
    published = warehouse.publish(url, as_of, frames)
    log.info(
        "publish: %s → %s (%s)", as_of, published.url,
        ", ".join(f"{name} {count:,}" for name, count in published.rows.items()),
    )  # fmt: skip
    return published


def _drivers(folder: Path) -> pd.DataFrame:
    """The run's drivers; a run scored before context was shown apart has only actionable."""
    drivers = catalog.DRIVERS.read_from(folder)
    return drivers if "actionable" in drivers else drivers.assign(actionable=True)


def _alerts(folder: Path) -> pd.DataFrame:
    """The run's alerts, what fell most in words; none on a first run (no previous run to
    compare against)."""
    if not (folder / catalog.ALERTS.file).exists():
        return pd.DataFrame(columns=["account_id"])
    alerts = catalog.ALERTS.read_from(folder)
    return alerts.assign(most_fell=alerts.get("most_fell_text"))
