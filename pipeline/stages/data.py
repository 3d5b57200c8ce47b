"""``healthscore data``: generate the synthetic world (a data source) and its oracle."""

from __future__ import annotations

import logging
import time

from pipeline import synthetic
from pipeline.config import Params
from pipeline.logs import progress_bar

log = logging.getLogger("healthscore")


def run_data(params: Params, quiet: bool = False) -> synthetic.WorldSummary:
    """Generate the synthetic world (``data.raw_dir``) and its oracle (``data.oracle_dir``)."""
    cfg = params.synthetic
    log.info(
        "data: generating %s accounts (seed %s, %s months to %s) → %s",
        f"{cfg.accounts:,}", cfg.seed, cfg.history_months, cfg.end_date, params.data.raw_dir,
    )  # fmt: skip
    started = time.perf_counter()
    with progress_bar(quiet) as bar:
        task = bar.add_task("simulating", total=cfg.accounts)

        def tick(step: str, done: int) -> None:
            if step == "events":
                bar.update(task, advance=done, description="writing events")
            else:
                bar.update(task, description=step)

        summary = synthetic.write_world(
            cfg, params.features, params.data.raw_dir, params.data.oracle_dir, progress=tick
        )
    seconds = time.perf_counter() - started
    log.info(
        "data: wrote %s rows in %d tables in %.1f s (%s usage events); oracle → %s",
        f"{summary.total_rows:,}", len(summary.rows), seconds, f"{summary.rows['usage_events']:,}",
        params.data.oracle_dir,
    )  # fmt: skip
    checks = summary.checks
    rates = ", ".join(
        f"{k.removeprefix('renewal_rate_')} {v:.0%}"
        for k, v in checks.items()
        if k.startswith("renewal_rate_")
    )
    log.info(
        "data: renewal rate %s; monthly churn %.1f%%; oracle AUC %.3f",
        rates, 100 * checks.get("monthly_churn_rate", float("nan")),
        checks.get("oracle_auc", float("nan")),
    )  # fmt: skip
    return summary
