"""Calibration of the ensemble's log-odds into a win probability, chosen by validation.

Candidates: a sigmoid (Platt scaling on the log-odds), beta calibration, isotonic regression and
Venn-ABERS. The first two are smooth; the last two are step functions, which large comparisons
find can hurt a strong model's probabilities out of sample. Venn-ABERS is also always fitted for
its per-account probability interval ``[p0, p1]``, whichever method gives the point.

The method is chosen by log loss on held-out rows: out of time when the rows carry dates
(:func:`forward_folds`: fitted on earlier periods, scored on the next, as the model will be
used), otherwise out of fold grouped by account.

:class:`Recalibrated` puts a two-number correction (a Platt map of the calibrated log-odds) on
top of a fitted calibrator: :mod:`models.win.recalibration` learns it from renewals that closed
after training, without refitting the members.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold
from venn_abers import VennAbers

Method = Literal["sigmoid", "beta", "isotonic", "venn_abers"]
METHODS: tuple[Method, ...] = ("sigmoid", "beta", "isotonic", "venn_abers")
EPS = 1e-4
UNPENALISED = 1e6  # scikit-learn's C: a plain maximum-likelihood fit of two or three numbers


class Calibrator:
    """Maps log-odds to calibrated probabilities with one method, plus a Venn-ABERS interval."""

    def __init__(self, method: Method, with_interval: bool = True) -> None:
        self.method = method
        # False: the point map alone (held-out scoring of a method; Venn-ABERS is the slow part)
        self.with_interval = with_interval

    def fit(self, score: np.ndarray, y: np.ndarray) -> Calibrator:
        """Learn the map from log-odds ``score`` to P(y = 1), and the Venn-ABERS interval.

        Raises:
            ValueError: ``method`` is not one of ``METHODS``.
        """
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; one of {METHODS}")
        score, y = np.asarray(score, dtype=float), np.asarray(y, dtype=int)
        if self.with_interval or self.method == "venn_abers":
            with _venn_abers_quietly():
                self.venn_abers_ = VennAbers().fit(_two_columns(expit(score)), y)
        if self.method == "isotonic":
            self.isotonic_ = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip")
            self.isotonic_.fit(score, y)
        elif self.method == "sigmoid":
            self.sigmoid_ = LogisticRegression(C=UNPENALISED).fit(score[:, None], y)
        elif self.method == "beta":
            self.beta_ = BetaMap().fit(score, y)
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        """Calibrated P(renewed) per row."""
        score = np.asarray(score, dtype=float)
        if self.method == "isotonic":
            p = self.isotonic_.predict(score)
        elif self.method == "sigmoid":
            p = self.sigmoid_.predict_proba(score[:, None])[:, 1]
        elif self.method == "beta":
            p = self.beta_.predict(score)
        else:
            with _venn_abers_quietly():
                p = self.venn_abers_.predict_proba(_two_columns(expit(score)))[0][:, 1]
        return np.clip(p, EPS, 1 - EPS)

    def interval(self, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Venn-ABERS lower and upper probabilities per row.

        Raises:
            ValueError: fitted with ``with_interval=False``.
        """
        if not hasattr(self, "venn_abers_"):
            raise ValueError("this calibrator was fitted without its interval (with_interval)")
        with _venn_abers_quietly():
            _, p01 = self.venn_abers_.predict_proba(_two_columns(expit(np.asarray(score, float))))
        return p01[:, 0], p01[:, 1]


class BetaMap:
    """Beta calibration (Kull, Silva Filho & Flach, 2017) of a log-odds score.

    With p = sigmoid(score), the calibrated log-odds are ``a·ln p − b·ln(1 − p) + c`` with
    a, b ≥ 0: a logistic regression on two columns. It contains the identity and Platt scaling
    as special cases (a = b) and bends differently at the two ends, which a sigmoid cannot.
    A coefficient fitted negative is dropped and the other refitted, as in the paper, so the
    map stays monotone.
    """

    def fit(self, score: np.ndarray, y: np.ndarray) -> BetaMap:
        """Fit a, b and c by maximum likelihood on (score, y)."""
        columns = _beta_columns(np.asarray(score, dtype=float))
        keep = np.array([True, True])
        model = LogisticRegression(C=UNPENALISED).fit(columns, y)
        if (model.coef_[0] < 0).any():
            keep = model.coef_[0] >= model.coef_[0].max()  # the larger one, refitted alone
            model = LogisticRegression(C=UNPENALISED).fit(columns[:, keep], y)
        self.keep_, self.model_ = keep, model
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        """Calibrated P(y = 1) per row."""
        columns = _beta_columns(np.asarray(score, dtype=float))[:, self.keep_]
        return self.model_.predict_proba(columns)[:, 1]


class Recalibrated:
    """A fitted calibrator followed by ``p ↦ sigmoid(intercept + slope · logit(p))``.

    Used by recalibration: the members and the calibrator stay as trained, and two numbers
    learned on renewals closed since then move the probabilities (``slope`` < 1 when the model
    has grown over-confident, ``intercept`` ≠ 0 when the book's renewal rate has drifted). The
    Venn-ABERS interval is moved by the same map, so it keeps its place around the point.
    """

    def __init__(self, base: Calibrator | Recalibrated, intercept: float, slope: float) -> None:
        self.base = base
        self.intercept = float(intercept)
        self.slope = float(slope)

    @property
    def method(self) -> str:
        """The base method and the correction, e.g. ``"sigmoid, recalibrated"``."""
        return f"{self.base.method}, recalibrated"

    @staticmethod
    def _map(p: np.ndarray, intercept: float, slope: float) -> np.ndarray:
        moved = expit(intercept + slope * logit(np.clip(p, EPS, 1 - EPS)))
        return np.clip(moved, EPS, 1 - EPS)

    def _move(self, p: np.ndarray) -> np.ndarray:
        return self._map(p, self.intercept, self.slope)

    def predict(self, score: np.ndarray) -> np.ndarray:
        """Recalibrated P(renewed) per row."""
        return self._move(self.base.predict(score))

    def interval(self, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The base interval moved by the same map (its ends swap if the slope is negative)."""
        low, high = (self._move(p) for p in self.base.interval(score))
        return np.minimum(low, high), np.maximum(low, high)


@dataclass(frozen=True)
class CalibrationChoice:
    """Which method, on what evidence.

    ``losses``: each method's held-out log loss per row; ``validation``: ``"out of time"``
    (fitted on earlier periods, scored on later ones, ``folds`` of them) or ``"out of fold"``
    (grouped by account); ``rows``: how many held-out rows the losses rest on.
    """

    method: Method
    losses: dict[Method, float]
    validation: str
    folds: int
    rows: int


def choose_calibration(
    score: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    folds: int = 5,
    times: np.ndarray | None = None,
) -> tuple[CalibrationChoice, np.ndarray]:
    """The method with the lowest held-out log loss on (score, y).

    Held out in time when ``times`` (each row's as-of date) has at least three distinct
    periods: :func:`forward_folds`. Otherwise (a table without dates) out of fold, grouped by
    account. Ties go to the earlier method in ``METHODS`` (the smooth ones first).

    Returns:
        The choice, and the chosen method's out-of-fold probabilities grouped by account (one
        per row, for cross-validation metrics, whichever way the method was chosen).
    """
    score, y = np.asarray(score, dtype=float), np.asarray(y, dtype=int)
    grouped = list(GroupKFold(n_splits=folds).split(score, y, groups))
    oof = {m: _held_out(m, score, y, grouped) for m in METHODS}
    forward = None if times is None else forward_folds(np.asarray(times), folds)
    if forward:
        held = np.concatenate([rows for _, rows in forward])
        scored = {m: _held_out(m, score, y, forward)[held] for m in METHODS}
        losses = {m: float(log_loss(y[held], scored[m], labels=[0, 1])) for m in METHODS}
        validation, count, rows = "out of time", len(forward), held.size
    else:
        losses = {m: float(log_loss(y, oof[m], labels=[0, 1])) for m in METHODS}
        validation, count, rows = "out of fold", folds, score.size
    best = min(METHODS, key=lambda m: losses[m])
    return CalibrationChoice(best, losses, validation, count, rows), oof[best]


def forward_folds(times: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Expanding-window folds over time: the rows cut into ``folds`` consecutive blocks of
    dates (a date never split), each block after the first scored by a fit on all before it.

    None when there are fewer than three distinct dates (no time to hold out) or a date is
    missing (a prebuilt table without as-of dates).
    """
    dates = pd.to_datetime(pd.Series(np.asarray(times)), errors="coerce")
    if dates.isna().any():
        return None
    stamps = dates.to_numpy().astype("datetime64[D]").astype(np.int64)
    unique, counts = np.unique(stamps, return_counts=True)
    if unique.size < 3:
        return None
    blocks = min(folds, unique.size)
    # each date's block: by the share of rows up to its middle, so blocks hold similar counts
    middle = (np.cumsum(counts) - counts / 2) / counts.sum()
    block_of_date = np.minimum((middle * blocks).astype(int), blocks - 1)
    block = block_of_date[np.searchsorted(unique, stamps)]
    out = []
    for k in range(1, blocks):
        fit, held = np.flatnonzero(block < k), np.flatnonzero(block == k)
        if fit.size and held.size:
            out.append((fit, held))
    return out or None


def _held_out(
    method: Method, score: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    out = np.full(score.size, np.nan)
    for fit_rows, held_rows in splits:
        if np.unique(y[fit_rows]).size < 2:  # an early period with one outcome: its base rate
            out[held_rows] = np.clip(y[fit_rows].mean(), EPS, 1 - EPS)
            continue
        # the point map alone: the Venn-ABERS interval is fitted once, for the chosen method
        fitted = Calibrator(method, with_interval=False).fit(score[fit_rows], y[fit_rows])
        out[held_rows] = fitted.predict(score[held_rows])
    return out


def _beta_columns(score: np.ndarray) -> np.ndarray:
    # ln p and −ln(1 − p) of p = sigmoid(score), computed stably from the log-odds
    return np.column_stack([log_expit(score), -log_expit(-score)])


@contextmanager
def _venn_abers_quietly() -> Iterator[None]:
    """venn-abers takes the minimum of a slope that is undefined on a stretch of tied scores
    and tests the result for NaN itself: numpy's "All-NaN slice" warning there is its normal
    path, not a fault, and would print in every training log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        yield


def _two_columns(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p, p])
