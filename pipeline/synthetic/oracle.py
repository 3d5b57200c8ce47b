"""The oracle: true renewal probability per snapshot and true effect per play (evaluation only)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr

from features.spine import FLAT_BAND, as_of_grid, outcome_class
from pipeline.config import FeaturesConfig, SyntheticConfig
from pipeline.synthetic.tables import Context
from pipeline.synthetic.world import (
    BETA,
    BUDGET_DECAY,
    BUDGET_HAZARD,
    BUDGET_SHOCK,
    CHAMPION_HAZARD,
    CHAMPION_SHOCK,
    CONTRACT_BELOW,
    CONTRACTION_LOG,
    DISCOUNT_MONTHS,
    DISCOUNT_SHARE,
    EFFECT_LAG,
    EXPAND_ABOVE,
    EXPANSION_LOG,
    FLAT_WIDTH,
    GAMMA_ADOPTION,
    INTERVENTIONS,
    KEY_EVENT_TYPES,
    RECENT_MONTHS,
    RESIZE_ADOPTION,
    RESIZE_BUDGET,
    RESIZE_NOISE,
    RHO,
    SIGMA,
    TERM_OFFSET,
    Accounts,
    Calendar,
    History,
    WorldSummary,
    intervention_effects,
)

SNAPSHOTS = "snapshots.parquet"  # the truth per snapshot: p_renew, contract_id, outcome …
EFFECTS = "effects.parquet"  # the true effect of each play per account and snapshot

QUADRATURE_NODES = 20  # Gauss–Hermite nodes over the end health: within 1e-7 of 120 nodes
SHOCKED_NODES = 10  # … on the rare paths with a budget cut or a champion leaving (1e-7 lost)
CHUNK_ROWS = 4096  # mixture rows per quadrature call: its (rows × nodes) arrays stay in cache
# the resize at renewal (world.RESIZE_* …) as simulation._renewal_multiplier and _Luck.draw
# make it; tests/pipeline/test_oracle_renewal_arr.py checks the oracle against that code


def future_health(
    health_now: np.ndarray,
    mu: np.ndarray,
    steps: np.ndarray,
    pending: np.ndarray,
    has_champion: np.ndarray,
    budget_cuts: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of health ``steps`` months ahead, with no new interventions.

    Exact for the Gaussian innovations; future shocks enter by their mean and variance
    (budget cuts only when ``budget_cuts``: a caller that conditions on them leaves them out).
    ``pending`` is effect already decided that lands in the first of those months.
    """
    steps = np.maximum(steps, 0)
    decay = RHO**steps
    geo1 = (1 - decay) / (1 - RHO)
    geo2 = (1 - RHO ** (2 * steps)) / (1 - RHO**2)
    lam_c = CHAMPION_HAZARD * has_champion
    lam_b = BUDGET_HAZARD if budget_cuts else 0.0
    shock_mean = lam_c * CHAMPION_SHOCK + lam_b * BUDGET_SHOCK
    shock_var = lam_c * (1 - lam_c) * CHAMPION_SHOCK**2 + lam_b * (1 - lam_b) * BUDGET_SHOCK**2
    landed = np.where(steps >= 1, RHO ** np.maximum(steps - 1, 0), 0.0) * pending
    mean = mu + decay * (health_now - mu) + landed - shock_mean * geo1
    var = SIGMA**2 * geo2 + shock_var * geo2
    return mean, var


def renewal_probability(
    base: np.ndarray,
    adoption: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """P(renewed) when health at the decision is N(mean + shift, var) (probit link)."""
    z = base + BETA * (mean + shift) + GAMMA_ADOPTION * adoption
    return ndtr(z / np.sqrt(1 + BETA**2 * var))


@dataclass(frozen=True)
class RenewalMoments:
    """Renewal outcome probabilities and the expected renewal ARR ratio, one value per row.

    Attributes:
        p_renew: P(renewed).
        p_expand: P(renewed and renewal ARR more than ``FLAT_BAND`` above today's ARR).
        p_contract: P(renewed and renewal ARR more than ``FLAT_BAND`` below today's ARR).
        expected_ratio: E[renewal ARR / ARR], 0 on churn.
    """

    p_renew: np.ndarray
    p_expand: np.ndarray
    p_contract: np.ndarray
    expected_ratio: np.ndarray


_MOMENTS = ("p_renew", "p_expand", "p_contract", "expected_ratio")


def renewal_outcome_moments(
    base: np.ndarray | float,
    adoption: np.ndarray | float,
    mean: np.ndarray | float,
    var: np.ndarray | float,
    budget: np.ndarray | float,
    term: np.ndarray | float,
    discounted: np.ndarray | bool,
    nodes: int = QUADRATURE_NODES,
) -> RenewalMoments:
    """Renewal and resize outcomes when health at the contract's end is N(mean, var).

    The renewal decision and the resize share that health, so both are integrated over it by
    Gauss–Hermite quadrature; given the health they are independent. Which of the expansion,
    contraction and flat draws, times the discount factor, lands beyond the ±``FLAT_BAND`` band is
    exact (normal CDFs for the log-normal and folded draws, linear for the uniform flat one).
    Rounding the renewal ARR to tens is ignored.

    Args:
        base: Segment renewal base plus the term offset.
        adoption: Key-feature adoption.
        mean: Mean of health at the end month.
        var: Variance of health at the end month.
        budget: Budget stress at the end month.
        term: Contract term in months.
        discounted: Whether a discount applies to the renewal.
        nodes: Quadrature nodes.

    Returns:
        The outcome probabilities and the expected ratio, shaped like the broadcast inputs.
    """
    base, adoption, mean, var, budget, term, discounted = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (base, adoption, mean, var, budget, term)),
        np.asarray(discounted, dtype=bool),
    )
    x, w = _standard_normal_nodes(nodes)
    health = mean[..., None] + np.sqrt(var)[..., None] * x
    renew = ndtr(base[..., None] + BETA * health + GAMMA_ADOPTION * adoption[..., None])
    u = health + (RESIZE_ADOPTION * adoption - RESIZE_BUDGET * budget)[..., None]
    resized = np.minimum(term / 12, 1.0)
    p_renew = renew @ w
    expand = resized * ((renew * ndtr((u - EXPAND_ABOVE) / RESIZE_NOISE)) @ w)
    contract = resized * ((renew * ndtr((CONTRACT_BELOW - u) / RESIZE_NOISE)) @ w)
    flat = p_renew - expand - contract
    draws = np.where(discounted[..., None, None], _resize_draws(True), _resize_draws(False))
    above, below, ratio = np.einsum(
        "...ik,...k->i...", draws, np.stack([expand, contract, flat], -1)
    )
    return RenewalMoments(p_renew=p_renew, p_expand=above, p_contract=below, expected_ratio=ratio)


def renewal_outcome_from_state(
    base: np.ndarray,
    adoption: np.ndarray,
    health_now: np.ndarray,
    mu: np.ndarray,
    steps: np.ndarray,
    pending: np.ndarray,
    has_champion: np.ndarray,
    budget_now: np.ndarray,
    term: np.ndarray,
    discounted: np.ndarray,
) -> RenewalMoments:
    """Renewal outcomes of contracts ending ``steps`` months ahead, from the hidden state now.

    No new play. A budget cut or a champion leaving is a jump, and a cut moves health and budget
    stress together, so the outcome is a mixture over the month of the first cut and the month
    the champion leaves (each none, or month 1 … ``steps``): given them, health at the end is
    N(mean, var) from :func:`future_health` (the Gaussian innovations) shifted by those shocks
    decayed to the end, and budget stress is today's decayed by ``BUDGET_DECAY`` plus the cut's.
    A second cut (about 0.1 % likely over seven months) and a champion who returns and leaves
    again within the horizon are left out. The outcome shares of the renewed are then scaled to
    the closed-form ``p_renew`` of :func:`renewal_probability`, which treats the shocks by their
    moments (the mixture's differs by 2e-4 on average, 3e-3 at most, on the default dynamics),
    so ``p_expand + p_contract <= p_renew`` holds and ``p_renew`` stays the oracle's.

    Args:
        base: Segment renewal base plus the term offset.
        adoption: Key-feature adoption.
        health_now: Health in the last full month.
        mu: The account's mean health.
        steps: Months from the last full month to the contract's end month.
        pending: Effect decided in the last full month, landing in the next.
        has_champion: Whether a champion is in place.
        budget_now: Budget stress in the last full month.
        term: Contract term in months.
        discounted: Whether a discount applies to the renewal.

    Returns:
        The outcome probabilities and the expected ratio, one per contract.
    """
    steps = np.maximum(np.asarray(steps, dtype=int), 0)
    has_champion = np.asarray(has_champion, dtype=bool)
    # one row per (contract, month j of the first cut, month k the champion leaves); 0 = none
    cuts, leaves = steps + 1, np.where(has_champion, steps, 0) + 1
    row = np.repeat(np.arange(steps.size), cuts * leaves)
    q = np.arange(row.size) - np.repeat(np.cumsum(cuts * leaves) - cuts * leaves, cuts * leaves)
    j, k, s = q // leaves[row], q % leaves[row], steps[row]
    weight = _first_event(j, s, BUDGET_HAZARD) * _first_event(
        k, s, CHAMPION_HAZARD * has_champion[row]
    )
    mean, var = future_health(
        health_now, mu, steps, pending, np.zeros(steps.size, dtype=bool), budget_cuts=False
    )
    shock = np.where(j > 0, BUDGET_SHOCK * RHO ** (s - j), 0.0) + np.where(
        k > 0, CHAMPION_SHOCK * RHO ** (s - k), 0.0
    )
    inputs = (
        base[row],
        adoption[row],
        mean[row] - shock,
        var[row],
        BUDGET_DECAY**s * budget_now[row] + np.where(j > 0, BUDGET_DECAY ** (s - j), 0.0),
        term[row],
        discounted[row],
    )
    totals = np.zeros((len(_MOMENTS), steps.size))
    # the shocked components weigh a few per cent together, so fewer nodes do for them
    shocked = (j > 0) | (k > 0)
    for part, nodes in ((~shocked, QUADRATURE_NODES), (shocked, SHOCKED_NODES)):
        idx = np.flatnonzero(part)
        for chunk in np.array_split(idx, max(1, idx.size // CHUNK_ROWS)):
            moments = renewal_outcome_moments(*(x[chunk] for x in inputs), nodes=nodes)
            for i, name in enumerate(_MOMENTS):
                totals[i] += np.bincount(
                    row[chunk], weights=weight[chunk] * getattr(moments, name), minlength=steps.size
                )
    p_renew = renewal_probability(
        base, adoption, *future_health(health_now, mu, steps, pending, has_champion)
    )
    mixed, p_expand, p_contract, ratio = totals
    scale = np.divide(p_renew, mixed, out=np.zeros_like(p_renew), where=mixed > 0)
    return RenewalMoments(
        p_renew=p_renew,
        p_expand=p_expand * scale,
        p_contract=p_contract * scale,
        expected_ratio=ratio * scale,
    )


def _first_event(month: np.ndarray, steps: np.ndarray, hazard: np.ndarray | float) -> np.ndarray:
    """P(a monthly ``hazard`` first strikes in ``month`` of the next ``steps``; month 0: never)."""
    return np.where(month > 0, (1 - hazard) ** (month - 1) * hazard, (1 - hazard) ** steps)


@cache
def _standard_normal_nodes(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and weights for E[f(x)], x ~ N(0, 1)."""
    x, w = hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


@cache
def _resize_draws(discounted: bool) -> np.ndarray:
    """How the renewal ARR of each draw lands against today's ARR, with or without a discount.

    Returns:
        Rows: P(ratio above ``1 + FLAT_BAND``), P(below ``1 - FLAT_BAND``), E[ratio]; columns:
        the expansion, contraction and flat draws, each times the discount factor.
    """
    factor = 1 - DISCOUNT_SHARE if discounted else 1.0
    hi, lo = np.log((1 + FLAT_BAND) / factor), np.log((1 - FLAT_BAND) / factor)
    m, s = EXPANSION_LOG
    expansion = (ndtr((m - hi) / s), ndtr((lo - m) / s), np.exp(m + s**2 / 2))
    m, s = CONTRACTION_LOG
    # factor·exp(−|y|) > 1 + band  ⇔  |y| < −hi;  < 1 − band  ⇔  |y| > −lo
    contraction = (
        _abs_below(-hi, m, s),
        1 - _abs_below(-lo, m, s),
        np.exp(-m + s**2 / 2) * ndtr((m - s**2) / s) + np.exp(m + s**2 / 2) * ndtr((-m - s**2) / s),
    )
    flat = (
        np.clip(1 - ((1 + FLAT_BAND) / factor - 1) / FLAT_WIDTH, 0.0, 1.0),
        np.clip(((1 - FLAT_BAND) / factor - 1) / FLAT_WIDTH, 0.0, 1.0),
        1 + FLAT_WIDTH / 2,
    )
    table = np.array([expansion, contraction, flat], dtype=float).T * [[1.0], [1.0], [factor]]
    table.setflags(write=False)
    return table


def _abs_below(k: float, m: float, s: float) -> float:
    """P(|y| < k) for y ~ N(m, s²)."""
    return float(ndtr((k - m) / s) - ndtr((-k - m) / s)) if k > 0 else 0.0


def make_oracle(
    cfg: SyntheticConfig,
    features: FeaturesConfig,
    cal: Calendar,
    acc: Accounts,
    hist: History,
    contract_ids: np.ndarray,
    account_ids: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """True renewal outcome per snapshot, and the true effect of each play at that as_of.

    Everything is given the hidden state at as_of (the last full month before it) and no new
    play. Health at the end month is N(mean, var) from :func:`future_health` (future champion
    and budget shocks enter by their mean and variance); ``p_renew`` is its probit.
    ``p_expand``, ``p_contract`` and ``expected_renewal_ratio`` (E[renewal ARR / ARR], 0 on churn;
    ``expected_renewal_arr`` is ARR times it) come from :func:`renewal_outcome_from_state`.
    Whether a discount applies (one played within ``DISCOUNT_MONTHS`` of the end month) is read
    from the interventions logged up to as_of: the history keeps no ``last_discount`` but the log
    holds every play's month. A discount played after as_of is not foreseen (no new play).
    """
    con = hist.contracts
    horizon = np.timedelta64(features.horizon_days, "D")
    base_seg = np.array([s.renewal_base for s in cfg.segments.values()])
    term = (con["end"].astype("datetime64[M]") - con["start"].astype("datetime64[M]")).astype(int)
    term_offset = np.vectorize(lambda t: TERM_OFFSET.get(t, 0.0), otypes=[float])(term)
    inter = hist.interventions
    is_discount = inter["kind"] == INTERVENTIONS.index("discount")
    discount_account, discount_month = inter["account"][is_discount], inter["month"][is_discount]
    snapshots, effects = [], []
    grid = as_of_grid(pd.Timestamp(cal.start), pd.Timestamp(cal.end), features.frequency)
    for as_of in grid.to_numpy().astype("datetime64[D]"):
        sel = np.flatnonzero(
            (con["start"] <= as_of) & (con["end"] > as_of) & (con["end"] <= as_of + horizon)
        )
        if sel.size == 0:
            continue
        a = con["account"][sel]
        m0 = int(cal.month_of(np.array([as_of]))[0])
        known = m0 - 1  # the state at as_of: the last full month before it
        h_now = hist.health[a, known]
        ok = ~np.isnan(h_now)
        sel, a, h_now = sel[ok], a[ok], h_now[ok]
        end_m = cal.month_of(con["end"][sel])
        has_champion = hist.champion_gone[a, known] < 0
        base = base_seg[acc.segment[a]] + term_offset[sel]
        mean, var = future_health(
            h_now, acc.mu[a], end_m - known, hist.pending[a, known], has_champion
        )
        p = renewal_probability(base, acc.adoption[a], mean, var)
        last_discount = np.full(acc.n, -999)
        played = discount_month <= known
        np.maximum.at(last_discount, discount_account[played], discount_month[played])
        outcome = renewal_outcome_from_state(
            base, acc.adoption[a], h_now, acc.mu[a], end_m - known, hist.pending[a, known],
            has_champion, hist.budget[a, known], term[sel],
            end_m - last_discount[a] <= DISCOUNT_MONTHS,
        )  # fmt: skip
        ids = account_ids[a]
        as_of_col = np.full(sel.size, as_of)
        snapshots.append(
            pd.DataFrame(
                {
                    "account_id": ids,
                    "as_of": as_of_col,
                    "contract_id": contract_ids[sel],
                    "end_date": con["end"][sel],
                    "p_renew": p,
                    "p_expand": outcome.p_expand,
                    "p_contract": outcome.p_contract,
                    "expected_renewal_ratio": outcome.expected_ratio,
                    "expected_renewal_arr": con["arr"][sel] * outcome.expected_ratio,
                    "renewed": con["renewed"][sel],
                    "arr": con["arr"][sel],
                    "renewal_arr": con["renewal_arr"][sel],
                }
            )
        )
        recent = np.zeros((a.size, len(INTERVENTIONS)), dtype=bool)
        if inter["account"].size:
            lookup = pd.Series(np.arange(a.size), index=a)
            window = (inter["month"] <= known) & (known - inter["month"] <= 3)
            hit = np.isin(inter["account"], a) & window
            rows = lookup.reindex(inter["account"][hit]).to_numpy()
            recent[rows, inter["kind"][hit]] = True
        gone = hist.champion_gone[a, known]
        tau = intervention_effects(
            h_now,
            acc.size[a],
            acc.adoption[a],
            ((gone >= 0) & (known - gone <= RECENT_MONTHS)).astype(float),
            hist.budget[a, known],
            recent[:, 0],
            recent[:, 1],
        )
        # a play started at as_of moves health from the month after (EFFECT_LAG)
        lead = end_m - (m0 + EFFECT_LAG)
        reach = np.where(lead >= 0, RHO ** np.maximum(lead, 0), 0.0)
        for k, kind in enumerate(INTERVENTIONS):
            p_k = renewal_probability(base, acc.adoption[a], mean, var, reach * tau[:, k])
            effects.append(
                pd.DataFrame(
                    {
                        "account_id": ids,
                        "as_of": as_of_col,
                        "intervention": kind,
                        "effect_health": tau[:, k],
                        "effect": p_k - p,
                    }
                )
            )
    return pd.concat(snapshots, ignore_index=True), pd.concat(effects, ignore_index=True)


def realism_checks(
    ctx: Context, contracts: pd.DataFrame, snapshots: pd.DataFrame, effects: pd.DataFrame
) -> dict[str, float]:
    """Realism figures the README states and the tests assert."""
    cal, hist = ctx.cal, ctx.hist
    decided = contracts[contracts["known"] & (contracts["end"] >= cal.start)]
    term = (
        decided["end"].to_numpy().astype("datetime64[M]")
        - decided["start"].to_numpy().astype("datetime64[M]")
    ).astype(int)
    checks: dict[str, float] = {}
    segments = list(ctx.cfg.segments)
    seg = ctx.acc.segment[decided["account"].to_numpy()]
    renewed = decided["renewed"].to_numpy(dtype=bool)
    for k, name in enumerate(segments):
        annual = (seg == k) & (term >= 12)
        if annual.sum() >= 20:
            checks[f"renewal_rate_{name}"] = float(renewed[annual].mean())
    monthly = term == 1
    if monthly.sum() >= 20:
        checks["monthly_churn_rate"] = float(1 - renewed[monthly].mean())

    # confounding: the treated renew less although the plays help on average
    inter = hist.interventions
    end_month = cal.month_of(decided["end"].to_numpy())
    account = decided["account"].to_numpy()
    treated = np.zeros(len(decided), dtype=bool)
    if inter["account"].size:
        log = pd.DataFrame({"account": inter["account"], "month": inter["month"]})
        pairs = pd.DataFrame(
            {"account": account, "end_month": end_month, "row": np.arange(account.size)}
        )
        joined = pairs.merge(log, on="account")
        inside = (joined["month"] < joined["end_month"]) & (
            joined["month"] >= joined["end_month"] - 6
        )
        treated[joined.loc[inside, "row"].unique()] = True
    annual = term >= 12
    if (treated & annual).sum() >= 10 and (~treated & annual).sum() >= 10:
        checks["treated_share"] = float(treated[annual].mean())
        checks["naive_renewal_gap"] = float(
            renewed[treated & annual].mean() - renewed[~treated & annual].mean()
        )
    if inter["effect"].size:
        checks["mean_true_effect_applied"] = float(inter["effect"].mean())
        h_treated = hist.health[inter["account"], np.maximum(inter["month"] - 1, 0)]
        h_all = hist.health[:, cal.start_month : cal.end_month]
        checks["health_gap_treated"] = float(np.nanmean(h_treated) - np.nanmean(h_all))

    # signals move before churn: health falls in the months before a non-renewal
    idx = np.arange(account.size)

    def window(lo: int, hi: int) -> np.ndarray:
        cols = end_month[:, None] - np.arange(lo, hi)[None, :]
        vals = hist.health[account[:, None], np.clip(cols, 0, cal.months - 1)]
        return np.nanmean(np.where(cols >= 0, vals, np.nan), axis=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # accounts younger than the window
        drift = window(1, 4) - window(6, 10)
    del idx
    checks["health_drift_before_churn"] = float(np.nanmean(drift[~renewed]))
    checks["health_drift_before_renewal"] = float(np.nanmean(drift[renewed]))

    known = snapshots[snapshots["as_of"] < snapshots["end_date"]]
    known = known[known["end_date"] < cal.end]
    if known["renewed"].nunique() == 2:
        from sklearn.metrics import brier_score_loss, roc_auc_score

        checks["oracle_auc"] = float(roc_auc_score(known["renewed"], known["p_renew"]))
        checks["oracle_brier"] = float(brier_score_loss(known["renewed"], known["p_renew"]))
        checks["oracle_mean_p"] = float(known["p_renew"].mean())
        checks["label_rate"] = float(known["renewed"].mean())
    by_kind = effects.groupby("intervention")["effect"]
    for kind, mean in by_kind.mean().items():
        checks[f"effect_mean_{kind}"] = float(mean)
    for kind, share in (by_kind.apply(lambda e: (e < 0).mean())).items():
        checks[f"effect_harm_share_{kind}"] = float(share)
    return checks


def write_oracle(
    truth: Path,
    ctx: Context,
    snapshots: pd.DataFrame,
    effects: pd.DataFrame,
    summary: WorldSummary,
) -> None:
    """Write the world's ground truth to ``truth``, for evaluation code only (no stage reads it).

    Snapshots with their true renewal probability and outcome class, every play's true effect,
    the plays applied in the history, the monthly hidden health, and ``world.json`` (seed,
    dynamics constants, rows and realism checks).

    Args:
        truth: The oracle folder (``data.oracle_dir``).
        ctx: The generated world.
        snapshots: One row per (account, as_of) with its oracle fields.
        effects: The true effect of each play per snapshot.
        summary: Rows per table and realism checks, recorded in ``world.json``.
    """
    snapshots = snapshots.assign(
        as_of=snapshots["as_of"].astype("datetime64[s]"),
        end_date=snapshots["end_date"].astype("datetime64[s]"),
        outcome=outcome_class(
            snapshots["renewed"].to_numpy(dtype=float),
            snapshots["arr"].to_numpy(dtype=float),
            np.nan_to_num(snapshots["renewal_arr"].to_numpy(dtype=float)),
        ),
    )
    snapshots.to_parquet(truth / SNAPSHOTS, index=False)
    effects.assign(as_of=effects["as_of"].astype("datetime64[s]")).to_parquet(
        truth / EFFECTS, index=False
    )
    inter = ctx.hist.interventions
    pd.DataFrame(
        {
            "account_id": ctx.account_ids[inter["account"]],
            "month": ctx.cal.month_start(inter["month"]).astype("datetime64[s]"),
            "intervention": np.array(INTERVENTIONS)[inter["kind"]],
            "effect_health": inter["effect"],
        }
    ).to_parquet(truth / "applied.parquet", index=False)
    a, m = np.nonzero(ctx.hist.alive)
    pd.DataFrame(
        {
            "account_id": ctx.account_ids[a],
            "month": ctx.cal.month_start(m).astype("datetime64[s]"),
            "health": ctx.hist.health[a, m],
            "budget_stress": ctx.hist.budget[a, m],
            "champion_missing": ctx.hist.champion_gone[a, m] >= 0,
        }
    ).to_parquet(truth / "health.parquet", index=False)
    world = {
        "seed": ctx.cfg.seed,
        "accounts": summary.accounts,
        "data_start": str(ctx.cal.start),
        "data_end": str(ctx.cal.end),
        "dynamics": {
            "rho": RHO,
            "sigma": SIGMA,
            "beta": BETA,
            "gamma_adoption": GAMMA_ADOPTION,
            "champion_hazard": CHAMPION_HAZARD,
            "champion_shock": CHAMPION_SHOCK,
            "budget_hazard": BUDGET_HAZARD,
            "budget_shock": BUDGET_SHOCK,
            "effect_lag_months": EFFECT_LAG,
        },
        "interventions": list(INTERVENTIONS),
        "key_event_types": list(KEY_EVENT_TYPES),
        "rows": summary.rows,
        "checks": summary.checks,
    }
    (truth / "world.json").write_text(json.dumps(world, indent=2, sort_keys=True) + "\n")
