"""The oracle: true renewal probability per snapshot and true effect per play (evaluation only)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from features.spine import as_of_grid, outcome_class
from pipeline.config import FeaturesConfig, SyntheticConfig
from pipeline.synthetic.tables import Context
from pipeline.synthetic.world import (
    BETA,
    BUDGET_HAZARD,
    BUDGET_SHOCK,
    CHAMPION_HAZARD,
    CHAMPION_SHOCK,
    EFFECT_LAG,
    GAMMA_ADOPTION,
    INTERVENTIONS,
    KEY_EVENT_TYPES,
    RECENT_MONTHS,
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


def future_health(
    health_now: np.ndarray,
    mu: np.ndarray,
    steps: np.ndarray,
    pending: np.ndarray,
    has_champion: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of health ``steps`` months ahead, with no new interventions.

    Exact for the Gaussian innovations; future shocks enter by their mean and variance.
    ``pending`` is effect already decided that lands in the first of those months.
    """
    steps = np.maximum(steps, 0)
    decay = RHO**steps
    geo1 = (1 - decay) / (1 - RHO)
    geo2 = (1 - RHO ** (2 * steps)) / (1 - RHO**2)
    lam_c = CHAMPION_HAZARD * has_champion
    shock_mean = lam_c * CHAMPION_SHOCK + BUDGET_HAZARD * BUDGET_SHOCK
    shock_var = (
        lam_c * (1 - lam_c) * CHAMPION_SHOCK**2
        + BUDGET_HAZARD * (1 - BUDGET_HAZARD) * BUDGET_SHOCK**2
    )
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


def make_oracle(
    cfg: SyntheticConfig,
    features: FeaturesConfig,
    cal: Calendar,
    acc: Accounts,
    hist: History,
    contract_ids: np.ndarray,
    account_ids: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """True renewal probability per snapshot, and the true effect of each play at that as_of."""
    con = hist.contracts
    horizon = np.timedelta64(features.horizon_days, "D")
    base_seg = np.array([s.renewal_base for s in cfg.segments.values()])
    term = (con["end"].astype("datetime64[M]") - con["start"].astype("datetime64[M]")).astype(int)
    term_offset = np.vectorize(lambda t: TERM_OFFSET.get(t, 0.0), otypes=[float])(term)
    inter = hist.interventions
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
