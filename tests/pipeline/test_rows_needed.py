"""The rows-needed curve: a learner of per-account lifts from noisy randomised rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pipeline.lab.rows_needed import fitted_to_truth, learning_curve


def _book(n: int = 3_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two kinds whose lift changes sign with the first feature; the slope says nothing of it."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    truth = np.column_stack([0.03 * np.tanh(2 * X[:, 0]), 0.01 + 0.02 * (X[:, 1] > 0.5)])
    p = rng.uniform(0.2, 0.8, n)
    return X, truth, p


def _value(truth: np.ndarray, budget: int = 300) -> Callable[[np.ndarray], float]:
    """The true lift of acting on the ``budget`` accounts (and kinds) the lifts rank first."""
    best = np.sort(truth.max(axis=1))[::-1][:budget].clip(min=0).sum()

    def value(lifts: np.ndarray) -> float:
        kind = lifts.argmax(axis=1)
        top = np.argsort(-lifts.max(axis=1), kind="stable")[:budget]
        top = top[lifts[top, kind[top]] > 0]
        return float(truth[top, kind[top]].sum() / best)

    return value


def test_enough_rows_learn_the_shape_the_averages_cannot():
    # given lifts whose sign depends on a feature, valued by acting on the top tenth
    X, truth, p = _book()
    value = _value(truth)
    # when the curve runs from a few hundred rows to many, each row's noise ten times the lift
    curve = learning_curve(value, X, truth, p, rows=[300, 20_000], sigma=0.2, repeats=2)
    few = [r["learned"] for r in curve if r["rows_per_kind"] == 300]
    many = [r["learned"] for r in curve if r["rows_per_kind"] == 20_000]
    # then many rows learn the shape nearly as well as the truth, accounts never seen included
    assert min(many) > 0.9
    assert max(few) < min(many) - 0.2
    # and the averages spread by slope stay far below, however many rows
    assert max(r["averages_by_slope"] for r in curve if r["rows_per_kind"] == 20_000) < 0.6
    # and the learner fitted to the true lifts, each half from the other, is near the truth
    assert value(fitted_to_truth(X, truth)) > 0.95


def test_the_averages_converge_to_each_kinds_true_lift():
    # given lifts that differ by kind only (no shape to learn), the slope flat
    X, _, _ = _book()
    truth = np.tile([0.02, -0.01, 0.005], (len(X), 1))
    p = np.full(len(X), 0.5)

    def value(lifts: np.ndarray) -> float:  # the average lift read for the first two kinds
        return float(lifts[:, 0].mean() * 100 + lifts[:, 1].mean())

    # when many noisy rows are read, each less its control arm's mean
    curve = learning_curve(value, X, truth, p, rows=[50_000], sigma=0.05, repeats=1)
    # then each kind's average is its true lift, within the noise of 50,000 rows an arm
    assert curve[0]["averages_by_slope"] == pytest.approx(2.0 - 0.01, abs=100 * 0.0015)
    assert curve[0]["learned"] == pytest.approx(2.0 - 0.01, abs=100 * 0.0015)


def test_the_curve_is_deterministic_given_its_seed():
    X, truth, p = _book(n=500)
    value = _value(truth, budget=50)
    first = learning_curve(value, X, truth, p, rows=[200], sigma=0.05, repeats=1, seed=3)
    again = learning_curve(value, X, truth, p, rows=[200], sigma=0.05, repeats=1, seed=3)
    assert first == again
