"""``healthscore score --as-of DATE``: the nightly batch that CS teams read in the morning.

Flow: load the model by alias (or ``score.version``) → features of every account with a contract
in force at ``as_of`` (or the rows of a prebuilt table) → check they are the model's → in chunks:
win probability with its interval, exact contributions → points of health, components, drivers
in plain words → ARR at risk and a unique priority → changes and alerts against the previous run
→ drift and expected performance → one partition ``scores/as_of=DATE/`` written atomically.

An as-of date well past the data's end would read the days without data as silence (no usage,
no contact) and put accounts at risk, so it is refused unless asked for (:func:`scoring_date`).
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from models.config import ScoreConfig
from models.explain.drivers import named
from models.renewal.size import RenewalSize
from models.scoring import accounts, forecast, monitoring
from models.scoring.accounts import Changes
from pipeline import io
from pipeline.config import Params
from pipeline.errors import InputError
from pipeline.io import catalog, registry
from pipeline.memory import reuse_memory
from pipeline.shared import asof
from pipeline.threads import thread_limits

log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class ScoreResult:
    """Where a scoring run went, its size, model, alerts and bands."""

    path: Path
    as_of: date
    accounts: int
    model_version: str
    alerts: int
    bands: dict[str, int]
    seconds: float


class StaleAsOf(InputError):
    """The as-of date lies further after the data's end than ``score.stale_after_days``."""


def scoring_date(params: Params, as_of: date | None = None, allow_stale: bool = False) -> date:
    """The date to score (:func:`freshness`'s first figure)."""
    return freshness(params, as_of, allow_stale)[0]


def freshness(
    params: Params,
    as_of: date | None = None,
    allow_stale: bool = False,
    raw: io.RawData | None = None,
) -> tuple[date, int]:
    """The date to score: ``as_of``, by default the data's end; one too far past it is refused.
    With it, how many days it lies past the data's end (0 or less: fresh; more than
    ``score.stale_after_days``: scored only with ``allow_stale``).

    The data's end, as an as-of date, is the day after its latest row (or after
    ``data.cutoff``): the first date whose features see all of it. A prebuilt table is not
    checked (its rows carry their own dates); its default is today (UTC). ``raw``: the tables
    when the caller has read them already (else they are read here).

    Raises:
        StaleAsOf: ``as_of`` is more than ``score.stale_after_days`` after the data's end and
            ``allow_stale`` is not set.
    """
    if params.data.source == "table":
        return as_of or datetime.now(UTC).date(), 0
    with nullcontext(raw) if raw is not None else io.read_raw(params.data) as tables:
        end = io.known_until(tables, params.data.cutoff)
        fresh = io.first_fresh_day(end)
    if as_of is None:
        return fresh, 0
    late = (as_of - fresh).days
    if late <= params.score.stale_after_days:
        return as_of, late
    seen = f"data.cutoff {params.data.cutoff}" if params.data.cutoff else f"latest row {end}"
    if not allow_stale:
        tolerated = params.score.stale_after_days
        raise StaleAsOf(
            f"as of {as_of} is {late} days after the data's end, {fresh} ({seen}): those days "
            "without data would read as silence (no usage, no contact) and put accounts at "
            f"risk. Load newer data, score as of {fresh} (the default without --as-of), or pass "
            f"--allow-stale to score it anyway (score.stale_after_days: {tolerated} tolerated)"
        )
    log.warning(
        "score: as of %s is %d days after the data's end (%s, %s): scored anyway (--allow-stale)",
        as_of, late, fresh, seen,
    )  # fmt: skip
    return as_of, late


def run_score(
    params: Params,
    as_of: date | None = None,
    input_path: Path | None = None,
    allow_stale: bool = False,
) -> ScoreResult:
    """Score every account active at ``as_of`` (default: the data's end) and write its
    partition, replacing a re-run.

    Every thread pool (LightGBM, OpenMP, BLAS, joblib, numba) is held to ``train.n_jobs``, and
    the chunks' large arrays reuse the heap (:func:`pipeline.memory.reuse_memory`).

    Raises:
        StaleAsOf: ``as_of`` is too far past the data's end and ``allow_stale`` is not set
            (:func:`scoring_date`); nothing is written.
    """
    with thread_limits(params.train.n_jobs), reuse_memory():
        return _score(params, as_of, input_path, allow_stale)


def _score(
    params: Params, as_of: date | None, input_path: Path | None, allow_stale: bool
) -> ScoreResult:
    started = time.perf_counter()
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    # the tables are read (and validated) once, for the data's end and the features
    prebuilt = params.data.source == "table"
    with nullcontext() if prebuilt else io.read_raw(params.data) as raw:
        as_of, late = freshness(params, as_of, allow_stale, raw)
        log.info(
            "score: model %s v%s (trained through %s), as of %s",
            params.mlflow.model_name, version, model.trained.get("trained_through", "?"), as_of,
        )  # fmt: skip
        snapshot, outcomes = asof.features_as_of(
            params.data, params.features, model, as_of, input_path, raw
        )
    log.info("score: %s accounts with a contract in force", f"{len(snapshot):,}")
    horizon = params.features.horizon_days
    scored = accounts.score_snapshot(
        snapshot, model.ensemble, model.catalog, model.features, params.score,
        horizon_days=horizon, version=version, as_of=as_of,
        account_columns=asof.ACCOUNT_COLUMNS, size=model.size,
    )  # fmt: skip
    scores = scored.scores
    previous = catalog.runs(catalog.SCORES, params.output_dir, before=as_of)
    changes = None
    if previous:
        values = snapshot.set_index("account_id")[model.features]
        words = accounts.Words.of(model.catalog, model.features, params.score.context_components)
        changes = _compare(
            params.output_dir, params.score, previous[-1], scores, scored.points, values, words
        )
    drift = monitoring.drift_report(
        snapshot, scores, model.features, model.profile, model.reference_scores, params.score,
        horizon_days=horizon,
    )  # fmt: skip
    # each input by what it measures, for the report; the column name stays in name
    described = model.catalog.set_index("name")["description"].map(named).to_dict()
    described["win_probability"] = "the win probability the model gives"
    drift = drift.assign(label=drift["name"].map(described).fillna(drift["name"]))
    window = params.score.forecast_days
    outlook = forecast.renewal_forecast(
        scores,
        window,
        model.contraction,
        [c for c in ("segment", "csm_id") if c in scores],
        size=model.size,
    )
    # a table without renewal dates has no renewals due: no forecast rather than one of zeros
    dated = bool(scores["days_to_renewal"].notna().any())
    if not dated:
        log.info("score: no renewal dates in the input: no forecast of renewals due")
        outlook = outlook.iloc[0:0]
    backtest = _backtest(params.output_dir, previous, window, outcomes, model.size)
    alerts = None if changes is None else changes.alerts
    target = catalog.SCORES.path(params.output_dir, as_of)
    with catalog.publish(catalog.SCORES, params.output_dir, as_of) as tmp:
        catalog.SCORED.write(tmp, scores)
        catalog.DRIVERS.write(tmp, scored.drivers)
        catalog.POINTS.write(tmp, scored.points.reset_index())
        catalog.DRIFT.write(tmp, drift)
        catalog.FORECAST.write(tmp, outlook)
        catalog.BACKTEST.write(tmp, backtest)
        if changes is not None:
            catalog.CHANGES.write(tmp, changes.changes)
            catalog.ALERTS.write(tmp, changes.alerts)
        summary = _summary(scores, drift, alerts, version, model.trained, as_of, previous)
        # a date scored past the data's end with --allow-stale says so to whoever reads the run
        summary["stale"] = late > params.score.stale_after_days
        summary["days_after_data_end"] = max(late, 0)
        summary["forecast"] = None
        if dated:
            total = outlook[outlook["group"] == "total"].iloc[0]
            figures = ("arr_due", "expected_churned_arr", "expected_churned_arr_low",
                       "expected_churned_arr_high", "expected_contraction_arr",
                       "expected_expansion_arr", "expected_renewal_arr", "forecast_nrr",
                       "forecast_nrr_low", "forecast_nrr_high", "forecast_grr",
                       "forecast_grr_low", "forecast_grr_high")  # fmt: skip
            summary["forecast"] = {"renewals_due": int(total["renewals_due"])} | {
                k: float(total[k]) for k in figures if k in total
            }
        catalog.SCORE_SUMMARY.write(tmp, summary)
    seconds = time.perf_counter() - started
    result = ScoreResult(
        target, as_of, len(scores), version, 0 if alerts is None else len(alerts),
        summary["bands"], round(seconds, 1),
    )  # fmt: skip
    log.info(
        "score: %s accounts, health median %d (red %d, yellow %d, green %d), ARR at risk %s, "
        "%d alerts, %d drifting features; %.1f s → %s",
        f"{result.accounts:,}", int(scores["health"].median()), result.bands.get("red", 0),
        result.bands.get("yellow", 0), result.bands.get("green", 0),
        f"{scores['arr_at_risk'].sum():,.0f}", result.alerts, int(drift["flagged"].sum()),
        seconds, target,
    )  # fmt: skip
    return result


def _compare(
    output_dir: Path, cfg: ScoreConfig, previous: date, scores: pd.DataFrame, points: pd.DataFrame,
    values: pd.DataFrame, words: accounts.Words,
) -> Changes:  # fmt: skip
    """What changed since the previous run (read through the catalog), and its alerts logged."""
    before = catalog.SCORED.read(output_dir, previous)
    before_points = catalog.POINTS.read(output_dir, previous).set_index("account_id")
    result = accounts.compare_runs(
        scores, points, before, before_points, previous, cfg, values, words
    )
    # the first few by priority, each by the name people know it by (the id beside it)
    names = scores.set_index("account_id")["name"] if "name" in scores else pd.Series()
    for row in result.alerts.head(5).itertuples():
        name = names.get(row.account_id)
        who = f"{name} ({row.account_id})" if isinstance(name, str) else row.account_id
        log.warning(
            "score: alert %s: health %d → %d (%s), band %s → %s",
            who, row.health_previous, row.health, row.reason, row.band_previous, row.band,
        )  # fmt: skip
    return result


def _backtest(
    output_dir: Path, previous: list[date], window: int, outcomes: pd.DataFrame | None,
    size: RenewalSize | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Past runs' forecasts beside what happened, for runs whose window has closed.

    A run scored with a model trained on its own period is in-sample: these figures are honest
    only for runs made before that model's training data ended (as a nightly job makes them).
    """
    columns = ["as_of", "model_version", "expected_auc", "renewals_due", "non_renewals",
               "forecast_churned_arr", "forecast_churned_arr_low", "forecast_churned_arr_high",
               "realised_churned_arr", "forecast_renewal_rate", "forecast_renewal_rate_low",
               "forecast_renewal_rate_high", "realised_renewal_rate", "realised_ece",
               "realised_auc", "realised_auc_low", "realised_auc_high", "forecast_nrr",
               "forecast_nrr_low", "forecast_nrr_high", "realised_nrr", "forecast_grr",
               "forecast_grr_low", "forecast_grr_high", "realised_grr"]  # fmt: skip
    if not previous or outcomes is None:
        return pd.DataFrame(columns=columns)
    rows = []
    for day in previous:
        past = catalog.SCORED.read(output_dir, day)
        if "contract_id" not in past:
            continue
        figures = forecast.realised(past, outcomes, window, size=size)
        if figures is None:
            continue
        rows.append({"as_of": str(day), "model_version": str(past["model_version"].iloc[0]),
                     **figures})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _summary(
    scores: pd.DataFrame, drift: pd.DataFrame, alerts: pd.DataFrame | None, version: str,
    trained: dict[str, str], as_of: date, previous: list[date],
) -> dict[str, object]:  # fmt: skip
    bands = scores["band"].value_counts().to_dict()
    return {
        "as_of": as_of.isoformat(),
        "model_version": version,
        "model": trained,
        "accounts": len(scores),
        "arr": float(scores["arr"].sum()),
        "arr_at_risk": float(scores["arr_at_risk"].sum()),
        "bands": {k: int(bands.get(k, 0)) for k in ("red", "yellow", "green")},
        "expected_auc": monitoring.expected_auc(scores["win_probability"].to_numpy()),
        "alerts": 0 if alerts is None else len(alerts),
        "previous_as_of": previous[-1].isoformat() if previous else None,
        "drifting": drift.loc[drift["flagged"], "name"].tolist(),
    }
