"""``healthscore plan``: recommended plays per account, allocated within the period's capacity.

Reads the scores partition of the same date (run ``score`` first) and the champion model's effect
model; writes ``plans/as_of=DATE/`` atomically beside ``scores/as_of=DATE/``:

- ``plans.parquet``: per account the best plan (expected lift with interval, ARR saved, cost,
  net value, extrapolation flag), two runner-up plans on its saved-vs-cost frontier, whether the
  portfolio allocation funds it, and the learning loop's arm with the propensity of what it runs;
- ``effects.parquet``: per account and kind the estimated effect, interval, propensity, flag;
- ``allocation.json`` (objective, capacity used, marginal value of each resource),
  ``frontier.csv`` (ARR saved vs cost) and ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from models.interventions import allocation, plans, policy
from models.interventions.uplift import PlayEffects, context_frame, segments
from pipeline.config import Params
from pipeline.io import catalog, registry
from pipeline.shared.asof import features_as_of

log = logging.getLogger("healthscore")


class PlanError(RuntimeError):
    """The plan cannot be made (no scores for the date, no effect model, empty catalog)."""


class NoEffectModel(PlanError):
    """The model has no effect model (no play log at training, or effects disabled)."""


@dataclass
class PlanResult:
    path: Path
    as_of: date
    accounts: int
    recommended: int
    funded: int
    arr_saved: float
    cost: float
    seconds: float


def catalog_options(params: Params, kinds: list[str]) -> tuple[plans.Option, ...]:
    """The catalog's plays the effect model knows, one option per kind and timing slot."""
    catalog = params.plan.catalog
    unknown = sorted(set(catalog) - set(kinds))
    if unknown:
        log.warning(
            "plan: catalog kinds the effect model has no estimate for (never recommended): %s",
            ", ".join(unknown),
        )
    unlisted = sorted(set(kinds) - set(catalog))
    if unlisted:
        log.info(
            "plan: logged kinds not in plan.catalog (not recommended): %s", ", ".join(unlisted)
        )
    options = tuple(
        plans.Option(kind=kind, offset_days=int(offset), **play.model_dump(exclude={"offsets"}))
        for kind, play in catalog.items()
        if kind in kinds
        for offset in sorted(set(play.offsets))
    )
    if not options:
        raise PlanError(
            "plan.catalog lists no kind the effect model estimated "
            f"(estimated: {', '.join(kinds) or 'none'})"
        )
    return options


def exclusions(params: Params, options: tuple[plans.Option, ...]) -> list[tuple[str, str]]:
    """``plan.exclusions`` between kinds the plan can use (the others cannot meet anyway)."""
    kinds = {o.kind for o in options}
    return [(a, b) for a, b in params.plan.exclusions if a in kinds and b in kinds]


def read_scores(params: Params, as_of: date) -> pd.DataFrame:
    if not catalog.SCORED.exists(params.output_dir, as_of):
        path = catalog.SCORED.path(params.output_dir, as_of)
        raise PlanError(f"{path} not found: run `healthscore score --as-of {as_of}` first")
    return catalog.SCORED.read(params.output_dir, as_of)


def account_effects(
    effects: PlayEffects, context: pd.DataFrame, scores: pd.DataFrame, modifiers: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n, kinds) effect, lower, upper, propensity of each kind for the scored accounts."""
    p0 = scores["win_probability"].to_numpy(dtype=float)
    seg = segments(scores)
    mods = context[modifiers] if modifiers else None
    point, lo, hi = effects.effects(p0, seg, mods)
    propensity = effects.propensity(context, p0, seg, mods)
    return point, lo, hi, propensity


def fund(
    search: plans.PlanSearch, capacity: dict[str, float | None]
) -> tuple[np.ndarray, np.ndarray, allocation.Allocation | None, int]:
    """The portfolio step: per account the funded plan (0 = business as usual) and its ARR
    saved, the allocation (None when no plan is worth its cost) and the candidates considered."""
    candidates = plans.candidates(search)
    funded = np.zeros(len(search.best), dtype=np.int64)
    saved = np.zeros(len(search.best))
    if not len(candidates.account):
        return funded, saved, None, 0
    portfolio = allocation.allocate(
        candidates.account, candidates.saved, candidates.cost, candidates.csm_hours,
        candidates.exec_hours, capacity,
    )  # fmt: skip
    chosen = portfolio.choice
    rows = candidates.account[chosen]
    funded[rows] = candidates.plan[chosen]
    saved[rows] = candidates.saved[chosen]
    return funded, saved, portfolio, len(candidates.account)


def make_plans(
    params: Params,
    effects: PlayEffects,
    scores: pd.DataFrame,
    context: pd.DataFrame,
    as_of: date,
) -> dict[str, object]:
    """Everything the plan partition holds, as frames and dicts (no I/O)."""
    cfg = params.plan
    kinds = list(effects.kinds_)
    options = catalog_options(params, kinds)
    column = np.array([kinds.index(o.kind) for o in options])
    point, lo, hi, propensity = account_effects(effects, context, scores, effects.modifier_columns_)
    flagged = effects.extrapolated(propensity)
    p0 = scores["win_probability"].to_numpy(dtype=float)
    arr = scores["arr"].to_numpy(dtype=float)
    days = scores["days_to_renewal"].to_numpy(dtype=float)
    lead = np.nan_to_num(days, nan=-1.0)  # no renewal date: no lead-time window holds
    search = plans.search_plans(
        p0,
        point[:, column],
        lo[:, column],
        hi[:, column],
        arr,
        lead,
        options,
        max_plays=cfg.max_plays,
        exclusions=exclusions(params, options),
        extrapolated=flagged[:, column],
        max_exact_plans=cfg.max_exact_plans,
        seed=cfg.seed,
    )
    capacity = cfg.capacity.model_dump()
    funded_plan, funded_saved, portfolio, n_candidates = fund(search, capacity)
    funded_cost = search.plan_cost[funded_plan]
    funded_hours = search.plan_csm_hours[funded_plan]
    funded_exec = search.plan_exec_hours[funded_plan]
    labels = np.array(plans.plan_labels(search.plans, options), dtype=object)
    # the funded plan's lift in win probability (its ARR saved nets out what it gives away)
    distinct, which = np.unique(search.plans[funded_plan], axis=0, return_inverse=True)
    funded_lift = plans.plan_lift(p0, point[:, column], distinct)[np.arange(len(p0)), which.ravel()]
    keep = plans.plan_keep(search.plans, options)  # what a discount leaves of the renewal

    # the learning loop: actions = business as usual, the funded plan, each single option
    singles = np.eye(len(options), dtype=bool)
    eligible_options = plans.eligibility(options, arr, lead)
    recommended_row = search.plans[funded_plan]
    same_as_single = (recommended_row[:, None, :] == singles[None, :, :]).all(axis=2)
    # a random play never needs more of any resource than the funded plan it stands in for,
    # nor gives more of the renewal away
    within = np.ones_like(eligible_options)
    for name, used in (("cost", funded_cost), ("csm_hours", funded_hours),
                       ("exec_hours", funded_exec),
                       ("arr_share", 1 - keep[funded_plan])):  # fmt: skip
        need = np.array([getattr(o, name) for o in options])
        within &= need[None, :] <= used[:, None] + 1e-9
    allowed = np.column_stack(
        [
            np.ones(len(scores), dtype=bool),
            funded_plan > 0,
            eligible_options & ~same_as_single & within,
        ]
    )
    # the experiment runs among the funded accounts: the holdout frees capacity, never adds to it
    eligible = funded_plan > 0
    recommended = eligible.astype(np.int64)  # action 1: the funded plan
    assignment = policy.assign_holdout(
        scores["contract_id"].astype(str).to_numpy(),  # one arm per contract, stable across runs
        recommended,
        allowed,
        eligible,
        cfg.epsilon,
        cfg.random_share,
        cfg.seed,
        salt="plan",
    )
    single_labels = np.array(
        [plans.BUSINESS_AS_USUAL, "", *(o.label for o in options)], dtype=object
    )
    assigned = assignment.assigned
    action = np.where(assigned == 1, labels[funded_plan], single_labels[assigned])
    frame = scores[
        [
            c
            for c in ("account_id", "contract_id", "segment", "csm_id", "arr", "days_to_renewal")
            if c in scores
        ]
    ].assign(
        win_probability=p0,
        best_plan=labels[search.best],
        lift=search.lift,
        lift_low=search.lift_lo,
        lift_high=search.lift_hi,
        arr_saved=search.saved,
        arr_saved_low=search.saved_lo,
        arr_saved_high=search.saved_hi,
        cost=search.cost,
        csm_hours=search.csm_hours,
        exec_hours=search.exec_hours,
        net_value=search.net,
        arr_given_away=arr * (p0 + search.lift) * (1 - keep[search.best]),
        extrapolated=search.extrapolated,
        runner_up_1=np.where(search.runners_up[:, 0] >= 0, labels[search.runners_up[:, 0]], None),
        runner_up_1_arr_saved=search.runners_up_saved[:, 0],
        runner_up_2=np.where(search.runners_up[:, 1] >= 0, labels[search.runners_up[:, 1]], None),
        runner_up_2_arr_saved=search.runners_up_saved[:, 1],
        funded=funded_plan > 0,
        recommended=labels[funded_plan],
        recommended_lift=funded_lift,
        recommended_extrapolated=(search.plans[funded_plan] & flagged[:, column]).any(axis=1),
        recommended_arr_saved=funded_saved,
        recommended_cost=funded_cost,
        recommended_arr_given_away=arr * (p0 + funded_lift) * (1 - keep[funded_plan]),
        recommended_csm_hours=funded_hours,
        recommended_exec_hours=funded_exec,
        arm=assignment.arm,
        action=action,
        propensity=assignment.propensity,
        p_recommended=assignment.p_recommended,
        holdout_propensity=assignment.holdout_propensity,
        as_of=pd.Timestamp(as_of),
    )
    long = pd.DataFrame(
        {
            "account_id": np.repeat(scores["account_id"].to_numpy(), len(kinds)),
            "kind": np.tile(kinds, len(scores)),
            "effect": point.ravel(),
            "effect_low": lo.ravel(),
            "effect_high": hi.ravel(),
            "propensity": propensity[:, 1:].ravel(),
            "extrapolated": flagged.ravel(),
        }
    )
    alloc: dict[str, object] = {"capacity": capacity, "candidates": n_candidates}
    frontier = pd.DataFrame()
    if portfolio is not None:
        alloc |= {
            "objective": portfolio.objective,
            "arr_saved": portfolio.saved,
            "used": portfolio.used,
            "shadow_prices": portfolio.shadow_prices,
            "optimal": portfolio.optimal,
            "message": portfolio.message,
        }
        f = portfolio.frontier
        frontier = pd.DataFrame(
            {"budget": f.budget, "arr_saved": f.saved, "cost": f.cost, "net": f.net,
             "optimal": f.optimal}
        )  # fmt: skip
    return {
        "plans": frame,
        "effects": long,
        "allocation": alloc,
        "frontier": frontier,
        "exact": search.exact,
        "plan_space": len(search.plans),
    }


def run_plan(params: Params, as_of: date) -> PlanResult:
    """Recommend and allocate plays for every scored account; write the partition atomically."""
    started = time.perf_counter()
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    if model.effects is None:
        raise NoEffectModel(
            f"model {params.mlflow.model_name} v{version} has no effect model (no interventions "
            "log at training, or effects.enabled: false): retrain with a play log"
        )
    scores = read_scores(params, as_of)
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
    out = make_plans(params, model.effects, scores, context, as_of)
    frame = out["plans"]
    assert isinstance(frame, pd.DataFrame)
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
        "plan_space": out["plan_space"],
        "exact_search": out["exact"],
        "allocation": out["allocation"],
    }
    with catalog.publish(catalog.PLANS, params.output_dir, as_of) as tmp:
        catalog.PLANNED.write(tmp, frame)
        effects = out["effects"]
        assert isinstance(effects, pd.DataFrame)
        catalog.PLAY_EFFECTS.write(tmp, effects)
        frontier = out["frontier"]
        assert isinstance(frontier, pd.DataFrame)
        catalog.FRONTIER.write(tmp, frontier)
        catalog.ALLOCATION.write(tmp, out["allocation"])
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
        f"{result.arr_saved:,.0f}", f"{result.cost:,.0f}", out["plan_space"],
        "exact" if out["exact"] else "genetic", seconds, target,
    )  # fmt: skip
    return result


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
    day = catalog.latest(catalog.PLANS, params.output_dir)
    if day is None:
        root = params.output_dir / catalog.PLANS.folder
        raise PlanError(f"no plan run in {root}: run `healthscore plan` first")
    return day
