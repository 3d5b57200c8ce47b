"""``healthscore score --as-of DATE``: the nightly batch that CS teams read in the morning.

Flow: load the model by alias (or ``score.version``) → features of every account with a contract
in force at ``as_of`` (or the rows of a prebuilt table) → check they are the model's → in chunks:
win probability with its interval, exact contributions → points of health, components, drivers
in plain words → ARR at risk and a unique priority → changes and alerts against the previous run
→ drift and expected performance → one partition ``scores/as_of=DATE/`` written atomically.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from models.explain import drivers as explain
from models.scoring import forecast, monitoring
from models.scoring import health as scoring
from pipeline.config import Params
from pipeline.io import catalog, registry
from pipeline.io.registry import HealthModel
from pipeline.shared import asof

log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class ScoreResult:
    path: Path
    as_of: date
    accounts: int
    model_version: str
    alerts: int
    bands: dict[str, int]
    seconds: float


def run_score(params: Params, as_of: date, input_path: Path | None = None) -> ScoreResult:
    """Score every account active at ``as_of`` and write its partition (replacing a re-run)."""
    started = time.perf_counter()
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    log.info(
        "score: model %s v%s (trained through %s), as of %s",
        params.mlflow.model_name, version, model.trained.get("trained_through", "?"), as_of,
    )  # fmt: skip
    snapshot, outcomes = asof.features_as_of(params.data, params.features, model, as_of, input_path)
    log.info("score: %s accounts with a contract in force", f"{len(snapshot):,}")
    scores, drivers, points = score_snapshot(snapshot, model, params, version, as_of)
    previous = catalog.runs(catalog.SCORES, params.output_dir, before=as_of)
    changes = alerts = None
    if previous:
        changes, alerts = _compare(params, previous[-1], scores, points)
    drift = _monitor(model, snapshot, scores, params)
    window = params.score.forecast_days
    outlook = forecast.renewal_forecast(
        scores, window, model.contraction, [c for c in ("segment", "csm_id") if c in scores]
    )
    backtest = _backtest(params, previous, window, outcomes)
    target = catalog.SCORES.path(params.output_dir, as_of)
    with catalog.publish(catalog.SCORES, params.output_dir, as_of) as tmp:
        catalog.SCORED.write(tmp, scores)
        catalog.DRIVERS.write(tmp, drivers)
        catalog.POINTS.write(tmp, points.reset_index())
        catalog.DRIFT.write(tmp, drift)
        catalog.FORECAST.write(tmp, outlook)
        catalog.BACKTEST.write(tmp, backtest)
        if changes is not None and alerts is not None:
            catalog.CHANGES.write(tmp, changes)
            catalog.ALERTS.write(tmp, alerts)
        summary = _summary(scores, drift, alerts, version, model, as_of, previous)
        total = outlook[outlook["group"] == "total"].iloc[0]
        figures = ("renewals_due", "arr_due", "expected_churned_arr", "expected_contraction_arr")
        summary["forecast"] = {k: float(total[k]) for k in figures}
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


def score_snapshot(
    snapshot: pd.DataFrame, model: HealthModel, params: Params, version: str, as_of: date
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Scores, drivers (long form) and per-feature points for one snapshot, chunk by chunk."""
    ensemble = model.ensemble
    names = model.features
    catalog = model.catalog.set_index("name")
    components = catalog["component"].to_dict()
    descriptions = catalog["description"].to_dict()
    cfg = params.score
    parts, driver_parts, point_parts = [], [], []
    for start in range(0, len(snapshot), cfg.chunk_rows):
        chunk = snapshot.iloc[start : start + cfg.chunk_rows]
        X = chunk[names]
        contributions = ensemble.contributions(X)
        log_odds = contributions.sum(axis=1).to_numpy()
        p = ensemble.calibrator_.predict(log_odds)
        low, high = ensemble.calibrator_.interval(log_odds)
        base = float(ensemble.calibrator_.predict(contributions["_base"].to_numpy()[:1])[0])
        points = explain.health_points(contributions, p, base)
        per_component = explain.component_points(points, components)
        top = explain.top_drivers(points, X, descriptions, components, cfg.top_drivers)
        health = scoring.health_score(p)
        columns = ["account_id", "contract_id", *_present(chunk, asof.ACCOUNT_COLUMNS), "arr"]
        frame = chunk[columns].assign(
            days_to_renewal=chunk["days_to_renewal"].to_numpy(),
            win_probability=p,
            win_probability_low=np.minimum(low, p),
            win_probability_high=np.maximum(high, p),
            health=health,
            band=scoring.health_band(health, cfg),
            arr_at_risk=chunk["arr"].to_numpy() * (1 - p),
            # beyond the horizon the model extrapolates from the nearest renewals it learned on
            within_horizon=chunk["days_to_renewal"].isna().to_numpy()
            | (chunk["days_to_renewal"].to_numpy() <= params.features.horizon_days),
            **{f"points_{c}": per_component[c].to_numpy() for c in per_component.columns},
        )
        frame = frame.join(_driver_columns(top, chunk.index, cfg.top_drivers))
        parts.append(frame)
        ids = chunk["account_id"].to_numpy()
        driver_parts.append(
            top.assign(account_id=ids[chunk.index.get_indexer(top["row"])]).drop(columns="row")
        )
        point_parts.append(points.astype("float32").set_index(pd.Index(ids, name="account_id")))
    scores = pd.concat(parts, ignore_index=True)
    scores = scores.assign(
        priority=scoring.priority_rank(
            scores["arr_at_risk"].to_numpy(), scores["arr"].to_numpy(), scores["account_id"]
        ),
        model_version=version,
        as_of=pd.Timestamp(as_of),
    ).sort_values("priority", kind="stable")
    drivers = pd.concat(driver_parts, ignore_index=True)
    drivers = drivers.assign(value=drivers["value"].map(_text))
    return scores.reset_index(drop=True), drivers, pd.concat(point_parts)


def _compare(
    params: Params, previous: date, scores: pd.DataFrame, points: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What changed since the previous run, attributed to components and features, and alerts."""
    before = catalog.SCORED.read(params.output_dir, previous)
    before_points = catalog.POINTS.read(params.output_dir, previous).set_index("account_id")
    joined = scores[["account_id", "health", "band"]].merge(
        before[["account_id", "health", "band"]], on="account_id", how="left",
        suffixes=("", "_previous"),
    )  # fmt: skip
    common = [c for c in points.columns if c in before_points.columns]
    delta = points[common].sub(before_points[common].reindex(points.index), fill_value=np.nan)
    delta_frame = delta.reindex(joined["account_id"].to_numpy())
    moves = explain.top_drivers(
        delta_frame.fillna(0).set_axis(joined.index), delta_frame.set_axis(joined.index),
        {c: c for c in common}, {}, k=3,
    )  # fmt: skip
    changes = joined.assign(
        health_change=joined["health"] - joined["health_previous"],
        previous_as_of=pd.Timestamp(previous),
    )
    for kind, label in (("risk", "fell"), ("strength", "rose")):
        top = moves[(moves["kind"] == kind) & (moves["rank"] == 1)].set_index("row")
        changes[f"most_{label}"] = top["feature"].reindex(changes.index)
        changes[f"most_{label}_points"] = top["points"].reindex(changes.index)
    score_points = scores.set_index("account_id").filter(like="points_")
    before_components = before.set_index("account_id").filter(like="points_")
    component_change = score_points.sub(before_components.reindex(score_points.index))
    changes = changes.join(
        component_change.add_suffix("_change").reset_index(drop=True).set_axis(changes.index)
    )
    order = scoring.BAND_ORDER
    worse = changes["band"].map(order) < changes["band_previous"].map(order)
    dropped = changes["health_change"] <= -params.score.alert_drop
    alerts = changes[worse | dropped].assign(
        reason=np.where(
            worse[worse | dropped], "band worsened", f"health fell ≥ {params.score.alert_drop}"
        )
    )
    alerts = alerts.merge(scores[["account_id", "arr", "priority"]], on="account_id")
    alerts = alerts.sort_values("priority", kind="stable").reset_index(drop=True)
    for row in alerts.head(5).itertuples():
        log.warning(
            "score: alert %s: health %d → %d (%s), band %s → %s",
            row.account_id, row.health_previous, row.health, row.reason, row.band_previous,
            row.band,
        )  # fmt: skip
    return changes, alerts


def _backtest(
    params: Params, previous: list[date], window: int, outcomes: pd.DataFrame | None
) -> pd.DataFrame:
    """Past runs' forecasts beside what happened, for runs whose window has closed.

    A run scored with a model trained on its own period is in-sample: these figures are honest
    only for runs made before that model's training data ended (as a nightly job makes them).
    """
    columns = ["as_of", "model_version", "expected_auc", "renewals_due", "forecast_churned_arr",
               "realised_churned_arr", "forecast_renewal_rate", "realised_renewal_rate",
               "realised_auc"]  # fmt: skip
    if not previous or outcomes is None:
        return pd.DataFrame(columns=columns)
    rows = []
    for day in previous:
        past = catalog.SCORED.read(params.output_dir, day)
        if "contract_id" not in past:
            continue
        figures = forecast.realised(past, outcomes, window)
        if figures is None:
            continue
        rows.append({"as_of": str(day), "model_version": str(past["model_version"].iloc[0]),
                     **figures})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _monitor(
    model: HealthModel, snapshot: pd.DataFrame, scores: pd.DataFrame, params: Params
) -> pd.DataFrame:
    """PSI of every feature and of the score against training, on the accounts whose renewal
    is within the horizon (the population the model learned from); flagged above the
    threshold."""
    # the model learned from snapshots within the horizon of a renewal: compare like with like
    horizon = params.features.horizon_days
    due = snapshot["days_to_renewal"].notna() & (snapshot["days_to_renewal"] <= horizon)
    if due.sum() < 100:
        due = pd.Series(True, index=snapshot.index)
    snapshot, scores = (
        snapshot[due.to_numpy()],
        scores.set_index("account_id").loc[snapshot.loc[due, "account_id"]],
    )
    rows = []
    if model.profile is not None:
        psi = monitoring.population_stability(model.profile, snapshot[model.features])
        rows += [("feature", name, value) for name, value in psi.items()]
    if model.reference_scores is not None:
        value = monitoring.psi_of_scores(model.reference_scores, scores["win_probability"])
        rows.append(("score", "win_probability", value))
    drift = pd.DataFrame(rows, columns=["kind", "name", "psi"])
    return drift.assign(flagged=drift["psi"] > params.score.psi_threshold).sort_values(
        "psi", ascending=False, kind="stable"
    )


def _summary(
    scores: pd.DataFrame, drift: pd.DataFrame, alerts: pd.DataFrame | None, version: str,
    model: HealthModel, as_of: date, previous: list[date],
) -> dict[str, object]:  # fmt: skip
    bands = scores["band"].value_counts().to_dict()
    return {
        "as_of": as_of.isoformat(),
        "model_version": version,
        "model": model.trained,
        "accounts": len(scores),
        "arr": float(scores["arr"].sum()),
        "arr_at_risk": float(scores["arr_at_risk"].sum()),
        "bands": {k: int(bands.get(k, 0)) for k in ("red", "yellow", "green")},
        "expected_auc": monitoring.expected_auc(scores["win_probability"].to_numpy()),
        "alerts": 0 if alerts is None else len(alerts),
        "previous_as_of": previous[-1].isoformat() if previous else None,
        "drifting": drift.loc[drift["flagged"], "name"].tolist(),
    }


def _driver_columns(top: pd.DataFrame, index: pd.Index, k: int) -> pd.DataFrame:
    """``top_risk_1`` … ``top_strength_k`` as text columns, one row per account."""
    out = pd.DataFrame(index=index)
    for kind in ("risk", "strength"):
        part = top[top["kind"] == kind]
        for rank in range(1, k + 1):
            chosen = part[part["rank"] == rank].set_index("row")["text"]
            out[f"top_{kind}_{rank}"] = chosen.reindex(index)
    return out


def _present(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if c in frame.columns]


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
