"""``healthscore simulate-loop``: the learning loop run in the synthetic world, period by period.

Evaluation code (it reads the world's hidden state). Per seed and exploration share ε, from a
world run up to ``synthetic.end_date``:

1. write the world's tables so far; at period 0 (and every ``retrain_every`` periods) build the
   features and train the win model and the effect model, as ``make train`` does (a retrain
   replaces the champion: see ``_one_loop``);
2. score and plan as of the first day of the coming month, as the nightly job does: the plan
   stage reads the experiment so far, grounds the effects, explores a share ε of capacity across
   every kind and exports every arm it assigns (``plans/…/assignments.parquet``);
3. measure the plan against the truth of that month: the value of what runs (the funded plans and
   the exploration's plays, so exploration's cost counts) as a share of the capacity-limited
   oracle's (the same search and allocation on the true effects), the naive re-prediction's, the
   share of accounts given a harmful plan, and each kind's estimate, interval and truth;
4. apply the exported arms in the world (a play at a later timing slot in its month; a second
   play for an account the month after) and step a month.

Every scored account is measured (the plan spends its capacity on all of them), with its true
renewal probability at its contract's end. Value follows ``evaluate-plays``:
Σ ARR × ((p + true lift) × kept share − p) − cost. Beside the policy: the naive re-prediction and
"exact averages" (each kind's true mean spread by the slope p(1 − p), the ceiling of a policy that
gets only the per-kind averages right).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.interventions.plans import Option
from models.interventions.portfolio import (
    catalog_options,
    experiment_weights,
    first_slots,
    fund,
)
from pipeline import synthetic
from pipeline.config import Params
from pipeline.io import catalog, registry
from pipeline.lab.evaluate_plays import _search, exact_averages, naive_lifts, true_value
from pipeline.shared.asof import features_as_of
from pipeline.stages import features as features_stage
from pipeline.stages import plan as plan_stage
from pipeline.stages import score as score_stage
from pipeline.stages import train as train_stage
from pipeline.synthetic.oracle import future_health, renewal_probability
from pipeline.synthetic.simulation import CONTROL, SOURCES, Actions, World
from pipeline.synthetic.world import EFFECT_LAG, INTERVENTIONS, RHO, TERM_OFFSET

log = logging.getLogger("healthscore")

DEFAULT_BOOK = 10_000  # the default world's size, which plan.capacity is set for


@dataclass(frozen=True)
class LoopSettings:
    """One ``simulate-loop`` run.

    Attributes:
        seeds: the worlds' seeds.
        periods: months to run the loop for.
        epsilons: exploration shares to compare (0 is the control).
        accounts: the book's size (capacity is scaled from the default 10,000).
        retrain_every: retrain the win and effect models every this many periods (0: once).
    """

    seeds: tuple[int, ...]
    periods: int
    epsilons: tuple[float, ...]
    accounts: int
    retrain_every: int = 0


def run_loop(params: Params, settings: LoopSettings, out: Path) -> dict[str, Any]:
    """Run every (seed, ε) loop; write ``out/loop.json`` and ``out/loop.png`` (after every
    period, so a run stopped early keeps the months it measured); return the JSON.

    Each loop's world, outputs and tracking store stay in ``out/worlds/seed_S_eps_E`` (replaced
    on a re-run) for inspection.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in settings.seeds:
        for epsilon in settings.epsilons:
            root = out / "worlds" / f"seed_{seed}_eps_{epsilon:g}"
            if root.exists():
                shutil.rmtree(root)
            # loop.json is rewritten after every period: a run stopped early keeps its months
            _one_loop(_loop_params(params, settings, seed, epsilon, root), settings, seed,
                      epsilon, rows, lambda: _write(out, settings, rows))  # fmt: skip
    return _write(out, settings, rows)


def _write(out: Path, settings: LoopSettings, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``loop.json`` (settings and one row per seed, ε and period) and its plot, atomically."""
    result = {
        "settings": {
            "seeds": list(settings.seeds), "periods": settings.periods,
            "epsilons": list(settings.epsilons), "accounts": settings.accounts,
            "retrain_every": settings.retrain_every,
        },
        "periods": rows,
    }  # fmt: skip
    scratch = out / ".loop.json.tmp"
    scratch.write_text(json.dumps(result, indent=2, default=float) + "\n")
    scratch.replace(out / "loop.json")
    if rows:
        _plot(pd.DataFrame(rows), out / "loop.png")
    return result


def _loop_params(
    params: Params, settings: LoopSettings, seed: int, epsilon: float, root: Path
) -> Params:
    """The params of one loop: its own folders and tracking store, ε, capacity to the book."""
    scale = settings.accounts / DEFAULT_BOOK
    capacity = {
        k: None if v is None else v * scale for k, v in params.plan.capacity.model_dump().items()
    }
    plan_cfg = params.plan.model_copy(
        update={
            "epsilon": 0.0,  # the holdout is not what this loop measures
            "capacity": params.plan.capacity.model_copy(update=capacity),
            "exploration": params.plan.exploration.model_copy(update={"share": epsilon}),
        }
    )
    return params.model_copy(
        update={
            "output_dir": root / "outputs",
            "data": params.data.model_copy(
                update={"raw_dir": root / "raw", "oracle_dir": root / "oracle", "cutoff": None}
            ),
            "synthetic": params.synthetic.model_copy(
                update={"seed": seed, "accounts": settings.accounts}
            ),
            "mlflow": params.mlflow.model_copy(
                update={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}
            ),
            "plan": plan_cfg,
        }
    )


def _one_loop(
    params: Params,
    settings: LoopSettings,
    seed: int,
    epsilon: float,
    rows: list[dict[str, Any]],
    measured: Callable[[], object],
) -> None:
    """One world, one ε: train, then plan, measure, apply and step for every period; each
    period's figures are appended to ``rows``, then ``measured()`` is called."""
    params.output_dir.mkdir(parents=True, exist_ok=True)
    world = synthetic.loop_world(params.synthetic, params.features, settings.periods)
    ids = synthetic.account_ids(world)
    index = pd.Series(np.arange(ids.size), index=ids)
    queue: dict[int, list[tuple[int, int, float, int]]] = defaultdict(list)
    for t in range(settings.periods):
        retrain = t == 0 or bool(settings.retrain_every and t % settings.retrain_every == 0)
        as_of = plan_period(params, world, train=retrain, force=t > 0)
        figures = _measure(params, world, index, as_of)
        given = catalog.ASSIGNED.read(params.output_dir, as_of)
        for row in given.itertuples():
            if row.arm in INTERVENTIONS or row.arm == "none":
                month = world.month + int(row.offset_days) // 30
                kind = CONTROL if row.arm == "none" else INTERVENTIONS.index(row.arm)
                source = SOURCES.index(row.source)
                queue[month].append((int(index[row.account_id]), kind, row.propensity, source))
        world.step(_actions(world, queue))
        rows.append({"seed": seed, "epsilon": epsilon, "period": t, "as_of": str(as_of),
                     **figures})  # fmt: skip
        log.info(
            "loop: seed %d ε %.2f period %d (%s): policy %s of the capacity oracle, naive %s; "
            "%d explored", seed, epsilon, t, as_of, _shown(figures["policy_vs_capacity_oracle"]),
            _shown(figures["naive_vs_capacity_oracle"]), figures["explored"],
        )  # fmt: skip
        measured()


def plan_period(params: Params, world: World, train: bool, force: bool = False) -> date:
    """Write the world's tables so far; with ``train``, build the features and train as ``make
    train`` does (``force``: a retrain replaces the champion, so the loop measures a policy that
    keeps its model fresh, not the promotion gate); then score and plan as of the first day of
    the coming month, as the nightly job does. Returns that day."""
    synthetic.write_tables(world, params.data.raw_dir)
    if train:
        features_stage.run_features(params, quiet=True)
        train_stage.run_train(params, force=force)
    as_of = pd.Timestamp(world.cal.month_start(world.month)).date()
    score_stage.run_score(params, as_of)
    plan_stage.run_plan(params, as_of)
    return as_of


@dataclass(frozen=True)
class Book:
    """A plan run's accounts (in its order) beside the world's truth: what a plan is searched
    and valued on.

    Attributes:
        kinds: the effect model's kinds of play.
        options: the plan's options (kind × timing), and ``column``: each one's kind in ``kinds``.
        first: each kind's first timing slot among ``options`` (kinds without one are absent).
        p_true, true_option: the true renewal probability now, and each option's true lift.
        truth: each kind's true lift at its first timing slot (accounts × kinds; 0 without one).
        arr, days, p_model: ARR, days to renewal (−1 unknown) and the model's win probability.
    """

    kinds: list[str]
    options: tuple[Option, ...]
    column: np.ndarray
    first: dict[str, int]
    p_true: np.ndarray
    true_option: np.ndarray
    truth: np.ndarray
    arr: np.ndarray
    days: np.ndarray
    p_model: np.ndarray


def book_of(
    params: Params, world: World, index: pd.Series, frame: pd.DataFrame, kinds: list[str]
) -> Book:
    """The :class:`Book` of a plan run's ``frame`` (``index``: account id → world row)."""
    options = catalog_options(params.plan, kinds).options
    p_true, true_option = true_lifts(world, index[frame["account_id"]].to_numpy(), options)
    first = {options[j].kind: j for j in first_slots(options)}
    truth = np.column_stack([true_option[:, first[k]] if k in first else np.zeros(len(frame))
                             for k in kinds])  # fmt: skip
    return Book(
        kinds, options, np.array([kinds.index(o.kind) for o in options]), first, p_true,
        true_option, truth, frame["arr"].to_numpy(dtype=float),
        np.nan_to_num(frame["days_to_renewal"].to_numpy(dtype=float), nan=-1.0),
        frame["win_probability"].to_numpy(dtype=float),
    )  # fmt: skip


def _actions(world: World, queue: dict[int, list[tuple[int, int, float, int]]]) -> Actions:
    """The arms due this month for accounts still eligible; a second play waits a month."""
    due = queue.pop(world.month, [])
    eligible = world.eligible()
    seen: set[int] = set()
    keep = []
    for item in due:
        account = item[0]
        if not eligible[account]:
            continue
        if account in seen:
            queue[world.month + 1].append(item)
            continue
        seen.add(account)
        keep.append(item)
    if not keep:
        return Actions.empty()
    account, kind, propensity, source = (np.array(v) for v in zip(*keep, strict=True))
    return Actions(account.astype(int), kind.astype(int), propensity.astype(float),
                   source.astype(int))  # fmt: skip


def true_lifts(
    world: World, accounts: np.ndarray, options: tuple[Option, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The true renewal probability of ``accounts`` now, and each option's true lift of it.

    The state is the last simulated month's (what the oracle conditions on); a play at offset
    ``d`` days starts ``d // 30`` months into the coming month and moves health a month later,
    decaying to the contract's end.
    """
    known = world.month - 1
    end_m = world.end_month[accounts]
    term = np.array([TERM_OFFSET.get(int(t), 0.0) for t in world.term[accounts]])
    base = world.base[accounts] + term
    adoption = world.acc.adoption[accounts]
    mean, var = future_health(
        world.health[accounts], world.acc.mu[accounts], end_m - known,
        world.pending[accounts], world.champion_gone[accounts] < 0,
    )  # fmt: skip
    p = renewal_probability(base, adoption, mean, var)
    tau = world.true_effects(accounts)
    lifts = np.zeros((accounts.size, len(options)))
    for j, o in enumerate(options):
        lead = end_m - (world.month + o.offset_days // 30 + EFFECT_LAG)
        reach = np.where(lead >= 0, RHO ** np.maximum(lead, 0), 0.0)
        k = INTERVENTIONS.index(o.kind)
        lifts[:, j] = renewal_probability(base, adoption, mean, var, reach * tau[:, k]) - p
    return p, lifts


def _measure(params: Params, world: World, index: pd.Series, as_of: date) -> dict[str, Any]:
    """The plan of ``as_of`` against the truth of the coming month (see the module docstring)."""
    frame = catalog.PLANNED.read(params.output_dir, as_of)
    given = catalog.ASSIGNED.read(params.output_dir, as_of)
    estimated = catalog.PLAY_EFFECTS.read(params.output_dir, as_of)
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, _ = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    assert model.effects is not None
    kinds = list(model.effects.kinds_)
    cfg = params.plan
    book = book_of(params, world, index, frame, kinds)
    options, column, p_true, true_option = book.options, book.column, book.p_true, book.true_option
    arr, days, p_model = book.arr, book.days, book.p_model
    ids = frame["account_id"]
    est = estimated.pivot_table(index="account_id", columns="kind", values="effect")
    capacity = cfg.capacity.model_dump()

    # what runs: every exported arm of these accounts, as options
    where = {(o.kind, o.offset_days): j for j, o in enumerate(options)}
    executed = np.zeros((len(frame), len(options)), dtype=bool)
    recommended = np.zeros_like(executed)
    row_of = pd.Series(np.arange(len(frame)), index=ids)
    for row in given[given["account_id"].isin(ids) & (given["arm"] != "none")].itertuples():
        cell = (row_of[row.account_id], where[(row.arm, int(row.offset_days))])
        executed[cell] = True
        recommended[cell] = row.source == "recommended"

    def funded(p: np.ndarray, lifts: np.ndarray) -> np.ndarray:
        """The plans searched on these lifts and funded within capacity."""
        search = _search(p, lifts, arr, days, options, cfg)
        return search.plans[fund(search, capacity).plan]

    own = est.loc[ids, kinds].to_numpy()  # the plan's estimates per kind
    snapshot, _ = features_as_of(params.data, params.features, model, as_of)
    snapshot = snapshot.set_index("account_id").reindex(ids).reset_index()
    naive = naive_lifts(model, snapshot, kinds)
    first, true_kind = book.first, book.truth
    policies = {
        "policy": executed,
        "oracle": funded(p_true, true_option),
        "no_exploration": funded(p_model, own[:, column]),
        "naive": funded(p_model, naive[:, column]),
        "exact_averages": funded(p_model, exact_averages(p_model, true_kind)[:, column]),
        # the plan's per-account shape, each kind shifted to its true mean
        "exact_shift": funded(
            p_model, (own - own.mean(axis=0) + true_kind.mean(axis=0))[:, column]
        ),
    }
    # the blends start from the effect model's own estimates: valued only when the plan ran on
    # them alone (a plan that blended the re-prediction in is the weighted blend already)
    planned = catalog.PLAN_SUMMARY.read(params.output_dir, as_of).get("reprediction_weights", {})
    experiment = (
        catalog.EXPERIMENT.read(params.output_dir, as_of).set_index("kind")
        if catalog.EXPERIMENT.exists(params.output_dir, as_of)
        else None
    )
    if any(planned.values()):
        weights = np.array([planned.get(kind, 0.0) for kind in kinds])
    else:
        # each kind's weight chosen by the experiment (plan.reprediction_weight: experiment)
        weights = experiment_weights(own, naive, kinds, experiment)
        # an even blend: two estimators whose biases differ, averaged
        policies["blend"] = funded(p_model, ((own + naive) / 2)[:, column])
        policies["chosen_blend"] = funded(p_model, (own + weights * (naive - own))[:, column])
    value = {name: true_value(p_true, true_option, chosen, arr, options)
             for name, chosen in policies.items()}  # fmt: skip
    best = value["oracle"][0]

    def share(name: str) -> float:
        """A policy's value as a share of the capacity oracle's (NaN when not valued)."""
        return value[name][0] / best if best and name in value else float("nan")

    explored = frame["explore_arm"].fillna("") != ""
    out: dict[str, Any] = {
        "accounts": len(frame),
        "value_capacity_oracle": best,
        "value_policy": value["policy"][0],
        **{
            f"{name}_vs_capacity_oracle": _num(share(name))  # null when not valued
            for name in (
                "policy",
                "naive",
                "exact_averages",
                "no_exploration",
                "blend",
                "chosen_blend",
                "exact_shift",
            )
        },
        "exploration_cost": _num(share("no_exploration") - share("policy")),
        # recommended a plan whose true lift is negative (the exploration's random plays apart)
        "harmful_share": true_value(p_true, true_option, recommended, arr, options)[1],
        "harmful_share_with_exploration": value["policy"][1],
        "explored": int(explored.sum()),
        "funded": int(frame["funded"].sum()),
    }
    low = estimated.pivot_table(index="account_id", columns="kind", values="effect_low")
    high = estimated.pivot_table(index="account_id", columns="kind", values="effect_high")
    kinds_out = {}
    for kind in kinds:
        if kind not in first:
            continue
        truth = float(true_option[:, first[kind]].mean())
        estimate = float(est.loc[ids, kind].mean())
        entry = {
            "truth": truth,
            "estimate": estimate,
            "naive": float(naive[:, kinds.index(kind)].mean()),
            "chosen_weight": float(weights[kinds.index(kind)]),
            "low": float(low.loc[ids, kind].mean()),
            "high": float(high.loc[ids, kind].mean()),
            "sign_right": bool(np.sign(estimate) == np.sign(truth)),
        }
        if experiment is not None and kind in experiment.index:
            row = experiment.loc[kind]
            entry |= {
                "experiment": _num(row["ate"]), "experiment_low": _num(row["lo"]),
                "experiment_high": _num(row["hi"]), "experiment_rows": int(row["rows"]),
                "renewal_only": _num(row.get("renewal_ate")),
                "renewal_only_rows": int(row.get("renewal_rows", 0)),
            }  # fmt: skip
        entry["covered"] = bool(entry["low"] <= truth <= entry["high"])
        kinds_out[kind] = entry
    out["kinds"] = kinds_out
    return out


def _shown(share: float | None) -> str:
    """A share for the log: three decimals, or "not valued"."""
    return "not valued" if share is None else f"{share:.3f}"


def _num(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _plot(table: pd.DataFrame, path: Path) -> None:
    """Policy value against periods, one line per seed and ε (the naive re-prediction dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (seed, epsilon), group in table.groupby(["seed", "epsilon"]):
        ax.plot(group["period"], group["policy_vs_capacity_oracle"], marker="o",
                label=f"seed {seed}, ε = {epsilon:g}")  # fmt: skip
    for seed, group in table[table["epsilon"] == table["epsilon"].min()].groupby("seed"):
        ax.plot(group["period"], group["naive_vs_capacity_oracle"], linestyle="--", alpha=0.6,
                label=f"seed {seed}, naive re-prediction")  # fmt: skip
    ax.axhline(0.85, color="grey", linewidth=0.8)
    ax.axhline(0.90, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("period (months)")
    ax.set_ylabel("policy value / capacity-limited oracle")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def summarise(result: dict[str, Any]) -> pd.DataFrame:
    """Per seed and ε: mean of each value share over the first and second half of the periods,
    exploration's cost, the worst harmful share, and at the last period how many kinds have the
    right sign and an interval that covers the truth."""
    table = pd.DataFrame(result["periods"])
    half = result["settings"]["periods"] // 2
    rows = []
    for (seed, epsilon), group in table.groupby(["seed", "epsilon"]):
        early, late = group[group["period"] < half], group[group["period"] >= half]
        last = group.sort_values("period").iloc[-1]["kinds"]
        row: dict[str, Any] = {"seed": seed, "epsilon": epsilon}
        for name in ("policy", "no_exploration", "naive", "blend", "chosen_blend",
                     "exact_averages", "exact_shift"):  # fmt: skip
            column = f"{name}_vs_capacity_oracle"
            if column not in group or group[column].isna().all():  # not valued in this run
                continue
            row[f"{name} (first half)"] = early[column].mean()
            row[f"{name} (second half)"] = late[column].mean()
        row["exploration cost"] = group["exploration_cost"].mean()
        row["harmful share (max)"] = group["harmful_share"].max()
        row["signs right (last)"] = f"{sum(k['sign_right'] for k in last.values())}/{len(last)}"
        row["covered (last)"] = f"{sum(k['covered'] for k in last.values())}/{len(last)}"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_gain(result: dict[str, Any], a: str, b: str, periods: range) -> dict[str, float]:
    """Mean of ``a − b`` over (seed, period) pairs in ``periods`` with a 95 % t-interval.

    ``a`` and ``b`` name value shares as ``"<column>@<ε>"``, e.g.
    ``"policy_vs_capacity_oracle@0.1"``. Periods of one seed are autocorrelated: the interval is a
    guide, not a test.
    """
    from scipy import stats

    table = pd.DataFrame(result["periods"])
    table = table[table["period"].isin(list(periods))]

    def side(spec: str) -> pd.Series:
        column, epsilon = spec.split("@")
        part = table[np.isclose(table["epsilon"], float(epsilon))]
        return part.set_index(["seed", "period"])[column].astype(float)  # null: NaN

    diff = (side(a) - side(b)).dropna()
    n = int(diff.size)
    mean = float(diff.mean()) if n else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
    return {"mean": mean, "low": mean - half, "high": mean + half, "pairs": n}
