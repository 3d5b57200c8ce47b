"""How good a win probability is: discrimination, calibration, ranking by ARR at risk, lead time.

Conventions: ``renewed`` is 1 = renewed, ``p`` is the win probability; "at risk" and the
positive class of precision, recall, PR AUC and lift is a *non*-renewal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from models.config import TrainConfig


def expected_calibration_error(renewed: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate − mean prediction| over equal-count bins of the prediction,
    weighted by bin size (equal-count because renewal probabilities crowd near 1)."""
    order = np.argsort(p, kind="stable")
    gaps = [
        abs(np.mean(np.asarray(renewed)[part]) - np.mean(np.asarray(p)[part])) * part.size
        for part in np.array_split(order, bins)
        if part.size
    ]
    return float(np.sum(gaps) / len(p))


def top_share(arr: np.ndarray, p: np.ndarray, percent: float) -> np.ndarray:
    """Positions of the top ``percent`` % of rows by ARR at risk = ARR × (1 − p)."""
    at_risk = np.asarray(arr, dtype=float) * (1 - np.asarray(p))
    count = max(1, round(len(at_risk) * percent / 100))
    return np.argsort(-at_risk, kind="stable")[:count]


def classification_metrics(
    renewed: np.ndarray, p: np.ndarray, arr: np.ndarray, top_k_percent: list[float]
) -> dict[str, float]:
    """ROC AUC, PR AUC (non-renewal), Brier, log loss, ECE, top-decile lift, and precision and
    recall (count and ARR) of the top k % by ARR at risk."""
    renewed, p, arr = np.asarray(renewed, int), np.asarray(p, float), np.asarray(arr, float)
    churn = 1 - renewed
    out = {
        "roc_auc": float(roc_auc_score(renewed, p)),
        "pr_auc": float(average_precision_score(churn, 1 - p)),
        "brier": float(brier_score_loss(renewed, p)),
        "log_loss": float(log_loss(renewed, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "ece": expected_calibration_error(renewed, p),
        "churn_rate": float(churn.mean()),
        "mean_p": float(p.mean()),
    }
    decile = np.argsort(p, kind="stable")[: max(1, len(p) // 10)]
    out["top_decile_lift"] = float(churn[decile].mean() / max(churn.mean(), 1e-12))
    lost_arr = (arr * churn).sum()
    for k in top_k_percent:
        top = top_share(arr, p, k)
        tag = f"{k:g}pct"
        out[f"precision_top_{tag}"] = float(churn[top].mean())
        out[f"recall_top_{tag}"] = float(churn[top].sum() / max(churn.sum(), 1))
        out[f"arr_recall_top_{tag}"] = float((arr * churn)[top].sum() / max(lost_arr, 1e-12))
    return out


def lead_time(
    snapshots: pd.DataFrame,
    p: np.ndarray,
    lead_days: list[int],
    at_risk_below: float,
    top_percent: float | None = None,
) -> LeadTime:
    """Precision and recall of "at risk" by days before renewal, and the median days of warning
    before a non-renewal.

    "At risk" is the list a team works: with ``top_percent``, the ``top_percent`` % of
    snapshots with the lowest win probability on their as-of date (``snapshots["as_of"]``);
    without, every snapshot with p < ``at_risk_below``. ``snapshots`` holds ``contract_id``,
    ``days_to_renewal`` and ``renewed``. A bucket ``d`` covers snapshots with days to renewal
    in (previous d, d]. The warning of a lost contract is the days to renewal of its earliest
    snapshot from which every later one is flagged (0 when its last snapshot is not flagged).
    """
    p = np.asarray(p, dtype=float)
    if top_percent is None:
        flagged = p < at_risk_below
    else:
        day = snapshots["as_of"].to_numpy()
        order = pd.Series(p).groupby(day).rank(method="first").to_numpy()
        size = pd.Series(p).groupby(day).transform("size").to_numpy()
        flagged = order <= np.ceil(size * top_percent / 100)
    frame = snapshots[["contract_id", "days_to_renewal", "renewed"]].assign(flagged=flagged)
    rows = []
    lower = 0
    for d in sorted(lead_days):
        part = frame[(frame["days_to_renewal"] > lower) & (frame["days_to_renewal"] <= d)]
        lost = part["renewed"] == 0
        flagged = part["flagged"]
        rows.append(
            {
                "days_before_renewal": f"{lower + 1}-{d}",
                "snapshots": len(part),
                "non_renewals": int(lost.sum()),
                "flagged": int(flagged.sum()),
                "precision": float(lost[flagged].mean()) if flagged.any() else float("nan"),
                "recall": float(flagged[lost].mean()) if lost.any() else float("nan"),
            }
        )
        lower = d
    lost = frame[frame["renewed"] == 0].sort_values(["contract_id", "days_to_renewal"])
    # walking back from the renewal, the warning lasts while every snapshot is flagged
    streak = lost.groupby("contract_id")["flagged"].cumprod().astype(bool)
    warned = lost["days_to_renewal"].where(streak).groupby(lost["contract_id"]).max().fillna(0)
    nan = float("nan")
    on_list = warned[warned > 0]
    low, high = (nan, nan)
    if len(warned):
        low, high = proportion_confint(len(on_list), len(warned), method="wilson")
    return LeadTime(
        pd.DataFrame(rows),
        float(warned.median()) if len(warned) else nan,
        float(len(on_list) / len(warned)) if len(warned) else nan,
        float(on_list.median()) if len(on_list) else nan,
        len(warned),
        float(low),
        float(high),
    )


class LeadTime(NamedTuple):
    """:func:`lead_time`'s figures: per bucket, the median warning over every non-renewal, the
    share of non-renewals at risk in their last snapshot, and their median warning."""

    table: pd.DataFrame
    median_days: float
    warned_share: float
    warned_median_days: float
    lost: int = 0  # the non-renewed contracts the shares rest on
    warned_low: float = float("nan")  # the share's 95 % interval (Wilson)
    warned_high: float = float("nan")


def at_risk_words(cfg: TrainConfig) -> str:
    """What "at risk" means in the lead-time figures, in words (:func:`lead_time`)."""
    if cfg.at_risk_top_percent is not None:
        return f"in the riskiest {cfg.at_risk_top_percent:g} % of the book on its date"
    return f"below a win probability of {cfg.at_risk_below:g}"


def univariate_auc(values: pd.Series, renewed: np.ndarray) -> float:
    """ROC AUC of one feature taken as a score (missing values ranked lowest); 0.5 = no signal."""
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values):
        rate = pd.Series(renewed, index=values.index).groupby(values.astype(object)).mean()
        score = values.astype(object).map(rate).astype(float).fillna(np.mean(renewed))
    else:
        score = values.astype(float)
        score = score.fillna(score.min() - 1 if score.notna().any() else 0.0)
    if score.nunique() < 2:
        return 0.5
    return float(roc_auc_score(renewed, score))


HEADLINE = ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")
LOWER_IS_BETTER = frozenset({"brier", "ece", "log_loss"})


def headline_metrics(renewed: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The figures a run is judged by (:data:`HEADLINE`), NaN where a sample has one class."""
    renewed, p = np.asarray(renewed, int), np.asarray(p, float)
    churn = 1 - renewed
    if churn.min() == churn.max():
        return dict.fromkeys(HEADLINE, float("nan"))
    decile = np.argsort(p, kind="stable")[: max(1, len(p) // 10)]
    return {
        "roc_auc": float(roc_auc_score(renewed, p)),
        "pr_auc": float(average_precision_score(churn, 1 - p)),
        "brier": float(brier_score_loss(renewed, p)),
        "ece": expected_calibration_error(renewed, p),
        "top_decile_lift": float(churn[decile].mean() / churn.mean()),
    }


def bootstrap_intervals(
    renewed: np.ndarray,
    scores: Mapping[str, np.ndarray],
    groups: np.ndarray,
    replicates: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Percentile intervals of the headline metrics of each score, and of each score's gain over
    the first, from one bootstrap over ``groups`` (accounts: their snapshots move together).

    Every score meets the same resamples, so a gain's interval is paired. A gain is signed so
    that positive is better (for Brier and ECE: the first's minus the other's).

    Returns:
        one row per (``score``, ``metric``): ``value`` on the whole sample, ``low`` and ``high``;
        rows whose ``score`` is ``"gain_vs_<name>"`` hold the first score's gain over ``<name>``.
        ``non_renewals`` and ``groups`` are the counts the figures rest on.
    """
    renewed = np.asarray(renewed, int)
    names = list(scores)
    codes, uniques = pd.factorize(pd.Series(groups), sort=True)
    rng = np.random.default_rng(seed)
    draws = np.empty((replicates, len(names), len(HEADLINE)))
    for r in range(replicates):
        counts = np.bincount(rng.integers(0, uniques.size, uniques.size), minlength=uniques.size)
        rows = np.repeat(np.arange(renewed.size), counts[codes])
        for i, name in enumerate(names):
            figures = headline_metrics(renewed[rows], np.asarray(scores[name])[rows])
            draws[r, i] = [figures[m] for m in HEADLINE]
    point = np.array([[headline_metrics(renewed, scores[n])[m] for m in HEADLINE] for n in names])
    sign = np.array([-1.0 if m in LOWER_IS_BETTER else 1.0 for m in HEADLINE])
    tables = [(name, point[i], draws[:, i]) for i, name in enumerate(names)]
    tables += [
        (f"gain_vs_{name}", sign * (point[0] - point[i]), sign * (draws[:, 0] - draws[:, i]))
        for i, name in enumerate(names)
        if i
    ]
    rows_out = []
    for score, value, sample in tables:
        low, high = np.nanquantile(sample, [alpha / 2, 1 - alpha / 2], axis=0)
        for j, metric in enumerate(HEADLINE):
            rows_out.append({"score": score, "metric": metric, "value": float(value[j]),
                             "low": float(low[j]), "high": float(high[j])})  # fmt: skip
    out = pd.DataFrame(rows_out)
    out["non_renewals"] = int((1 - renewed).sum())
    out["groups"] = int(uniques.size)
    return out


def rate_interval(p: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """The range the realised rate of independent outcomes with probabilities ``p`` falls in
    95 % of the time (normal approximation to the Poisson-binomial): a realised rate outside it
    says the probabilities were off, not unlucky."""
    p = np.asarray(p, dtype=float)
    spread = z * float(np.sqrt(np.sum(p * (1 - p)))) / max(p.size, 1)
    return float(p.mean()) - spread, float(p.mean()) + spread


def calibration_by_period(
    renewed: np.ndarray, p: np.ndarray, periods: np.ndarray | pd.Series
) -> pd.DataFrame:
    """Calibration per period (an as-of date): does it hold over time, or drift?

    One row per period: ``snapshots``, ``non_renewals``, the mean ``predicted`` and the
    ``realised`` renewal rate, the 95 % range the predictions allow for the realised rate
    (``expected_low``/``expected_high``, :func:`rate_interval`), whether the realised rate is
    ``within`` it, and the period's ``ece``. Sorted by period.
    """
    frame = pd.DataFrame(
        {"period": np.asarray(periods), "renewed": np.asarray(renewed, int), "p": np.asarray(p)}
    )
    rows = []
    for period, part in frame.groupby("period", sort=True):
        low, high = rate_interval(part["p"].to_numpy())
        realised = float(part["renewed"].mean())
        rows.append({
            "period": period,
            "snapshots": len(part),
            "non_renewals": int((part["renewed"] == 0).sum()),
            "predicted": float(part["p"].mean()),
            "realised": realised,
            "expected_low": low,
            "expected_high": high,
            "within": bool(low <= realised <= high),
            "ece": expected_calibration_error(part["renewed"].to_numpy(), part["p"].to_numpy()),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=PERIOD_COLUMNS)


PERIOD_COLUMNS = ("period", "snapshots", "non_renewals", "predicted", "realised",
                  "expected_low", "expected_high", "within", "ece")  # fmt: skip
