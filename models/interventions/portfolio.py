"""One planning run, pure: scored accounts and the effect model in, the plan tables out.

:func:`make_plans` chains the steps of ``healthscore plan``: the catalog's options the effect
model knows (:func:`catalog_options`), each account's estimated effects (:func:`account_effects`),
the plan search (:mod:`~models.interventions.plans`), the portfolio allocation within capacity
(:func:`fund`), the exploration across every kind (:mod:`~models.interventions.experiment`)
and the learning loop's randomised holdout (:mod:`~models.interventions.policy`), and lays the
results out as the frames the plan partition holds. Each kind's effects may first be grounded by
what the experiment has read out so far (:class:`Grounding`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.interventions import one_more_play
from models.config import PlanConfig
from models.errors import ModelInputError
from models.interventions import allocation, experiment, plans, policy
from models.interventions.allocation import Allocation
from models.interventions.uplift import PlayEffects, segments


@dataclass(frozen=True)
class CatalogOptions:
    """The catalog's plays the effect model knows, and the kinds left out on either side.

    Attributes:
        options: one option per catalog kind the effect model estimated and timing slot.
        unknown: catalog kinds the effect model has no estimate for (never recommended).
        unlisted: kinds the effect model estimated that the catalog does not list.
    """

    options: tuple[plans.Option, ...]
    unknown: tuple[str, ...]
    unlisted: tuple[str, ...]


@dataclass(frozen=True)
class AccountEffects:
    """Per account (rows) and estimated kind (columns, the effect model's order).

    Attributes:
        point: the estimated effect on the win probability, ``(n, kinds)``.
        low: its lower bound, ``(n, kinds)``.
        high: its upper bound, ``(n, kinds)``.
        propensity: the probability of no play, then of each kind, ``(n, 1 + kinds)``.
    """

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    propensity: np.ndarray


class _Classifier(Protocol):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


def reprediction_lifts(model: _Classifier, X: pd.DataFrame, kinds: Sequence[str]) -> np.ndarray:
    """(n, kinds): the win model's probability with one more play of each kind in the
    account's history (:func:`features.interventions.one_more_play`), less its probability
    as is: the play's effect as the win model learned it from the log (an S-learner).

    Confounded like any reading of the log, but not the way the effect model is: it comes
    from the win model's whole fit, not from the decision rows alone."""
    base = model.predict_proba(X)[:, 1]
    lifts = np.zeros((len(X), len(kinds)))
    for j, kind in enumerate(kinds):
        lifts[:, j] = model.predict_proba(one_more_play(X, kind))[:, 1] - base
    return lifts


def blend_reprediction(
    estimated: AccountEffects, reprediction: np.ndarray, weight: float | np.ndarray
) -> AccountEffects:
    """The effect model's estimates moved ``weight`` (one share, or one per kind) of the way to
    the win model's re-prediction (:func:`reprediction_lifts`), each interval widened by the
    distance moved: where the two readings of the log disagree, neither is sure."""
    weight = np.asarray(weight, dtype=float)
    if not np.any(weight > 0):
        return estimated
    moved = weight * (np.asarray(reprediction, dtype=float) - estimated.point)
    point = estimated.point + moved
    below = np.hypot(estimated.point - estimated.low, moved)
    above = np.hypot(estimated.high - estimated.point, moved)
    return AccountEffects(point, point - below, point + above, estimated.propensity)


def experiment_weights(
    estimated: np.ndarray,
    reprediction: np.ndarray,
    kinds: Sequence[str],
    experiment: pd.DataFrame | None,
) -> np.ndarray:
    """Per kind, the share of the way from the effect model to the re-prediction that the
    experiment's read-out supports.

    The read-out says how far the effect model is off on its randomised rows (``shift``, with
    its standard error ``se``); the re-prediction says the effect model is off by ``gap`` (the
    two averages' difference over the book). The weight is the least-squares coefficient of
    the one on the other, shrunk by the read-out's noise: ``shift·gap / (gap² + se²)``, clipped
    to [0, 1]. A read-out as far as the re-prediction, and sure of it, moves a kind all the way;
    one pointing the other way, or lost in its noise, leaves it where the effect model put it;
    a kind the experiment has not read keeps weight 0.

    Args:
        estimated: (n, kinds) the effect model's per-account estimates.
        reprediction: (n, kinds) :func:`reprediction_lifts` of the same accounts.
        kinds: the columns' kinds.
        experiment: the read-out per kind (index: kind; columns ``shift`` and ``se``), or None.
    """
    weights = np.zeros(len(kinds))
    if experiment is None or not {"shift", "se"} <= set(experiment.columns):
        return weights
    gap = np.asarray(reprediction, float).mean(axis=0) - np.asarray(estimated, float).mean(axis=0)
    for j, kind in enumerate(kinds):
        if kind not in experiment.index:
            continue
        shift, se = float(experiment.loc[kind, "shift"]), float(experiment.loc[kind, "se"])
        if np.isfinite(shift) and np.isfinite(se) and gap[j] ** 2 + se**2 > 0:
            weights[j] = np.clip(shift * gap[j] / (gap[j] ** 2 + se**2), 0.0, 1.0)
    return weights


@dataclass(frozen=True)
class Funding:
    """The portfolio step's outcome.

    Attributes:
        plan: per account the funded plan, an index into ``PlanSearch.plans`` (0 = business
            as usual).
        saved: per account the funded plan's ARR saved (0 where none is funded).
        allocation: the allocation; None when there is no account to allocate.
        candidates: how many (account, plan) candidates the allocation considered (business
            as usual for every account, and each plan worth its cost).
    """

    plan: np.ndarray
    saved: np.ndarray
    allocation: Allocation | None
    candidates: int


@dataclass(frozen=True)
class PlanTables:
    """Everything the plan partition holds.

    Attributes:
        plans: one row per scored account (in the order of the scores): the best plan, its
            runners-up, the funded plan and the learning loop's arm, action and propensities.
        effects: one row per (account, kind): the estimated effect, its interval, the
            propensity and the extrapolation flag.
        allocation: the capacity, the candidates considered and, when there was anything to
            allocate, the allocation's objective, ARR saved, resources used, shadow prices,
            whether it is optimal and the solver's message.
        frontier: ARR saved against cost over budgets (empty when there was nothing to
            allocate).
        exact: whether the plan space was enumerated exactly (else searched genetically).
        plan_space: how many plans the search considered per account.
        assignments: every arm the run assigns, in the data contract's ``assignments`` shape
            (account_id, ts, arm, propensity, source) plus ``offset_days``: the funded plays,
            the holdout's and the exploration's arms, no-play controls included.
        explored: how many accounts the exploration drew (plays and controls).
        reprediction_weights: per kind, the share of the way its estimates moved to the
            re-prediction (0 everywhere when it is off).
    """

    plans: pd.DataFrame
    effects: pd.DataFrame
    allocation: dict[str, Any]
    frontier: pd.DataFrame
    exact: bool
    plan_space: int
    assignments: pd.DataFrame
    explored: int
    reprediction_weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Grounding:
    """Per kind, what an experiment measured, and how it corrects the effect model's estimates.

    Attributes:
        shift: per kind, the experiment's average minus the effect model's over the same rows
            (0: no experiment).
        ate: per kind, the experiment's average (NaN: none).
        se: per kind, the experiment's standard error (0: none).
        slope: mean of p(1 − p) over the experiment's rows (for ``mode="slope"``).
        mode: ``"shift"`` adds ``shift`` to every account's estimate and widens its interval by
            ``se``; ``"shrink"`` adds it shrunk by how sure the experiment is of it (empirical
            Bayes across kinds, :func:`~models.interventions.experiment.ground`); ``"slope"``
            replaces the estimate by ``ate × p(1 − p) / slope``.
    """

    shift: pd.Series
    se: pd.Series
    ate: pd.Series | None = None
    slope: float = 0.25
    mode: str = "shrink"

    def apply(
        self, estimated: AccountEffects, kinds: Sequence[str], p0: np.ndarray
    ) -> AccountEffects:
        """The estimates corrected per kind, their intervals widened by the experiment's error."""
        z = 1.959963984540054
        point, se = estimated.point.copy(), (estimated.high - estimated.low) / (2 * z)
        if self.mode == "slope" and self.ate is not None:
            scale = np.asarray(p0, dtype=float) * (1 - np.asarray(p0, dtype=float)) / self.slope
            for j, kind in enumerate(kinds):
                if kind in self.ate.index and np.isfinite(self.ate[kind]):
                    point[:, j] = self.ate[kind] * scale
                    se[:, j] = self.se[kind] * scale
        else:
            # a kind without an experiment (se 0) is not read out: it neither moves nor
            # counts toward how far the kinds' biases spread
            table = pd.DataFrame({"ate": self.shift.where(self.se > 0), "se": self.se})
            table = table.reindex(kinds)
            observed = pd.Series(0.0, index=list(kinds))
            out = experiment.ground(point, se, kinds, table, observed, shrink=self.mode == "shrink")
            point, se = out.effect, out.se
        return AccountEffects(
            point=point, low=point - z * se, high=point + z * se, propensity=estimated.propensity
        )


def catalog_options(cfg: PlanConfig, kinds: Sequence[str]) -> CatalogOptions:
    """The catalog's plays the effect model knows, one option per kind and timing slot.

    Args:
        cfg: the ``plan`` section (its ``catalog``).
        kinds: the kinds the effect model estimated.

    Returns:
        The options in catalog order (then by offset), and the kinds only one side knows.

    Raises:
        ValueError: the catalog lists no kind the effect model estimated.
    """
    catalog = cfg.catalog
    options = tuple(
        plans.Option(kind=kind, offset_days=int(offset), **play.model_dump(exclude={"offsets"}))
        for kind, play in catalog.items()
        if kind in kinds
        for offset in sorted(set(play.offsets))
    )
    if not options:
        raise ModelInputError(
            "plan.catalog lists no kind the effect model estimated "
            f"(estimated: {', '.join(kinds) or 'none'})"
        )
    return CatalogOptions(
        options=options,
        unknown=tuple(sorted(set(catalog) - set(kinds))),
        unlisted=tuple(sorted(set(kinds) - set(catalog))),
    )


def exclusions(cfg: PlanConfig, options: Sequence[plans.Option]) -> list[tuple[str, str]]:
    """``plan.exclusions`` between kinds the plan can use (the others cannot meet anyway)."""
    kinds = {o.kind for o in options}
    return [(a, b) for a, b in cfg.exclusions if a in kinds and b in kinds]


def account_effects(
    effects: PlayEffects, context: pd.DataFrame, scores: pd.DataFrame, modifiers: Sequence[str]
) -> AccountEffects:
    """Effect with its interval and propensity of each kind, for the scored accounts.

    Args:
        effects: the fitted effect model.
        context: the decision context of each account (rows in the order of ``scores``).
        scores: ``win_probability`` and, when present, ``segment`` of each account.
        modifiers: the context columns the effect varies with (none: one shift per kind).
    """
    p0 = scores["win_probability"].to_numpy(dtype=float)
    seg = segments(scores)
    mods = context[list(modifiers)] if modifiers else None
    point, lo, hi = effects.effects(p0, seg, mods)
    propensity = effects.propensity(context, p0, seg, mods)
    return AccountEffects(point, lo, hi, propensity)


def fund(
    search: plans.PlanSearch,
    capacity: Mapping[str, float | None],
    exclude: np.ndarray | None = None,
) -> Funding:
    """The portfolio step: the plan funded per account within ``capacity`` and its ARR saved.

    Args:
        search: the plan search over the accounts.
        capacity: ``csm_hours``, ``exec_hours`` and ``budget`` of the period (None: unlimited).
        exclude: (n,) accounts funded nothing (e.g. drawn by the exploration).
    """
    candidates = plans.candidates(search)
    if exclude is not None:
        keep = ~np.asarray(exclude, dtype=bool)[candidates.account]
        candidates = plans.Candidates(
            **{f: getattr(candidates, f)[keep] for f in candidates.__dataclass_fields__}
        )
    funded = np.zeros(len(search.best), dtype=np.int64)
    saved = np.zeros(len(search.best))
    if not len(candidates.account):
        return Funding(funded, saved, None, 0)
    portfolio = allocation.allocate(
        candidates.account, candidates.saved, candidates.cost, candidates.csm_hours,
        candidates.exec_hours, capacity,
    )  # fmt: skip
    chosen = portfolio.choice
    rows = candidates.account[chosen]
    funded[rows] = candidates.plan[chosen]
    saved[rows] = candidates.saved[chosen]
    return Funding(funded, saved, portfolio, len(candidates.account))


def make_plans(
    cfg: PlanConfig,
    effects: PlayEffects,
    scores: pd.DataFrame,
    context: pd.DataFrame,
    as_of: date,
    options: Sequence[plans.Option] | None = None,
    grounding: Grounding | None = None,
    team_plays: float | None = None,
    reprediction: np.ndarray | None = None,
    readout: pd.DataFrame | None = None,
) -> PlanTables:
    """Recommended plays per account, allocated within capacity, with the learning loop's arms.

    The exploration draws first (``cfg.exploration.share`` of the plays the whole capacity
    would fund, across every kind and eligible account, with as many no-play controls); what
    its plays use comes off the capacity the recommendations are funded from.

    Args:
        cfg: the ``plan`` section (catalog, exclusions, capacity, search and holdout settings).
        effects: the fitted effect model.
        scores: one row per account: ``account_id``, ``contract_id``, ``arr``,
            ``days_to_renewal``, ``win_probability`` (and ``segment``, ``csm_id`` if present).
        context: the decision context of each account, rows in the order of ``scores``.
        as_of: the date of the run.
        options: the options to plan with; None: :func:`catalog_options` of ``cfg``.
        grounding: per-kind corrections the experiment measured (None: the estimates as fitted).
        team_plays: plays the team runs in a period (from the interventions log): the capacity
            the exploration takes its share of when fewer than the plan's; None: the plan's.
        reprediction: (n, kinds) the win model re-scored with one more play of each kind
            (:func:`reprediction_lifts`), blended in by ``cfg.reprediction_weight``.
        readout: the experiment's read-out per kind (``shift``, ``se``), which sets each
            kind's weight when ``cfg.reprediction_weight`` is ``"experiment"``
            (:func:`experiment_weights`).

    Returns:
        The plan tables.

    Raises:
        ValueError: the catalog lists no kind the effect model estimated, or ``options``
            holds a kind it did not estimate.
    """
    kinds = list(effects.kinds_)
    if options is None:
        options = catalog_options(cfg, kinds).options
    options = tuple(options)
    unknown = sorted({o.kind for o in options} - set(kinds))
    if unknown:
        raise ValueError(f"options of kinds the effect model did not estimate: {unknown}")
    column = np.array([kinds.index(o.kind) for o in options])
    estimated = account_effects(effects, context, scores, effects.modifier_columns_)
    weights = np.zeros(len(kinds))
    if reprediction is not None:
        if cfg.reprediction_weight == "experiment":
            weights = experiment_weights(estimated.point, reprediction, kinds, readout)
        else:
            weights = np.full(len(kinds), float(cfg.reprediction_weight))
        estimated = blend_reprediction(estimated, reprediction, weights)
    if grounding is not None:
        estimated = grounding.apply(estimated, kinds, scores["win_probability"].to_numpy(float))
    flagged = effects.extrapolated(estimated.propensity)
    arr = scores["arr"].to_numpy(dtype=float)
    days = scores["days_to_renewal"].to_numpy(dtype=float)
    lead = np.nan_to_num(days, nan=-1.0)  # no renewal date: no lead-time window holds
    search = plans.search_plans(
        scores["win_probability"].to_numpy(dtype=float),
        estimated.point[:, column],
        estimated.low[:, column],
        estimated.high[:, column],
        arr,
        lead,
        options,
        max_plays=cfg.max_plays,
        exclusions=exclusions(cfg, options),
        extrapolated=flagged[:, column],
        max_exact_plans=cfg.max_exact_plans,
        seed=cfg.seed,
    )
    capacity = cfg.capacity.model_dump()
    draw, left = _explore(cfg, scores, options, search, lead, capacity, as_of, team_plays)
    funding = fund(search, left, exclude=draw.assigned)
    assignment = _assign_holdout(cfg, scores, options, search, funding.plan, lead)
    frame = _plans_frame(
        scores, options, search, funding, assignment, estimated.point[:, column],
        flagged[:, column], as_of,
    )  # fmt: skip
    first_slot = first_slots(options)
    kinds_drawn = np.array([options[j].kind for j in first_slot], dtype=object)
    arm_label = np.full(len(frame), "", dtype=object)
    arm_label[draw.arm == experiment.CONTROL] = "none"
    arm_label[draw.arm >= 0] = kinds_drawn[draw.arm[draw.arm >= 0]]
    frame = frame.assign(
        explore_arm=arm_label,
        explore_propensity=draw.propensity,
    )
    frame = frame[[c for c in frame.columns if c != "as_of"] + ["as_of"]]
    allocated, frontier = _allocation_tables(capacity, funding)
    allocated["exploration"] = {"entry": draw.entry, "capacity_left": left}
    return PlanTables(
        plans=frame,
        effects=_effects_frame(scores, kinds, estimated, flagged),
        allocation=allocated,
        frontier=frontier,
        exact=search.exact,
        plan_space=len(search.plans),
        assignments=_assignments(scores, options, search, funding.plan, assignment, draw, as_of),
        explored=int(draw.assigned.sum()),
        reprediction_weights=dict(zip(kinds, weights.round(4).tolist(), strict=True)),
    )


def first_slots(options: Sequence[plans.Option]) -> list[int]:
    """Per kind (in catalog order) the option of its earliest timing slot."""
    first: dict[str, int] = {}
    for j, o in enumerate(options):
        if o.kind not in first or o.offset_days < options[first[o.kind]].offset_days:
            first[o.kind] = j
    return list(first.values())


def _explore(
    cfg: PlanConfig,
    scores: pd.DataFrame,
    options: Sequence[plans.Option],
    search: plans.PlanSearch,
    lead: np.ndarray,
    capacity: dict[str, float | None],
    as_of: date,
    team_plays: float | None = None,
) -> tuple[experiment.Exploration, dict[str, float | None]]:
    """The exploration's draw, and the capacity left for the recommendations after it."""
    first_slot = first_slots(options)
    allowed = plans.eligibility(options, scores["arr"].to_numpy(dtype=float), lead)[:, first_slot]
    budget = _exploration_budget(
        cfg, search, [options[j] for j in first_slot], capacity, team_plays
    )
    ids = scores["account_id"].astype(str).to_numpy()
    # a random play costs most where the ARR is largest: accounts above the median ARR are
    # drawn in proportion to 1 / √ARR (their propensities say so)
    arr = scores["arr"].to_numpy(dtype=float)
    median = float(np.nanmedian(arr)) if len(arr) else 0.0
    weight = np.where(arr > median, np.sqrt(median / np.maximum(arr, 1e-9)), 1.0)
    draw = experiment.explore(
        ids, allowed, budget, cfg.seed, f"{as_of}", cfg.exploration.controls_per_play, weight
    )
    played = draw.arm >= 0
    chosen = [options[first_slot[k]] for k in draw.arm[played]]
    used = {
        "csm_hours": sum(o.csm_hours for o in chosen),
        "exec_hours": sum(o.exec_hours for o in chosen),
        "budget": sum(o.cost for o in chosen),
    }
    left = {
        name: None if total is None else max(0.0, total - used[name])
        for name, total in capacity.items()
    }
    return draw, left


def _exploration_budget(
    cfg: PlanConfig,
    search: plans.PlanSearch,
    arms: Sequence[plans.Option],
    capacity: dict[str, float | None],
    team_plays: float | None = None,
) -> float:
    """Randomised plays worth ``exploration.share`` of the capacity they are taken from.

    The exploration's plays come off the plan's capacity, so they are never more than the share
    of it: a play drawn uniformly over the kinds needs each resource's mean over them, and the
    resource that binds first counts. A team that runs fewer plays a period than that (its
    interventions log, ``team_plays``) explores the share of those. With no limit on any
    resource and no log, the share of the plays the capacity would fund. Never more than the
    share of the accounts.
    """
    share = cfg.exploration.share
    if share <= 0 or not arms:
        return 0.0
    limits = [share * len(search.best)]
    if team_plays is not None and team_plays > 0:
        limits.append(share * team_plays)
    need = {
        "csm_hours": np.mean([o.csm_hours for o in arms]),
        "exec_hours": np.mean([o.exec_hours for o in arms]),
        "budget": np.mean([o.cost for o in arms]),
    }
    plays = [
        float(total) / need[name]
        for name, total in capacity.items()
        if total is not None and need.get(name, 0) > 0
    ]
    if plays:
        limits.append(share * min(plays))
    elif team_plays is None or team_plays <= 0:
        limits.append(share * float(search.plans[fund(search, capacity).plan].sum()))
    return min(limits)


def _assignments(
    scores: pd.DataFrame,
    options: Sequence[plans.Option],
    search: plans.PlanSearch,
    funded: np.ndarray,
    assignment: policy.Assignment,
    draw: experiment.Exploration,
    as_of: date,
) -> pd.DataFrame:
    """Every arm the run assigns, one row per play (a no-play arm: one row, arm ``none``)."""
    ids = scores["account_id"].to_numpy()
    first_slot = first_slots(options)
    rows: list[tuple[Any, str, int, float, str]] = []
    for i in np.flatnonzero(draw.assigned):
        arm = draw.arm[i]
        kind, offset = "none", 0
        if arm >= 0:
            kind, offset = options[first_slot[arm]].kind, options[first_slot[arm]].offset_days
        rows.append((ids[i], kind, offset, draw.propensity[i], "randomised"))
    for i in np.flatnonzero(assignment.arm != "ineligible"):
        run = _run_plan(search, options, funded, assignment, i)
        source = "randomised" if assignment.arm[i] == "holdout_random" else "recommended"
        if not run:
            rows.append((ids[i], "none", 0, assignment.propensity[i], source))
        for o in run:
            rows.append((ids[i], o.kind, o.offset_days, assignment.propensity[i], source))
    frame = pd.DataFrame(rows, columns=["account_id", "arm", "offset_days", "propensity", "source"])
    ts = pd.Timestamp(as_of, tz="UTC") + pd.to_timedelta(frame["offset_days"], unit="D")
    return frame.assign(ts=ts)[["account_id", "ts", "arm", "propensity", "source", "offset_days"]]


def _run_plan(
    search: plans.PlanSearch,
    options: Sequence[plans.Option],
    funded: np.ndarray,
    assignment: policy.Assignment,
    i: int,
) -> list[plans.Option]:
    """The options account ``i`` runs under the holdout: its funded plan, one option, or none."""
    action = int(assignment.assigned[i])
    if action == 0:
        return []
    if action == 1:
        return [o for o, on in zip(options, search.plans[funded[i]], strict=True) if on]
    return [options[action - 2]]


def _assign_holdout(
    cfg: PlanConfig,
    scores: pd.DataFrame,
    options: tuple[plans.Option, ...],
    search: plans.PlanSearch,
    funded_plan: np.ndarray,
    lead: np.ndarray,
) -> policy.Assignment:
    """The learning loop: actions = business as usual, the funded plan, each single option."""
    keep = plans.plan_keep(search.plans, options)  # what a discount leaves of the renewal
    singles = np.eye(len(options), dtype=bool)
    eligible_options = plans.eligibility(options, scores["arr"].to_numpy(dtype=float), lead)
    recommended_row = search.plans[funded_plan]
    same_as_single = (recommended_row[:, None, :] == singles[None, :, :]).all(axis=2)
    # a random play never needs more of any resource than the funded plan it stands in for,
    # nor gives more of the renewal away
    within = np.ones_like(eligible_options)
    for name, used in (("cost", search.plan_cost[funded_plan]),
                       ("csm_hours", search.plan_csm_hours[funded_plan]),
                       ("exec_hours", search.plan_exec_hours[funded_plan]),
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
    return policy.assign_holdout(
        scores["contract_id"].astype(str).to_numpy(),  # one arm per contract, stable across runs
        recommended,
        allowed,
        eligible,
        cfg.epsilon,
        cfg.random_share,
        cfg.seed,
        salt="plan",
    )


def _plans_frame(
    scores: pd.DataFrame,
    options: tuple[plans.Option, ...],
    search: plans.PlanSearch,
    funding: Funding,
    assignment: policy.Assignment,
    option_lift: np.ndarray,
    option_flagged: np.ndarray,
    as_of: date,
) -> pd.DataFrame:
    """One row per account: the best plan, its runners-up, the funded plan and the arm."""
    p0 = scores["win_probability"].to_numpy(dtype=float)
    arr = scores["arr"].to_numpy(dtype=float)
    funded_plan = funding.plan
    labels = np.array(plans.plan_labels(search.plans, options), dtype=object)
    keep = plans.plan_keep(search.plans, options)  # what a discount leaves of the renewal
    # the funded plan's lift in win probability (its ARR saved nets out what it gives away)
    distinct, which = np.unique(search.plans[funded_plan], axis=0, return_inverse=True)
    funded_lift = plans.plan_lift(p0, option_lift, distinct)[np.arange(len(p0)), which.ravel()]
    single_labels = np.array(
        [plans.BUSINESS_AS_USUAL, "", *(o.label for o in options)], dtype=object
    )
    assigned = assignment.assigned
    action = np.where(assigned == 1, labels[funded_plan], single_labels[assigned])
    first, second = search.runners_up[:, 0], search.runners_up[:, 1]
    present = ("account_id", "contract_id", "segment", "csm_id", "arr", "days_to_renewal")
    return scores[[c for c in present if c in scores]].assign(
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
        runner_up_1=np.where(first >= 0, labels[first], None),
        runner_up_1_arr_saved=search.runners_up_saved[:, 0],
        runner_up_2=np.where(second >= 0, labels[second], None),
        runner_up_2_arr_saved=search.runners_up_saved[:, 1],
        funded=funded_plan > 0,
        recommended=labels[funded_plan],
        recommended_lift=funded_lift,
        recommended_extrapolated=(search.plans[funded_plan] & option_flagged).any(axis=1),
        recommended_arr_saved=funding.saved,
        recommended_cost=search.plan_cost[funded_plan],
        recommended_arr_given_away=arr * (p0 + funded_lift) * (1 - keep[funded_plan]),
        recommended_csm_hours=search.plan_csm_hours[funded_plan],
        recommended_exec_hours=search.plan_exec_hours[funded_plan],
        arm=assignment.arm,
        action=action,
        propensity=assignment.propensity,
        p_recommended=assignment.p_recommended,
        holdout_propensity=assignment.holdout_propensity,
        as_of=pd.Timestamp(as_of),
    )


def _effects_frame(
    scores: pd.DataFrame, kinds: list[str], estimated: AccountEffects, flagged: np.ndarray
) -> pd.DataFrame:
    """One row per (account, kind): effect, interval, propensity, extrapolation flag."""
    return pd.DataFrame(
        {
            "account_id": np.repeat(scores["account_id"].to_numpy(), len(kinds)),
            "kind": np.tile(kinds, len(scores)),
            "effect": estimated.point.ravel(),
            "effect_low": estimated.low.ravel(),
            "effect_high": estimated.high.ravel(),
            "propensity": estimated.propensity[:, 1:].ravel(),
            "extrapolated": flagged.ravel(),
        }
    )


def _allocation_tables(
    capacity: dict[str, float | None], funding: Funding
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``allocation.json``'s content and the saved-vs-cost frontier."""
    out: dict[str, Any] = {"capacity": capacity, "candidates": funding.candidates}
    portfolio = funding.allocation
    if portfolio is None:
        return out, pd.DataFrame()
    out |= {
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
    return out, frontier
