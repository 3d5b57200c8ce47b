"""``healthscore evaluate-plays``: the intervention search measured against the world's oracle.

Evaluation code (it reads ``data.oracle_dir``). For a plan run it compares, on the accounts the
oracle knows (a renewal within the horizon), under the same capacity:

- the shipped recommendations (funded plans), and the best plan per account with no capacity;
- the oracle: the same search and allocation on the *true* effects (capacity-limited and not);
- the best single play for everyone (the kind with the highest estimated average effect);
- random allowed plays, funded in random order until capacity runs out;
- the naive re-prediction: the win model re-scored with the play added to its history
  features (what the effect model is built to avoid), searched and allocated the same way;
- exact averages: the oracle's mean effect of each kind over these accounts, spread per account
  by the shipped rule (the slope ``p(1 − p)`` of the model's probability): how far the shipped
  policy would get if only its per-kind averages were right. It splits the gap to the oracle
  into what the averages cost and what the per-account shape costs.

Policy value = Σ ARR × ((p + true lift) × kept share − p) − cost over the funded plans, ``p``
the oracle's renewal probability and the kept share what a discount (``arr_share``) leaves of
the renewal. A plan's true lift combines the oracle's single-play effects in log-odds (the same
rule the search uses). With ``--seeds`` the whole pipeline runs on fresh worlds, one per seed,
and the figures are printed per seed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from scipy.stats import spearmanr

from models.interventions import plans
from models.interventions.portfolio import catalog_options, fund, reprediction_lifts
from pipeline.config import Params
from pipeline.errors import InputError, MissingInput
from pipeline.io import catalog, registry
from pipeline.lab.oracle import judge, true_effects
from pipeline.shared.asof import features_as_of
from pipeline.synthetic.oracle import SNAPSHOTS

log = logging.getLogger("healthscore")

TARGETS = {
    "ate_error_max": 0.02,
    "rank_corr_min": 0.5,
    "policy_vs_oracle_min": 0.88,
    "policy_vs_capacity_oracle_min": 0.85,
    "harmful_share_max": 0.005,
    "interval_coverage_min": 0.90,
}


def _search(p0, lift, arr, days, options, cfg, extrapolated=None):  # noqa: ANN001, ANN202
    return plans.search_plans(
        p0, lift, lift, lift, arr, days, options, max_plays=cfg.max_plays,
        exclusions=[tuple(p) for p in cfg.exclusions], extrapolated=extrapolated,
        max_exact_plans=cfg.max_exact_plans, seed=cfg.seed,
    )  # fmt: skip


def _funded(search: plans.PlanSearch, capacity: dict) -> np.ndarray:
    """Plan index funded per account under ``capacity`` (0 = business as usual)."""
    return fund(search, capacity).plan


def _random_fill(
    allowed: np.ndarray, options: tuple[plans.Option, ...], capacity: dict, seed: int
) -> np.ndarray:
    """(n, m) bool: one random allowed single play per account, funded in random order."""
    rng = np.random.default_rng(seed)
    n, m = allowed.shape
    pick = np.full(n, -1)
    for i in np.flatnonzero(allowed.any(axis=1)):
        pick[i] = rng.choice(np.flatnonzero(allowed[i]))
    use = {k: 0.0 for k in ("csm_hours", "exec_hours", "budget")}
    chosen = np.zeros((n, m), dtype=bool)
    for i in rng.permutation(np.flatnonzero(pick >= 0)):
        o = options[pick[i]]
        need = {"csm_hours": o.csm_hours, "exec_hours": o.exec_hours, "budget": o.cost}
        if all(capacity.get(k) is None or use[k] + need[k] <= capacity[k] for k in use):
            chosen[i, pick[i]] = True
            for k in use:
                use[k] += need[k]
    return chosen


def account_values(
    p_true: np.ndarray,
    true_option: np.ndarray,
    chosen: np.ndarray,
    arr: np.ndarray,
    options: tuple[plans.Option, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Per account, the true value of a ``(n, m)`` bool choice of options (ARR × ((p + true
    lift) × kept share − p) − cost where acted on, else 0) and whether its true lift is negative."""
    n = len(p_true)
    distinct, which = np.unique(chosen, axis=0, return_inverse=True)
    which = which.ravel()
    plan_l = plans.plan_lift(p_true, true_option, distinct)[np.arange(n), which]
    keep = plans.plan_keep(distinct, options)[which]  # what a discount leaves of the renewal
    saved = plans.arr_saved(arr, p_true, plan_l, keep)
    acted = chosen.any(axis=1)
    cost_of = np.array([o.cost for o in options])
    value = np.where(acted, saved - (chosen * cost_of).sum(axis=1), 0.0)
    return value, acted & (plan_l < 0)


def true_value(
    p_true: np.ndarray,
    true_option: np.ndarray,
    chosen: np.ndarray,
    arr: np.ndarray,
    options: tuple[plans.Option, ...],
) -> tuple[float, float]:
    """Policy value and harmful share of a ``(n, m)`` bool choice of options, on the truth.

    Value = Σ ARR × ((p + true lift) × kept share − p) − cost over the accounts acted on; the
    harmful share is the share of all accounts given a plan whose true lift is negative.
    """
    value, harmful = account_values(p_true, true_option, chosen, arr, options)
    return float(value.sum()), float(harmful.mean())


def share_interval(
    numerator: np.ndarray, denominator: np.ndarray, replicates: int = 200, seed: int = 0
) -> tuple[float, float]:
    """95 % bootstrap interval over accounts of Σ numerator / Σ denominator (each policy's plans
    held fixed: how much the share owes to which accounts happen to be in the book)."""
    rng = np.random.default_rng(seed)
    n = numerator.size
    shares = []
    for _ in range(replicates):
        rows = rng.integers(0, n, n)
        total = denominator[rows].sum()
        if total:
            shares.append(numerator[rows].sum() / total)
    if not shares:
        return float("nan"), float("nan")
    low, high = np.quantile(shares, [0.025, 0.975])
    return float(low), float(high)


def naive_lifts(
    model: registry.HealthModel, snapshot: pd.DataFrame, kinds: list[str]
) -> np.ndarray:
    """(n, kinds): the win model re-scored with one more play of the kind in its history."""
    return reprediction_lifts(model.ensemble, snapshot[model.features], kinds)


def exact_averages(p: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n, kinds): each kind's true mean effect spread by the slope ``p(1 − p)`` of each account.

    The shipped per-account rule with the per-kind averages replaced by the truth: the columns
    average to the true means, and within a kind accounts rank by their slope alone.
    """
    slope = p * (1 - p)
    return slope[:, None] / slope.mean() * true.mean(axis=0)[None, :]


def evaluate_plan_run(params: Params, as_of: date) -> dict[str, float]:
    """The figures of one plan run against the oracle (see the module docstring)."""
    frame = catalog.PLANNED.read(params.output_dir, as_of)
    estimated = catalog.PLAY_EFFECTS.read(params.output_dir, as_of)
    truth = true_effects(params)
    oracle_path = params.data.oracle_dir / SNAPSHOTS
    if truth is None or not oracle_path.exists():
        raise MissingInput(f"no oracle in {params.data.oracle_dir}: evaluation needs one")
    day = pd.Timestamp(as_of)
    truth = truth[truth["as_of"] == day].drop(columns="as_of")
    base = pd.read_parquet(oracle_path, columns=["account_id", "as_of", "p_renew"])
    base = base[pd.to_datetime(base["as_of"]) == day].drop(columns="as_of")
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    effects = model.effects
    assert effects is not None
    kinds = list(effects.kinds_)
    frame = frame.merge(base, on="account_id", how="inner").merge(
        truth, on="account_id", how="inner"
    )
    if frame.empty:
        raise InputError(f"the oracle knows none of the accounts planned on {as_of}")
    n = len(frame)
    out: dict[str, float] = {"accounts": float(n)}

    # per account and kind: estimated vs true effects, interval coverage
    est = estimated.pivot_table(index="account_id", columns="kind", values="effect")
    low = estimated.pivot_table(index="account_id", columns="kind", values="effect_low")
    high = estimated.pivot_table(index="account_id", columns="kind", values="effect_high")
    ids = frame["account_id"]
    for kind in kinds:
        t = frame[kind].to_numpy(dtype=float)
        e = est.loc[ids, kind].to_numpy()
        out[f"{kind}_rank_corr"] = float(spearmanr(e, t).statistic)
        out[f"{kind}_interval_coverage"] = float(
            np.mean((low.loc[ids, kind].to_numpy() <= t) & (t <= high.loc[ids, kind].to_numpy()))
        )
        out[f"{kind}_true_mean_here"] = float(t.mean())
        out[f"{kind}_estimated_mean_here"] = float(e.mean())

    cfg = params.plan
    options = catalog_options(cfg, kinds).options
    column = np.array([kinds.index(o.kind) for o in options])
    arr = frame["arr"].to_numpy(dtype=float)
    days = np.nan_to_num(frame["days_to_renewal"].to_numpy(dtype=float), nan=-1.0)
    p_true = frame["p_renew"].to_numpy(dtype=float)
    true_option = frame[kinds].to_numpy(dtype=float)[:, column]
    capacity = cfg.capacity.model_dump()

    # every policy searched and allocated the same way, on the accounts the oracle knows
    p_model = frame["win_probability"].to_numpy(dtype=float)
    estimated_option = est.loc[ids, kinds].to_numpy()[:, column]
    ours = _search(p_model, estimated_option, arr, days, options, cfg)
    policies: dict[str, np.ndarray] = {
        "shipped": ours.plans[_funded(ours, capacity)],
        "shipped_unconstrained": ours.plans[ours.best],
    }
    oracle_search = _search(p_true, true_option, arr, days, options, cfg)
    policies["oracle_unconstrained"] = oracle_search.plans[oracle_search.best]
    policies["oracle_capacity"] = oracle_search.plans[_funded(oracle_search, capacity)]
    # the best single play for everyone, by the estimated average effect
    best_kind = str(effects.average_["ate"].idxmax())
    single = np.array([o.kind == best_kind and o.offset_days == 0 for o in options])
    single_search = _search(p_model, np.where(single, estimated_option, -1.0), arr, days,
                            options, cfg)  # fmt: skip
    policies["same_play_for_all"] = single_search.plans[_funded(single_search, capacity)]
    allowed = plans.eligibility(options, arr, days)
    policies["random"] = _random_fill(allowed, options, capacity, cfg.seed)
    snapshot, _ = features_as_of(params.data, params.features, model, as_of)
    snapshot = snapshot.copy().set_index("account_id").reindex(ids).reset_index()
    naive = naive_lifts(model, snapshot, kinds)
    for j, kind in enumerate(kinds):
        out[f"{kind}_naive_mean_here"] = float(naive[:, j].mean())
    naive_search = _search(p_model, naive[:, column], arr, days, options, cfg)
    policies["naive_reprediction"] = naive_search.plans[_funded(naive_search, capacity)]
    policies["naive_unconstrained"] = naive_search.plans[naive_search.best]
    exact = exact_averages(p_model, frame[kinds].to_numpy(dtype=float))[:, column]
    exact_search = _search(p_model, exact, arr, days, options, cfg)
    policies["exact_averages"] = exact_search.plans[_funded(exact_search, capacity)]
    policies["exact_averages_unconstrained"] = exact_search.plans[exact_search.best]
    per_account = {}
    for name, chosen in policies.items():
        values, harmful = account_values(p_true, true_option, chosen, arr, options)
        per_account[name] = values
        out[f"value_{name}"] = float(values.sum())
        out[f"harmful_share_{name}"] = float(harmful.mean())
        out[f"funded_{name}"] = int(chosen.any(axis=1).sum())
    for share, name, against in (
        ("shipped_vs_capacity_oracle", "shipped", "oracle_capacity"),
        ("shipped_vs_oracle", "shipped_unconstrained", "oracle_unconstrained"),
        ("exact_averages_vs_capacity_oracle", "exact_averages", "oracle_capacity"),
        ("naive_vs_capacity_oracle", "naive_reprediction", "oracle_capacity"),
    ):
        out[f"{share}_low"], out[f"{share}_high"] = share_interval(
            per_account[name], per_account[against], seed=cfg.seed
        )
    oracle_cap = out["value_oracle_capacity"]
    oracle_all = out["value_oracle_unconstrained"]
    out["shipped_vs_capacity_oracle"] = out["value_shipped"] / oracle_cap if oracle_cap else np.nan
    out["shipped_vs_oracle"] = (
        out["value_shipped_unconstrained"] / oracle_all if oracle_all else np.nan
    )
    out["exact_averages_vs_capacity_oracle"] = (
        out["value_exact_averages"] / oracle_cap if oracle_cap else np.nan
    )
    out["exact_averages_vs_oracle"] = (
        out["value_exact_averages_unconstrained"] / oracle_all if oracle_all else np.nan
    )
    oracle_cap = out["value_oracle_capacity"]
    out["naive_vs_capacity_oracle"] = (
        out["value_naive_reprediction"] / oracle_cap if oracle_cap else np.nan
    )
    out["model_version"] = float(version)
    return out


def training_figures(params: Params, version: str) -> dict[str, float]:
    """The effect-vs-oracle metrics the training run logged (ATE error, coverage, ranks)."""
    client = MlflowClient()
    held = client.get_model_version(params.mlflow.model_name, version)
    run = client.get_run(held.run_id)
    return {
        k: v for k, v in run.data.metrics.items() if k.startswith(("oracle_effect_", "effect_"))
    }


def report(params: Params, as_of: date) -> dict[str, float]:
    """Evaluate one plan run and log the figures to MLflow (a run tagged ``evaluate-plays``)."""
    figures = evaluate_plan_run(params, as_of)
    version = str(int(figures["model_version"]))
    figures |= training_figures(params, version)
    with mlflow.start_run(run_name=f"evaluate-plays {as_of}"):
        mlflow.set_tags({"kind": "evaluate-plays", "model_version": version, "as_of": str(as_of)})
        mlflow.log_metrics({k: float(v) for k, v in figures.items() if np.isfinite(v)})
    return figures


def run_seeds(params: Params, seeds: list[int], workdir: Path | None) -> pd.DataFrame:
    """The whole pipeline on one fresh world per seed, then :func:`report` on each."""
    from pipeline import flow

    rows = []
    with contextlib.nullcontext(str(workdir)) if workdir else tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            root = Path(tmp) / f"seed_{seed}"
            world = params.model_copy(
                update={
                    "output_dir": root / "outputs",
                    "data": params.data.model_copy(
                        update={"raw_dir": root / "raw", "oracle_dir": root / "oracle"}
                    ),
                    "synthetic": params.synthetic.model_copy(update={"seed": seed}),
                    "mlflow": params.mlflow.model_copy(
                        update={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}
                    ),
                }
            )
            root.mkdir(parents=True, exist_ok=True)
            result = flow.run_all(world, quiet=True, judge=judge(world))
            figures = report(world, result.as_of)
            rows.append({"seed": seed, **figures})
            shown = {k: round(v, 4) for k, v in figures.items() if "value" in k or "vs" in k}
            log.info("evaluate-plays: seed %d done: %s", seed, json.dumps(shown))
    return pd.DataFrame(rows)


POLICIES = (
    "shipped",
    "oracle_capacity",
    "same_play_for_all",
    "random",
    "naive_reprediction",
    "exact_averages",
    "shipped_unconstrained",
    "naive_unconstrained",
    "exact_averages_unconstrained",
    "oracle_unconstrained",
)


def render(table: pd.DataFrame) -> str:
    """The evaluation as plain-text tables: effects per kind, then policy values, per seed."""
    kinds = sorted(
        {c.removeprefix("oracle_effect_").removesuffix("_true") for c in table.columns
         if c.startswith("oracle_effect_") and c.endswith("_true")}
    )  # fmt: skip
    lines = []
    for _, row in table.iterrows():
        seed = int(row["seed"])
        effect_rows = []
        for kind in kinds:
            get = lambda key, kind=kind, row=row: row.get(key.format(kind=kind), np.nan)  # noqa: E731
            effect_rows.append(
                {
                    "kind": kind,
                    "true ATE": get("oracle_effect_{kind}_true"),
                    "estimate": get("oracle_effect_{kind}_estimate"),
                    "95% CI": f"[{get('oracle_effect_{kind}_lo'):+.4f}, "
                    f"{get('oracle_effect_{kind}_hi'):+.4f}]",
                    "error": get("oracle_effect_{kind}_error"),
                    "sign ok": bool(get("oracle_effect_{kind}_sign_right")),
                    "CI covers": bool(get("oracle_effect_{kind}_covered")),
                    "naive": get("{kind}_naive_mean_here"),
                    "rank ρ (log)": get("oracle_effect_{kind}_rank_corr"),
                    "rank ρ (plan)": get("{kind}_rank_corr"),
                    "interval cover": get("{kind}_interval_coverage"),
                    "robustness": get("effect_{kind}_robustness"),
                }
            )
        effects = pd.DataFrame(effect_rows).set_index("kind")
        oracle_cap = row.get("value_oracle_capacity", np.nan)
        policy_rows = [
            {
                "policy": name,
                "value (ARR saved − cost)": row.get(f"value_{name}", np.nan),
                "vs capacity oracle": row.get(f"value_{name}", np.nan) / oracle_cap,
                "funded": row.get(f"funded_{name}", np.nan),
                "harmful share": row.get(f"harmful_share_{name}", np.nan),
            }
            for name in POLICIES
        ]
        policies = pd.DataFrame(policy_rows).set_index("policy")
        lines += [
            f"seed {seed}: {int(row.get('accounts', 0)):,} accounts the oracle knows",
            effects.to_string(float_format=lambda v: f"{v:+.4f}"),
            "",
            policies.to_string(float_format=lambda v: f"{v:,.3f}"),
            f"shipped / oracle (no capacity): {_ci(row, 'shipped_vs_oracle')}   "
            f"shipped / capacity oracle: {_ci(row, 'shipped_vs_capacity_oracle')}   "
            f"(with exact averages: {row.get('exact_averages_vs_oracle', np.nan):.3f} / "
            f"{_ci(row, 'exact_averages_vs_capacity_oracle')}; naive re-prediction: "
            f"{_ci(row, 'naive_vs_capacity_oracle')}); 95 % intervals over accounts",
            "",
        ]
    return "\n".join(lines)


def _ci(row: pd.Series, key: str) -> str:
    """A share with its interval, when the row has one."""
    value, low, high = (row.get(k, np.nan) for k in (key, f"{key}_low", f"{key}_high"))
    if pd.isna(low):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"
