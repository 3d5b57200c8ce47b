"""How good a win probability is: discrimination, calibration, ranking by ARR at risk, lead time.

Conventions: ``renewed`` is 1 = renewed, ``p`` is the win probability; "at risk" and the
positive class of precision, recall, PR AUC and lift is a *non*-renewal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


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
    snapshots: pd.DataFrame, p: np.ndarray, lead_days: list[int], at_risk_below: float
) -> tuple[pd.DataFrame, float]:
    """Precision and recall of "at risk" (p < ``at_risk_below``) by days before renewal, and
    the median days of warning before a non-renewal.

    ``snapshots`` holds ``contract_id``, ``days_to_renewal`` and ``renewed``. A bucket ``d``
    covers snapshots with days to renewal in (previous d, d]. The warning of a lost contract is
    the days to renewal of its earliest snapshot from which every later one is flagged (0 when
    its last snapshot is not flagged).
    """
    frame = snapshots[["contract_id", "days_to_renewal", "renewed"]].assign(
        flagged=np.asarray(p) < at_risk_below
    )
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
    median = float(warned.median()) if len(warned) else float("nan")
    return pd.DataFrame(rows), median


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
