"""``healthscore rows-needed``: how many randomised plays of each kind a per-account lift learner
needs before the plan it drives reaches a share of the capacity-limited oracle.

Evaluation code (it reads the world's hidden state). Per seed, the loop's world at its first
period (as ``simulate-loop`` builds it: written, featurised, trained and planned as the nightly job
does), then, on the truth of the coming month, the value of the plan searched and funded on:

- the effect model's own per-account lifts (what the plan used);
- each kind's exact average spread by the slope ``p(1 − p)`` (the best any correction of the
  per-kind averages can do with this win model);
- a LightGBM fitted to the true per-account lifts on what the plan knows of each account (its
  features, win probability and days to renewal), each half of the book predicted from the
  other: the ceiling of this learner of per-account lifts on these features;
- the same learner fitted on ``N`` randomised rows per kind (again each half of the book
  predicted from rows of the other), and the averages of those rows spread by slope, for each
  ``N`` in ``rows``, ``repeats`` times.

A randomised row's outcome is the account's true lift of the kind plus normal noise of standard
deviation ``sigma``, read against a control arm of ``N`` rows of noise alone. That is optimistic
on purpose: real rows also carry the outcome's own variation between accounts and the
surrogate's error. So the rows the curve needs are a lower bound on what the experiment needs.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Params
from pipeline.errors import InputError

log = logging.getLogger("healthscore")

ValueOf = Callable[[np.ndarray], float]


def _learner(rows: int, seed: int) -> Any:  # a LightGBM regressor, imported lazily
    """The learner of per-account lifts, fitted to the truth and to noisy rows alike."""
    import lightgbm as lgb

    return lgb.LGBMRegressor(
        n_estimators=200, learning_rate=0.03, num_leaves=7, min_child_samples=max(20, rows // 50),
        subsample=0.8, subsample_freq=1, verbose=-1, n_jobs=1, random_state=seed,
    )  # fmt: skip


def _halves(n: int) -> np.ndarray:
    """Each account's half of the book: a learner predicts one half from rows of the other."""
    return np.arange(n) % 2


def fitted_to_truth(features_matrix: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-account lifts learned from the truth itself: what the features carry at best.

    Args:
        features_matrix: (n, features) what the plan knows of each account.
        truth: (n, kinds) each account's true lift of each kind.

    Returns:
        (n, kinds): each half of the book predicted by the learner fitted to the other half.
    """
    half = _halves(len(truth))
    pred = np.zeros_like(truth, dtype=float)
    for j in range(truth.shape[1]):
        for f in (0, 1):
            model = _learner(int((half != f).sum()), 0)
            model.fit(features_matrix[half != f], truth[half != f, j])
            pred[half == f, j] = model.predict(features_matrix[half == f])
    return pred


def learning_curve(
    value: ValueOf,
    features_matrix: np.ndarray,
    truth: np.ndarray,
    p: np.ndarray,
    rows: Sequence[int],
    sigma: float,
    repeats: int,
    seed: int = 0,
) -> list[dict[str, float | int]]:
    """The value of lifts learned from ``N`` randomised rows a kind, for each ``N`` in ``rows``.

    A row is an account drawn with replacement (fresh noise each time, as the same account
    drawn again in a later month would be); its outcome is its true lift + N(0, ``sigma``), less
    the mean of ``N`` control rows of noise alone (each kind's own control arm: a real
    experiment shares one, which only helps it). Each half of the book is predicted by a learner
    fitted to ``N`` rows drawn from the other half, so no account is valued by a model that saw
    its own rows. The kind's average is the mean of the first half's ``N`` rows.

    Args:
        value: the plan's value, as a share of the oracle's, of ``(n, kinds)`` per-kind lifts.
        features_matrix: (n, features) what the plan knows of each account.
        truth: (n, kinds) each account's true lift of each kind.
        p: (n,) the win probability the averages are spread by (slope ``p(1 − p)``).
        rows: the numbers of rows a kind to try.
        sigma: the noise of one row's outcome.
        repeats: draws per number of rows.
        seed: the draws' seed (the curve is deterministic given it).

    Returns:
        One record per ``N`` and repeat: ``rows_per_kind``, ``repeat``, ``sigma``, ``learned``
        (the learner's value) and ``averages_by_slope`` (the rows' averages spread by slope).
    """
    rng = np.random.default_rng(seed)
    n, kinds = truth.shape
    half = _halves(n)
    slope = p * (1 - p)
    spread = slope / slope.mean()
    out: list[dict[str, float | int]] = []
    for size in rows:
        for rep in range(repeats):
            means = np.zeros(kinds)
            learned = np.zeros((n, kinds))
            for j in range(kinds):
                for f in (0, 1):
                    others = np.flatnonzero(half != f)
                    drawn = others[rng.integers(0, len(others), size)]
                    outcome = truth[drawn, j] + rng.normal(0.0, sigma, size)
                    outcome -= rng.normal(0.0, sigma, size).mean()  # the control arm
                    if f == 0:
                        means[j] = outcome.mean()
                    model = _learner(size, rep)
                    model.fit(features_matrix[drawn], outcome)
                    learned[half == f, j] = model.predict(features_matrix[half == f])
            out.append({
                "rows_per_kind": int(size), "repeat": rep, "sigma": sigma,
                "learned": value(learned),
                "averages_by_slope": value(spread[:, None] * means[None, :]),
            })  # fmt: skip
            log.info(
                "rows-needed: %d rows a kind (repeat %d): learned %.3f, averages by slope %.3f",
                size, rep, out[-1]["learned"], out[-1]["averages_by_slope"],
            )  # fmt: skip
    return out


def rows_needed(
    params: Params,
    seed: int,
    accounts: int,
    rows: Sequence[int],
    sigma: float,
    repeats: int,
    root: Path,
) -> dict[str, Any]:
    """One seed's world at the loop's first period (kept in ``root``, replaced), and its curve.

    Returns:
        ``seed``, ``as_of``, ``accounts`` (planned), ``kinds``, each kind's ``true_mean`` and
        ``true_sd``, the shares of the capacity oracle of ``effect_model``, ``exact_averages`` and
        ``fitted_to_truth``, and the ``curve`` (:func:`learning_curve`).

    Raises:
        InputError: the world's log gave no effect model to plan with.
    """
    from pipeline import synthetic
    from pipeline.io import catalog, registry
    from pipeline.lab.evaluate_plays import _funded, _search, exact_averages, true_value
    from pipeline.lab.loop import LoopSettings, _loop_params, book_of, plan_period
    from pipeline.shared.asof import features_as_of

    if root.exists():
        shutil.rmtree(root)  # a new world, a new tracking store: no champion of an older run
    settings = LoopSettings(seeds=(seed,), periods=1, epsilons=(0.0,), accounts=accounts)
    params = _loop_params(params, settings, seed, 0.0, root)
    params.output_dir.mkdir(parents=True, exist_ok=True)
    world = synthetic.loop_world(params.synthetic, params.features, 1)
    index = pd.Series(np.arange(world.acc.n), index=synthetic.account_ids(world))
    as_of = plan_period(params, world, train=True)  # the loop's first period

    frame = catalog.PLANNED.read(params.output_dir, as_of)
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, _ = registry.load_champion(params.mlflow.model_name, params.mlflow.alias, None)
    if model.effects is None:
        raise InputError(f"seed {seed}: no effect model was trained, nothing to plan with")
    kinds = list(model.effects.kinds_)
    cfg = params.plan
    book = book_of(params, world, index, frame, kinds)
    options, column, p_true, true_option = book.options, book.column, book.p_true, book.true_option
    arr, days, p_model, truth = book.arr, book.days, book.p_model, book.truth
    capacity = cfg.capacity.model_dump()
    snapshot, _ = features_as_of(params.data, params.features, model, as_of)
    snapshot = snapshot.set_index("account_id").reindex(frame["account_id"]).reset_index()
    known = model.ensemble.align(snapshot[model.features])
    features_matrix = np.column_stack([
        known[c].cat.codes.to_numpy(float) if isinstance(known[c].dtype, pd.CategoricalDtype)
        else known[c].to_numpy(float)
        for c in known.columns
    ] + [p_model, days])  # fmt: skip

    def plan_value(p: np.ndarray, lifts: np.ndarray) -> float:
        search = _search(p, lifts, arr, days, options, cfg)
        return true_value(p_true, true_option, search.plans[_funded(search, capacity)], arr,
                          options)[0]  # fmt: skip

    best = plan_value(p_true, true_option)
    if best <= 0:
        raise InputError(f"seed {seed}: the capacity oracle finds no play worth its cost")

    def share(lifts: np.ndarray) -> float:
        """The plan on these per-kind lifts, valued on the truth, over the capacity oracle's."""
        return plan_value(p_model, lifts[:, column]) / best

    estimated = catalog.PLAY_EFFECTS.read(params.output_dir, as_of).pivot_table(
        index="account_id", columns="kind", values="effect"
    )
    result: dict[str, Any] = {
        "seed": seed, "as_of": str(as_of), "accounts": len(frame), "kinds": kinds,
        "true_mean": truth.mean(axis=0).tolist(), "true_sd": truth.std(axis=0).tolist(),
        "effect_model": share(estimated.loc[frame["account_id"], kinds].to_numpy()),
        "exact_averages": share(exact_averages(p_model, truth)),
        "fitted_to_truth": share(fitted_to_truth(features_matrix, truth)),
    }  # fmt: skip
    log.info(
        "rows-needed: seed %d, %d accounts planned: effect model %.3f, exact averages %.3f, "
        "a learner fitted to the true lifts %.3f of the capacity oracle", seed, len(frame),
        result["effect_model"], result["exact_averages"], result["fitted_to_truth"],
    )  # fmt: skip
    result["curve"] = learning_curve(
        share, features_matrix, truth, p_model, rows, sigma, repeats, seed
    )
    return result


def run_rows_needed(
    params: Params,
    seeds: Sequence[int],
    accounts: int,
    rows: Sequence[int],
    sigma: float,
    repeats: int,
    out: Path,
) -> dict[str, Any]:
    """Every seed's curve; writes ``out/rows_needed.json`` and ``out/rows_needed.png``."""
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "settings": {"seeds": list(seeds), "accounts": accounts, "rows": list(rows),
                     "sigma": sigma, "repeats": repeats},
        "seeds": [],
    }  # fmt: skip
    for seed in seeds:
        result["seeds"].append(
            rows_needed(params, seed, accounts, rows, sigma, repeats, out / "worlds" / str(seed))
        )
        scratch = out / ".rows_needed.json.tmp"
        scratch.write_text(json.dumps(result, indent=1) + "\n")
        scratch.replace(out / "rows_needed.json")
    plot(result, out / "rows_needed.png")
    return result


def summary(result: dict[str, Any]) -> pd.DataFrame:
    """Per rows a kind: the mean and range over seeds and repeats of both readings."""
    curve = pd.DataFrame([row for seed in result["seeds"] for row in seed["curve"]])
    return curve.groupby("rows_per_kind")[["learned", "averages_by_slope"]].agg(
        ["mean", "min", "max", "count"]
    )


def plot(result: dict[str, Any], path: Path) -> None:
    """Share of the capacity oracle against randomised rows per kind (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(result)
    x = table.index.to_numpy()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, label in (("learned", "LightGBM on N randomised rows a kind"),
                        ("averages_by_slope", "their averages, spread by slope")):  # fmt: skip
        ax.plot(x, table[(name, "mean")], marker="o", label=label)
        ax.fill_between(x, table[(name, "min")], table[(name, "max")], alpha=0.2)
    for key, style, label in (
        ("fitted_to_truth", "-", "learner fitted to the true lifts"),
        ("exact_averages", "--", "exact averages, spread by slope"),
        ("effect_model", ":", "the effect model (shipped)"),
    ):
        level = np.mean([seed[key] for seed in result["seeds"]])
        ax.axhline(level, color="grey", linestyle=style, linewidth=1, label=f"{label}: {level:.2f}")
    ax.axhline(0.85, color="red", linewidth=0.8, label="target 0.85")
    ax.set_xscale("log")
    ax.set_xlabel("randomised rows per kind")
    ax.set_ylabel("plan value / capacity-limited oracle")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
