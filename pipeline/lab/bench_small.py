"""The stack against its own members on small public tables: is the ensemble ever worse out of
sample than its best member beyond noise, and what does the small-data guard change?

Tables whose data ship inside an installed wheel (nothing is downloaded at run time):

- ``breast_cancer``: scikit-learn's Wisconsin diagnostic table (569 rows, 30 numbers; positive =
  malignant, 212);
- ``anes96``: statsmodels' 1996 US election survey (944 rows, 9 numbers; positive = a vote for
  Dole, 393);
- ``fair``: statsmodels' affairs survey (6,366 rows, 8 numbers; positive = any affair, 2,053);
- ``fair_small``: ``fair`` cut to the issue's regime, 125 positives and 1,375 negatives drawn
  with ``numpy.random.default_rng(0)`` (so each training fold holds 100 positives);
- ``telco`` and ``telco_small`` (IBM's Telco churn, 7,043 customers, positive = churn; the small
  cut as for ``fair``): only when ``make bench-tables`` has put its wheel in
  ``data/benchmarks/``; skipped otherwise.

The split, the same for every model: ``StratifiedKFold(5, shuffle=True, random_state=0)`` on
the positive label; every row is predicted once, by the models fitted on the other four folds
(with the params.yaml ``train`` settings, no tuning), and the figures are those of the pooled
out-of-fold predictions. Models: each member alone (a one-member ensemble: its own intercept,
slope and calibration), the stack as shipped before the guard (``stacking: stack``) and the
ensemble as it is now (``stacking: auto``). Intervals: 95 % percentile, from 1,000 resamples of
rows (seed 0), the same resamples for every model, so each gain is paired.

Figures, not assertions: ``python -m pipeline.lab.bench_small [--params PARAMS] [--tables
a,b]`` (about 11 minutes on 2 cores; docs/results.md holds a run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from models.config import TrainConfig
from models.win.ensemble import HealthEnsemble, make_ensemble

SEED = 0  # the folds, the small cuts and the bootstrap
FOLDS = 5
REPLICATES = 1000
SMALL_POSITIVES, SMALL_ROWS = 125, 1500
TELCO_CACHE = Path("data/benchmarks")


@dataclass(frozen=True)
class Table:
    """A public binary table: features (numbers, or text as ``category``) and the positive
    label (1 = the churn-like outcome); the ensemble is fitted on ``1 − positive``."""

    name: str
    source: str
    X: pd.DataFrame
    positive: np.ndarray


@dataclass(frozen=True)
class Figure:
    """One model's (or one gain's) AUC and log loss on the pooled out-of-fold predictions, each
    with its 95 % interval. For a gain, positive means the ensemble is better."""

    table: str
    model: str
    roc_auc: float
    roc_auc_low: float
    roc_auc_high: float
    log_loss: float
    log_loss_low: float
    log_loss_high: float


@dataclass(frozen=True)
class TableResult:
    """One table's figures, counts and what the guard chose in each fold."""

    table: str
    source: str
    rows: int
    positives: int
    figures: list[Figure]
    modes: list[str]
    seconds: float


def load_breast_cancer() -> Table:
    """scikit-learn's bundled Wisconsin table; malignant is the positive class."""
    from sklearn.datasets import load_breast_cancer as bundled

    data = bundled(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    # scikit-learn codes malignant 0, benign 1
    return Table("breast_cancer", "scikit-learn", X, 1 - data.target.to_numpy())


def load_anes96() -> Table:
    """The 1996 US election survey statsmodels ships; a vote for Dole is the positive class."""
    from statsmodels.datasets import anes96

    data = anes96.load_pandas().data
    # logpopul repeats popul on another scale
    X = data.drop(columns=["vote", "logpopul"])
    return Table("anes96", "statsmodels", X, data["vote"].to_numpy().astype(int))


def load_fair() -> Table:
    """The affairs survey statsmodels ships; any affair is the positive class."""
    from statsmodels.datasets import fair

    data = fair.load_pandas().data
    positive = (data["affairs"] > 0).to_numpy().astype(int)
    return Table("fair", "statsmodels", data.drop(columns="affairs"), positive)


def load_telco() -> Table:
    """IBM's Telco churn table, typed as ``data.source: table`` types it; churn is positive.

    Raises:
        FileNotFoundError: ``make bench-tables`` has not put its wheel in ``data/benchmarks/``.
    """
    import features
    from pipeline.lab.bench_tables import TELCO, fetch_telco

    built = features.prebuilt_training_set(pd.read_csv(fetch_telco(TELCO_CACHE)), TELCO)
    names = built.catalog["name"].tolist()
    X = built.table[names].reset_index(drop=True)
    return Table("telco", "IBM (PyPI wheel)", X, 1 - built.table["renewed"].astype(int).to_numpy())


def small_cut(table: Table, positives: int = SMALL_POSITIVES, rows: int = SMALL_ROWS) -> Table:
    """``positives`` positive and ``rows − positives`` negative rows drawn without replacement
    with ``default_rng(SEED)``, in the table's order: the issue's ≈ 100 positives per fit."""
    rng = np.random.default_rng(SEED)
    pos = rng.choice(np.flatnonzero(table.positive == 1), positives, replace=False)
    neg = rng.choice(np.flatnonzero(table.positive == 0), rows - positives, replace=False)
    keep = np.sort(np.concatenate([pos, neg]))
    return Table(
        f"{table.name}_small",
        table.source,
        table.X.iloc[keep].reset_index(drop=True),
        table.positive[keep],
    )


TABLES: dict[str, Callable[[], Table]] = {
    "breast_cancer": load_breast_cancer,
    "anes96": load_anes96,
    "fair": load_fair,
    "fair_small": lambda: small_cut(load_fair()),
    "telco": load_telco,
    "telco_small": lambda: small_cut(load_telco()),
}


def run_small_bench(table: Table, cfg: TrainConfig) -> TableResult:
    """Fit every model on the same folds of ``table``; the figures of their pooled out-of-fold
    predictions with paired bootstrap intervals, and the guard's choice per fold."""
    started = time.perf_counter()
    renewed = 1 - table.positive
    models: dict[str, Callable[[], HealthEnsemble]] = {
        name: (lambda name=name: make_ensemble(cfg.model_copy(update={"members": [name]})))
        for name in cfg.members
    }
    models["old stack"] = lambda: make_ensemble(cfg.model_copy(update={"stacking": "stack"}))
    models["ensemble"] = lambda: make_ensemble(cfg.model_copy(update={"stacking": "auto"}))
    predicted = {name: np.empty(len(renewed)) for name in models}
    modes = []
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for fit, held in folds.split(table.X, table.positive):
        for name, make in models.items():
            model = make().fit(table.X.iloc[fit], renewed[fit])
            predicted[name][held] = model.predict_proba(table.X.iloc[held])[:, 1]
            if name == "ensemble":
                modes.append(_mode(model))
    figures = _figures(table.name, renewed, predicted, list(cfg.members))
    return TableResult(
        table=table.name,
        source=table.source,
        rows=len(renewed),
        positives=int(table.positive.sum()),
        figures=figures,
        modes=modes,
        seconds=round(time.perf_counter() - started, 1),
    )


def _mode(model: HealthEnsemble) -> str:
    choice = model.stack_choice_
    if model.stack_mode_ == "stack":
        return "stack"
    if model.stack_mode_ == "single":
        return f"single {choice.member}"
    return f"blend {choice.shrinkage:.2f} to {choice.member}"


def _figures(
    table: str, renewed: np.ndarray, predicted: dict[str, np.ndarray], members: list[str]
) -> list[Figure]:
    """Each model's AUC and log loss, and the ensemble's gains over the old stack and over the
    best member (the one with the lowest log loss out of sample: the best in hindsight)."""
    names = list(predicted)
    rng = np.random.default_rng(SEED)
    draws = np.empty((REPLICATES, len(names), 2))
    for r in range(REPLICATES):
        rows = rng.integers(0, len(renewed), len(renewed))
        for i, name in enumerate(names):
            draws[r, i] = _scores(renewed[rows], predicted[name][rows])
    point = np.array([_scores(renewed, predicted[name]) for name in names])
    best = min(members, key=lambda m: point[names.index(m), 1])
    new = names.index("ensemble")
    rows_out = [(name, point[i], draws[:, i]) for i, name in enumerate(names)]
    sign = np.array([1.0, -1.0])  # a gain: higher AUC, lower log loss
    for label, other in (("gain vs old stack", "old stack"), (f"gain vs best ({best})", best)):
        j = names.index(other)
        gain = sign * (point[new] - point[j])
        rows_out.append((label, gain, sign * (draws[:, new] - draws[:, j])))
    out = []
    for model, value, sample in rows_out:
        low, high = np.quantile(sample, [0.025, 0.975], axis=0)
        out.append(
            Figure(table, model, float(value[0]), float(low[0]), float(high[0]),
                   float(value[1]), float(low[1]), float(high[1]))
        )  # fmt: skip
    return out


def _scores(renewed: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return roc_auc_score(renewed, p), log_loss(renewed, p, labels=[0, 1])


def markdown(results: list[TableResult]) -> str:
    """The figures as the two Markdown tables docs/results.md holds: the ensemble's gains (and
    the guard's choice per fold), then every model's AUC and log loss."""

    def cell(value: float, low: float, high: float, sign: str = "") -> str:
        return f"{value:{sign}.4f} ({low:{sign}.4f} to {high:{sign}.4f})"

    gains = [
        "| table (rows, positive) | the guard, fold by fold | vs old stack: AUC | log loss "
        "| vs best member: AUC | log loss |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    models = [
        "| table | model | ROC AUC (95 %) | log loss (95 %) |",
        "| --- | --- | --- | --- |",
    ]
    for result in results:
        by_model = {f.model: f for f in result.figures}
        old = by_model.pop("gain vs old stack")
        label = next(m for m in by_model if m.startswith("gain vs best"))
        best = by_model.pop(label)
        gains.append(
            f"| {result.table} ({result.rows:,}, {result.positives:,}) "
            f"| {'; '.join(result.modes)} "
            f"| {cell(old.roc_auc, old.roc_auc_low, old.roc_auc_high, '+')} "
            f"| {cell(old.log_loss, old.log_loss_low, old.log_loss_high, '+')} "
            f"| {label.removeprefix('gain vs best (').removesuffix(')')}: "
            f"{cell(best.roc_auc, best.roc_auc_low, best.roc_auc_high, '+')} "
            f"| {cell(best.log_loss, best.log_loss_low, best.log_loss_high, '+')} |"
        )
        for k, f in enumerate(by_model.values()):
            models.append(
                f"| {result.table if k == 0 else ''} | {f.model} "
                f"| {cell(f.roc_auc, f.roc_auc_low, f.roc_auc_high)} "
                f"| {cell(f.log_loss, f.log_loss_low, f.log_loss_high)} |"
            )
    return "\n".join([*gains, "", *models])


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.lab.bench_small``: run the bench and print its Markdown tables."""
    import warnings

    from pipeline.config import load_params
    from pipeline.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m pipeline.lab.bench_small", description=(
        "Each member, the old stack and the guarded ensemble on small public tables: AUC and "
        "log loss of pooled out-of-fold predictions with paired 95 % bootstrap intervals."
    ))  # fmt: skip
    parser.add_argument("--params", default="params.yaml", help="params file (its train section)")
    parser.add_argument(
        "--tables", default=",".join(TABLES), help=f"comma-separated, of {', '.join(TABLES)}"
    )
    args = parser.parse_args(argv)
    setup_logging(quiet=True)
    warnings.simplefilter("ignore")  # library deprecation chatter would bury the table
    cfg = load_params(args.params).train
    results = []
    for name in args.tables.split(","):
        if name not in TABLES:
            raise SystemExit(f"bench_small: unknown table {name!r}; one of {', '.join(TABLES)}")
        try:
            table = TABLES[name]()
        except FileNotFoundError as exc:
            sys.stderr.write(f"bench_small: {name} skipped: {exc}\n")
            continue
        results.append(run_small_bench(table, cfg))
        sys.stderr.write(f"bench_small: {name} done in {results[-1].seconds:.0f} s\n")
    sys.stdout.write(markdown(results) + "\n")


if __name__ == "__main__":
    main()
