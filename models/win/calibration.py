"""Calibration of the ensemble's log-odds into a win probability, chosen by validation.

Candidates: isotonic regression, a sigmoid (Platt) and Venn-ABERS. Venn-ABERS is also always
fitted for its per-account probability interval ``[p0, p1]``, whichever method gives the point.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold
from venn_abers import VennAbers

Method = Literal["isotonic", "sigmoid", "venn_abers"]
METHODS: tuple[Method, ...] = ("isotonic", "sigmoid", "venn_abers")
EPS = 1e-4


class Calibrator:
    """Maps log-odds to calibrated probabilities with one method, plus a Venn-ABERS interval."""

    def __init__(self, method: Method) -> None:
        self.method = method

    def fit(self, score: np.ndarray, y: np.ndarray) -> Calibrator:
        """Learn the map from log-odds ``score`` to P(y = 1), and the Venn-ABERS interval.

        Raises:
            ValueError: ``method`` is not one of ``METHODS``.
        """
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; one of {METHODS}")
        score, y = np.asarray(score, dtype=float), np.asarray(y, dtype=int)
        self.venn_abers_ = VennAbers().fit(_two_columns(expit(score)), y)
        if self.method == "isotonic":
            self.isotonic_ = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip")
            self.isotonic_.fit(score, y)
        elif self.method == "sigmoid":
            self.sigmoid_ = LogisticRegression(C=1e6).fit(score[:, None], y)
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        """Calibrated P(renewed) per row."""
        score = np.asarray(score, dtype=float)
        if self.method == "isotonic":
            p = self.isotonic_.predict(score)
        elif self.method == "sigmoid":
            p = self.sigmoid_.predict_proba(score[:, None])[:, 1]
        else:
            p = self.venn_abers_.predict_proba(_two_columns(expit(score)))[0][:, 1]
        return np.clip(p, EPS, 1 - EPS)

    def interval(self, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Venn-ABERS lower and upper probabilities per row."""
        _, p01 = self.venn_abers_.predict_proba(_two_columns(expit(np.asarray(score, float))))
        return p01[:, 0], p01[:, 1]


def choose_calibration(
    score: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5
) -> tuple[Method, dict[Method, float], np.ndarray]:
    """The method with the lowest out-of-fold log loss on (score, y), grouped by account.

    Returns the method, each method's log loss, and the chosen method's out-of-fold
    probabilities (honest figures for cross-validation metrics).
    """
    score, y = np.asarray(score, dtype=float), np.asarray(y, dtype=int)
    splits = list(GroupKFold(n_splits=folds).split(score, y, groups))
    oof = {m: np.empty(score.size) for m in METHODS}
    for fit_rows, held_rows in splits:
        for method in METHODS:
            cal = Calibrator(method).fit(score[fit_rows], y[fit_rows])
            oof[method][held_rows] = cal.predict(score[held_rows])
    losses = {m: float(log_loss(y, oof[m], labels=[0, 1])) for m in METHODS}
    best = min(METHODS, key=lambda m: losses[m])
    return best, losses, oof[best]


def _two_columns(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p, p])
