"""The classic weighted health scorecard, as a baseline, and the factor audit.

The scorecard of the customer-success literature: each component (usage, engagement, …) scored
0–100 by percentile, health = Σ weight × component score. The only thing learned is each
feature's direction (the sign of its rank correlation with renewal on the training rows), which
a person writing the scorecard would set by hand. The factor audit shows which of those metrics
predict renewal at all: hand-weighted scores often weigh metrics that do not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.win.metrics import univariate_auc

WEAK_AUC = 0.52  # a factor whose univariate AUC stays within 0.5 ± 0.02 is flagged


class Scorecard:
    """Percentile-scored components combined with fixed weights (scikit-learn style)."""

    def __init__(self, weights: dict[str, float], components: dict[str, str]) -> None:
        self.weights = weights
        self.components = components  # feature → component

    def fit(self, X: pd.DataFrame, renewed: np.ndarray) -> Scorecard:
        """Learn each numeric feature's direction (toward renewal) and reference distribution.

        Raises:
            ValueError: A weighted component has no feature in ``components``.
        """
        unknown = sorted(set(self.weights) - set(self.components.values()))
        if unknown:
            raise ValueError(
                f"scorecard weights name components with no features: {unknown}; "
                f"components are {sorted(set(self.components.values()))}"
            )
        used = [
            c
            for c in X.columns
            if self.components.get(c) in self.weights and pd.api.types.is_numeric_dtype(X[c])
        ]
        ranks = X[used].rank(pct=True)
        corr = ranks.corrwith(pd.Series(renewed, index=X.index).astype(float))
        self.direction_ = np.sign(corr.fillna(0.0)).replace(0.0, 1.0)
        self.reference_ = {c: np.sort(X[c].dropna().to_numpy(dtype=float)) for c in used}
        return self

    def component_scores(self, X: pd.DataFrame) -> pd.DataFrame:
        """0–100 per component: mean oriented percentile of its features (missing = median)."""
        out = {}
        for component in self.weights:
            cols = [c for c in self.reference_ if self.components[c] == component]
            pct = pd.DataFrame(
                {c: self._percentile(c, X[c].to_numpy(dtype=float)) for c in cols}, index=X.index
            )
            rising = self.direction_[cols].to_numpy() > 0
            oriented = np.where(rising, pct.to_numpy(), 100 - pct.to_numpy())
            out[component] = oriented.mean(axis=1) if cols else np.full(len(X), 50.0)
        return pd.DataFrame(out, index=X.index)

    def _percentile(self, column: str, values: np.ndarray) -> np.ndarray:
        ref = self.reference_[column]
        if ref.size == 0:
            return np.full(values.size, 50.0)
        left = np.searchsorted(ref, values, side="left")
        right = np.searchsorted(ref, values, side="right")
        pct = 100 * (left + right) / (2 * ref.size)
        return np.where(np.isnan(values), 50.0, pct)

    def health(self, X: pd.DataFrame) -> np.ndarray:
        """The weighted health 0–100."""
        scores = self.component_scores(X)
        weights = pd.Series(self.weights)
        return (scores[weights.index] * weights).sum(axis=1).to_numpy() / weights.sum()


def factor_audit(
    X: pd.DataFrame,
    renewed: np.ndarray,
    components: dict[str, str],
    component_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per feature (and per scorecard component): univariate AUC, rank correlation with renewal,
    and ``predictive`` = the AUC is outside 0.5 ± 0.02. Sorted by strength."""
    y = pd.Series(renewed, index=X.index).astype(float)
    rows = []
    for column in X.columns:
        values = X[column]
        auc = univariate_auc(values, renewed)
        corr = (
            float(values.rank().corr(y.rank()))
            if pd.api.types.is_numeric_dtype(values) and values.nunique(dropna=True) >= 2
            else float("nan")
        )
        rows.append(
            {"level": "feature", "name": column, "component": components.get(column, ""),
             "auc": auc, "spearman": corr}
        )  # fmt: skip
    for component, score in (component_scores if component_scores is not None else {}).items():
        auc = float(roc_auc_score(renewed, score)) if score.nunique(dropna=True) >= 2 else 0.5
        rows.append(
            {"level": "component", "name": component, "component": component, "auc": auc,
             "spearman": float(score.rank().corr(y.rank()))}
        )  # fmt: skip
    audit = pd.DataFrame(rows)
    strength = (audit["auc"] - 0.5).abs()
    audit = audit.assign(predictive=strength >= WEAK_AUC - 0.5, strength=strength)
    return audit.sort_values(["level", "strength"], ascending=[True, False]).drop(
        columns="strength"
    )
