"""``healthscore plan``: recommended plays per account, allocated within the period's capacity.

Reads the scores partition of the same date (run ``score`` first) and the champion model's effect
model; writes ``plans/as_of=DATE/`` atomically beside ``scores/as_of=DATE/``:

- ``plans.parquet``: per account the best plan (expected lift with interval, ARR saved, cost,
  net value, extrapolation flag), two runner-up plans on its saved-vs-cost frontier, whether the
  portfolio allocation funds it, and the learning loop's arm with the propensity of what it runs;
- ``effects.parquet``: per account and kind the estimated effect, interval, propensity, flag
  (grounded by the experiment where it has read a kind out);
- ``assignments.parquet``: every arm assigned (funded plays, holdout and exploration arms, the
  no-play controls) in the data contract's ``assignments`` shape, to log back;
- ``experiment.csv``: the randomised plays' read-out per kind (when there are any);
- ``allocation.json`` (objective, capacity used, marginal value of each resource),
  ``frontier.csv`` (ARR saved vs cost) and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from models.config import ExplorationConfig, PlanConfig
from models.interventions import plans, policy, portfolio
from models.interventions.plans import Option
from models.interventions.uplift import PERIODS, context_frame
from pipeline import io
from pipeline.config import Params
from pipeline.errors import InputError
from pipeline.io import catalog, registry
from pipeline.shared.asof import features_as_of
from pipeline.shared.experiment import Readout, read_experiment
from pipeline.threads import thread_limits

log = logging.getLogger("healthscore")


class PlanError(InputError):
    """The plan cannot be made (no scores for the date, no effect model, empty catalog)."""


class NoEffectModel(PlanError):
    """The model has no effect model (no play log at training, effects disabled, or the log
    could not give an estimate): the message says which, as training recorded it."""


@dataclass
class PlanResult:
    """Where a plan run went, its size, what it funds and what that saves."""

    path: Path
    as_of: date
    accounts: int
    recommended: int
    funded: int
    arr_saved: float
    cost: float
    seconds: float


def catalog_options(
    cfg: PlanConfig, kinds: Sequence[str], why: dict[str, str] | None = None
) -> tuple[Option, ...]:
    """The catalog's plays the effect model knows; the kinds only one side knows are logged,
    with ``why`` training left a kind out where it says.

    Raises:
        PlanError: the catalog lists no kind the effect model estimated.
    """
    try:
        offer = portfolio.catalog_options(cfg, kinds)
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    if offer.unknown:
        reasons = why or {}
        log.warning(
            "plan: catalog kinds the effect model has no estimate for (never recommended): %s",
            "; ".join(f"{k} ({reasons[k]})" if k in reasons else k for k in offer.unknown),
        )
    if offer.unlisted:
        log.info(
            "plan: logged kinds not in plan.catalog (not recommended): %s",
            ", ".join(offer.unlisted),
        )
    return offer.options


def read_scores(output_dir: Path, as_of: date) -> pd.DataFrame:
    """The scores partition of ``as_of``, which the plan of that date is made for."""
    if not catalog.SCORED.exists(output_dir, as_of):
        path = catalog.SCORED.path(output_dir, as_of)
        raise PlanError(f"{path} not found: run `healthscore score --as-of {as_of}` first")
    return catalog.SCORED.read(output_dir, as_of)


def run_plan(params: Params, as_of: date) -> PlanResult:
    """Recommend and allocate plays for every scored account; write the partition atomically.

    Every thread pool (the effect model's LightGBM, OpenMP, BLAS …) is held to ``train.n_jobs``.
    """
    with thread_limits(params.train.n_jobs):
        return _plan(params, as_of)


def _plan(params: Params, as_of: date) -> PlanResult:
    started = time.perf_counter()
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    if model.effects is None:
        why = model.trained.get(
            registry.EFFECTS_NOTE, "no interventions log at training, or effects.enabled: false"
        )
        raise NoEffectModel(
            f"model {params.mlflow.model_name} v{version} has no effect model ({why}): no plays "
            "to recommend until a training run estimates one"
        )
    scores = read_scores(params.output_dir, as_of)
    scored_by = set(scores["model_version"].astype(str)) if "model_version" in scores else set()
    if scored_by and scored_by != {version}:
        log.warning(
            "plan: the scores of %s come from model v%s, the effects from v%s: re-score for "
            "win probabilities of the same model", as_of, ", ".join(sorted(scored_by)), version,
        )  # fmt: skip
    snapshot, _ = features_as_of(params.data, params.features, model, as_of)
    missing = sorted(set(scores["account_id"]) - set(snapshot["account_id"]))
    if missing:
        raise PlanError(
            f"{len(missing)} scored accounts have no features as of {as_of} in the data now "
            f"(e.g. {', '.join(map(str, missing[:5]))}): the data changed since scoring; "
            f"re-run `healthscore score --as-of {as_of}`"
        )
    snapshot = snapshot.copy().set_index("account_id").reindex(scores["account_id"]).reset_index()
    context = context_frame(snapshot, model.catalog, model.features)
    skipped = json.loads(model.trained.get(registry.EFFECTS_SKIPPED, "{}"))
    options = catalog_options(params.plan, model.effects.kinds_, skipped)
    readout, team = None, None
    if params.data.source != "table":  # a prebuilt table holds no play log nor experiment
        with io.read_raw(params.data) as raw:
            cfg = params.plan.exploration
            readout = read_experiment(
                raw, params.features, model, as_of, cfg.surrogate_days, cfg.min_rows, cfg.adjust
            )
            team = team_plays(raw, params.features.frequency, as_of)
    grounding = _grounding(params.plan.exploration, readout)
    reprediction = None
    weight = params.plan.reprediction_weight
    # weighted by the experiment's read-out, nothing moves until there is one
    wanted = readout is not None if weight == "experiment" else weight > 0
    if wanted:
        kinds = list(model.effects.kinds_)
        reprediction = portfolio.reprediction_lifts(model.ensemble, snapshot[model.features], kinds)
    out = portfolio.make_plans(
        params.plan, model.effects, scores, context, as_of, options, grounding, team,
        reprediction, None if readout is None else readout.surrogate,
    )  # fmt: skip
    frame = out.plans
    target = catalog.PLANS.path(params.output_dir, as_of)
    funded = frame[frame["funded"]]
    summary = {
        "as_of": as_of.isoformat(),
        "model_version": version,
        "accounts": len(frame),
        "with_positive_plan": int((frame["best_plan"] != plans.BUSINESS_AS_USUAL).sum()),
        "funded": len(funded),
        "arr_saved_funded": float(funded["recommended_arr_saved"].sum()),
        "cost_funded": float(funded["recommended_cost"].sum()),
        "extrapolated_funded": int(funded["recommended_extrapolated"].sum()),
        "arms": frame["arm"].value_counts().to_dict(),
        "explored": out.explored,
        "experiment_rows": readout.rows if readout else 0,
        "grounded": [] if grounding is None else sorted(grounding.shift[grounding.se > 0].index),
        "reprediction_weights": out.reprediction_weights,
        "plan_space": out.plan_space,
        "exact_search": out.exact,
        "allocation": out.allocation,
    }
    with catalog.publish(catalog.PLANS, params.output_dir, as_of) as tmp:
        catalog.PLANNED.write(tmp, frame)
        catalog.PLAY_EFFECTS.write(tmp, out.effects)
        catalog.FRONTIER.write(tmp, out.frontier)
        catalog.ASSIGNED.write(tmp, out.assignments)
        if readout is not None:
            catalog.EXPERIMENT.write(tmp, _experiment_table(readout))
        catalog.ALLOCATION.write(tmp, out.allocation)
        catalog.PLAN_SUMMARY.write(tmp, summary)
    seconds = time.perf_counter() - started
    result = PlanResult(
        target, as_of, len(frame), summary["with_positive_plan"], len(funded),
        summary["arr_saved_funded"], summary["cost_funded"], round(seconds, 1),
    )  # fmt: skip
    log.info(
        "plan: %s accounts, %s with a plan worth its cost, %s funded within capacity "
        "(ARR saved %s for %s); %d plans searched (%s); %.1f s → %s",
        f"{result.accounts:,}", f"{result.recommended:,}", f"{result.funded:,}",
        f"{result.arr_saved:,.0f}", f"{result.cost:,.0f}", out.plan_space,
        "exact" if out.exact else "genetic", seconds, target,
    )  # fmt: skip
    return result


def team_plays(raw: io.RawData, frequency: str, as_of: date, periods: int = 3) -> float | None:
    """Plays the team ran per period over the last ``periods`` before ``as_of`` (from the
    interventions log): the capacity exploration takes its share of; None without a log."""
    if not raw.has("interventions"):
        return None
    end = pd.Timestamp(as_of, tz="UTC")
    start = end - PERIODS[frequency] * periods
    (count,) = raw.connection.execute(
        "SELECT count(*) FROM interventions WHERE ts < ? AND ts >= ?", [end, start]
    ).fetchone()
    return float(count) / periods if count else None


def _grounding(cfg: ExplorationConfig, readout: Readout | None) -> portfolio.Grounding | None:
    """The experiment's read-out logged per kind, and the grounding it gives the estimates."""
    if readout is None:
        return None
    table = readout.surrogate
    for kind, row in table.iterrows():
        log.info(
            "plan: experiment %-18s %s (%d played, %d controls); the effect model said %+.4f",
            kind,
            "too few rows" if np.isnan(row["ate"])
            else f"{row['ate']:+.4f} [{row['lo']:+.4f}, {row['hi']:+.4f}]",
            row["rows"], row["control_rows"], row["observational"],
        )  # fmt: skip
    if cfg.ground == "off":
        return None
    usable = table["ate"].notna()
    return portfolio.Grounding(
        shift=table["shift"].where(usable, 0.0),
        se=table["se"].where(usable, 0.0),
        ate=table["ate"],
        slope=readout.slope,
        mode=cfg.ground,
    )


def _experiment_table(readout: Readout) -> pd.DataFrame:
    """The read-out per kind: surrogate and renewal estimates side by side (experiment.csv)."""
    renewals = readout.renewals[["ate", "lo", "hi", "rows"]].add_prefix("renewal_")
    return readout.surrogate.join(renewals).reset_index()


def evaluate_plan(params: Params, as_of: date) -> dict[str, float]:
    """The learning loop's read-out of a past plan run, from renewals known since.

    A plan row's outcome is its snapshot's renewal label in the current training set (rebuilt
    on later data by ``healthscore features``); rows whose renewal is not known yet are left out.
    """
    path = catalog.PLANNED.path(params.output_dir, as_of)
    if not path.exists():
        raise PlanError(f"{path} not found: no plan run on {as_of}")
    frame = catalog.PLANNED.read(params.output_dir, as_of)
    labels_path = catalog.TRAINING_SET.path(params.output_dir)
    if not labels_path.exists():
        raise PlanError(f"{labels_path} not found: run `healthscore features` on the later data")
    labels = catalog.TRAINING_SET.read(
        params.output_dir, columns=["account_id", "as_of", "renewed"]
    )
    labels = labels[pd.to_datetime(labels["as_of"]) == pd.Timestamp(as_of)]
    joined = frame.merge(labels[["account_id", "renewed"]], on="account_id", how="inner")
    joined = joined[joined["renewed"].notna()]
    arms = joined["arm"].isin(["plan", "holdout_bau"])
    if joined.empty or joined.loc[arms, "arm"].nunique() < 2:
        raise PlanError(
            f"plans of {as_of}: {len(joined)} renewals known so far, not both a plan and a "
            "held-out group: evaluate once more renewals have landed"
        )
    result = policy.holdout_uplift(
        joined["arm"].to_numpy(dtype=object),
        joined["recommended"].to_numpy(dtype=object),
        joined["action"].to_numpy(dtype=object),
        joined["holdout_propensity"].to_numpy(dtype=float),
        joined["renewed"].astype(float).to_numpy(),
        joined["recommended_lift"].to_numpy(dtype=float),
        joined["arr"].to_numpy(dtype=float),
    )
    result = {"as_of": as_of.isoformat(), "renewals_known": len(joined), **result}
    catalog.PLAN_EVALUATION.write(path.parent, result)  # whole or not at all
    log.info(
        "plan-eval: %s: %d renewals known; uplift of following the plans %+.3f [%+.3f, %+.3f]",
        as_of, len(joined), result.get("uplift", float("nan")),
        result.get("uplift_ci_low", float("nan")), result.get("uplift_ci_high", float("nan")),
    )  # fmt: skip
    return result


def latest_plan(params: Params) -> date:
    """The date of the most recent plan run."""
    return catalog.pick_run(catalog.PLANS, params.output_dir, None, "run `healthscore plan` first")
