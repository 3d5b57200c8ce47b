"""Stage functions: read + validate at the edge, call pure code, write + log. One per stage."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import features
from pipeline import io, plan, report, score, synthetic, train
from pipeline.config import Params, flatten
from pipeline.engines import make_engine
from pipeline.logs import progress_enabled
from pipeline.plan import PlanResult
from pipeline.report import ReportResult
from pipeline.score import ScoreResult
from pipeline.storage import atomic_directory
from pipeline.train import TrainResult

log = logging.getLogger("healthscore")


def run_data(params: Params, quiet: bool = False) -> synthetic.WorldSummary:
    """Generate the synthetic world (``data.raw_dir``) and its oracle (``data.oracle_dir``)."""
    cfg = params.synthetic
    log.info(
        "data: generating %s accounts (seed %s, %s months to %s) → %s",
        f"{cfg.accounts:,}", cfg.seed, cfg.history_months, cfg.end_date, params.data.raw_dir,
    )  # fmt: skip
    started = time.perf_counter()
    with _progress(quiet) as bar:
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
        "data: wrote %s rows in 11 tables in %.1f s (%s usage events); oracle → %s",
        f"{summary.total_rows:,}", seconds, f"{summary.rows['usage_events']:,}",
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


def run_validate(params: Params) -> pd.DataFrame:
    """Read every raw table, check it against the data contract, write a profile of it."""
    if params.data.source == "table":
        return _validate_prebuilt(params, params.output_dir / "validation")
    with io.read_raw(params.data) as raw:
        return _write_profile(raw, params.output_dir / "validation")


def _validate_prebuilt(params: Params, target: Path) -> pd.DataFrame:
    """Type the prebuilt table as training would; profile each column's role and type."""
    spec = params.data.prebuilt
    assert spec.path is not None  # the config requires it for source "table"
    frame = io.read_prebuilt(spec.path)
    built = features.prebuilt_training_set(frame, spec)
    used = dict(zip(built.catalog["source_column"], built.catalog["dtype"], strict=True))
    roles = {spec.id_column: "id", spec.label_column: "label", spec.as_of_column: "as_of"}
    profile = pd.DataFrame(
        {
            "column": frame.columns,
            "role": [roles.get(c, "feature" if c in used else "left out") for c in frame.columns],
            "dtype": [used.get(c, str(frame[c].dtype)) for c in frame.columns],
            "distinct": [int(frame[c].nunique()) for c in frame.columns],
            "missing": [float(frame[c].isna().mean()) for c in frame.columns],
            "note": [built.skipped.get(c, "") for c in frame.columns],
        }
    )
    with atomic_directory(target) as tmp:
        profile.to_csv(tmp / "profile.csv", index=False)
    log.info(
        "validate: table %s: %s rows, %d features, %d columns left out; label rate %.1f%%; "
        "profile → %s",
        spec.path, f"{len(frame):,}", len(built.catalog), len(built.skipped),
        100 * built.table["renewed"].mean(), target,
    )  # fmt: skip
    return profile


def _write_profile(raw: io.RawData, target: Path) -> pd.DataFrame:
    if raw.missing:
        log.info(
            "validate: optional tables not found (no features of theirs): %s",
            ", ".join(raw.missing),
        )
    profile = io.profile(raw)
    with atomic_directory(target) as tmp:
        profile.to_csv(tmp / "profile.csv", index=False)
        (tmp / "summary.json").write_text(
            json.dumps(
                {
                    "tables": list(raw.present),
                    "missing": list(raw.missing),
                    "data_end": str(io.data_end(raw)),
                    "rows": {r.table: int(r.rows) for r in profile.itertuples()},
                },
                indent=2,
            )
            + "\n"
        )
    log.info(
        "validate: %d tables, %s rows, data ends %s; profile → %s",
        len(raw.present), f"{int(profile['rows'].sum()):,}", io.data_end(raw).date(), target,
    )  # fmt: skip
    return profile


def run_all(params: Params, quiet: bool = False) -> ReportResult:
    """The main job on the embedded default: data → validate → features → train → score → plan
    → report.

    Scores as of the day after the data ends (the synthetic world's "today"), after
    ``report.backfill_runs`` earlier periods of the feature grid so the first report already has
    trends, changes and alerts (those runs use today's model: in-sample, a demo of the history a
    nightly job builds up). With ``data.source: table`` there is no world to generate and the
    table is scored as of today, once.
    """
    if params.data.source != "table":
        run_data(params, quiet)
    run_validate(params)
    run_features(params, quiet)
    run_train(params)
    if params.data.source == "table":
        days = [pd.Timestamp.now(tz="UTC").date()]
    else:
        with io.read_raw(params.data) as raw:
            end = pd.Timestamp(params.data.cutoff) if params.data.cutoff else io.data_end(raw)
            first = io.data_start(raw).normalize() + pd.Timedelta(days=params.features.warmup_days)
        today = end.normalize() + pd.Timedelta(days=1)
        grid = features.as_of_grid(first, today, params.features.frequency)
        earlier = [d.date() for d in grid if d < today][-params.report.backfill_runs :]
        days = [*earlier, today.date()] if params.report.backfill_runs else [today.date()]
    for day in days:
        scored = run_score(params, day)
    if params.data.source != "table" and params.effects.enabled:
        try:
            planned = run_plan(params, scored.as_of)
            log.info("all: recommendations → %s", planned.path)
        except plan.NoEffectModel as exc:
            log.warning("all: no plans: %s", exc)
    written = run_report(params, scored.as_of)
    log.info("all: done; open the report: %s", written.path)
    return written


def run_report(params: Params, as_of: date | None = None) -> ReportResult:
    """Write the HTML report of a scoring run (see :mod:`pipeline.report`)."""
    return report.run_report(params, as_of)


def run_plan(params: Params, as_of: date) -> PlanResult:
    """Recommend and allocate plays for the scored accounts (see :mod:`pipeline.plan`)."""
    return plan.run_plan(params, as_of)


def run_score(params: Params, as_of: date, input_path: Path | None = None) -> ScoreResult:
    """Score every account active at ``as_of`` (see :mod:`pipeline.score`)."""
    return score.run_score(params, as_of, input_path)


def run_train(params: Params, force: bool = False) -> TrainResult:
    """Tune, fit, evaluate and register the ensemble (see :mod:`pipeline.train`)."""
    return train.run_train(params, force)


def effective_params(params: Params) -> dict[str, Any]:
    """The flattened params, as ``healthscore params`` prints them."""
    return flatten(params)


@dataclass(frozen=True)
class FeaturesResult:
    path: Path
    catalog_path: Path
    rows: int
    features: int
    label_rate: float
    censored: int


def run_features(params: Params, quiet: bool = False) -> FeaturesResult:
    """Build the point-in-time training set and its catalog into ``output_dir/features``.

    With ``data.source: table`` the prebuilt snapshot table is typed and written in the same
    shape instead, so every later stage runs unchanged.
    """
    started = time.perf_counter()
    if params.data.source == "table":
        return _prebuilt_features(params, started)
    with io.read_raw(params.data) as raw:
        return _build_features(raw, params, quiet, started)


def _prebuilt_features(params: Params, started: float) -> FeaturesResult:
    spec = params.data.prebuilt
    assert spec.path is not None  # the config requires it for source "table"
    built = features.prebuilt_training_set(io.read_prebuilt(spec.path), spec)
    for column, reason in built.skipped.items():
        log.info("features: column %r left out: %s", column, reason)
    return _write_training_set(params, built.table, built.catalog, started, f"table {spec.path}")


def _build_features(raw: io.RawData, params: Params, quiet: bool, started: float) -> FeaturesResult:
    cfg = params.features
    end = pd.Timestamp(params.data.cutoff) if params.data.cutoff else io.data_end(raw)
    first = io.data_start(raw).normalize() + pd.Timedelta(days=cfg.warmup_days)
    grid = features.as_of_grid(first, end, cfg.frequency)
    spine = features.make_training_spine(
        raw.frame("contracts"), grid, cfg.horizon_days, cfg.grace_days, end
    )
    log.info(
        "features: %s snapshots on %d %s as-of dates (%s → %s), data end %s, engine %s",
        f"{len(spine):,}", len(grid), cfg.frequency, grid[0].date(), grid[-1].date(), end,
        cfg.engine,
    )  # fmt: skip
    families = features.families_for(raw.present)
    with _progress(quiet) as bar, tempfile.TemporaryDirectory(prefix="healthscore-") as tmp:
        task = bar.add_task("feature families", total=len(families))
        table, catalog = features.build_feature_table(
            make_engine(cfg.engine, raw, Path(tmp)), spine, cfg, raw.present,
            on_family=lambda name: bar.update(task, advance=1, description=name),
        )  # fmt: skip
    return _write_training_set(params, table, catalog, started, f"{len(families)} families")


def _write_training_set(
    params: Params, table: pd.DataFrame, catalog: pd.DataFrame, started: float, source: str
) -> FeaturesResult:
    target = params.output_dir / "features"
    known = table["renewed"].notna()
    with atomic_directory(target) as tmp:
        table.to_parquet(tmp / "training_set.parquet", index=False)
        catalog.to_csv(tmp / "catalog.csv", index=False)
    result = FeaturesResult(
        path=target / "training_set.parquet",
        catalog_path=target / "catalog.csv",
        rows=len(table),
        features=len(catalog),
        label_rate=float(table.loc[known, "renewed"].mean()) if known.any() else float("nan"),
        censored=int((~known).sum()),
    )
    log.info(
        "features: %s rows × %d features from %s in %.1f s; renewal rate %.1f%% "
        "(%s unlabelled, kept for scoring) → %s",
        f"{result.rows:,}", result.features, source, time.perf_counter() - started,
        100 * result.label_rate, f"{result.censored:,}", result.path,
    )  # fmt: skip
    return result


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress_enabled(quiet),
        transient=True,
    )
