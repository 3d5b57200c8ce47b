"""Churn, shrink or grow: the size model, the renewal in dollars and the NRR forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.errors import ModelInputError
from models.renewal.size import (
    RenewalSize,
    SizeOutlook,
    nrr_errors,
    renewal_dollars,
    size_class,
)
from models.scoring.forecast import renewal_forecast

SMALL = {
    "members": ("additive", "linear"),
    "additive": {"n_estimators": 60, "learning_rate": 0.1, "min_child_samples": 10},
    "linear": {"C": 0.5},
    "cv_folds": 3,
}


def renewals(rows: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Renewed snapshots whose size follows adoption: high grows, low shrinks."""
    rng = np.random.default_rng(seed)
    adoption = rng.normal(0, 1, rows)
    u = adoption + rng.normal(0, 0.6, rows)
    ratio = np.where(u > 0.8, rng.uniform(1.1, 1.5, rows),
                     np.where(u < -0.8, rng.uniform(0.6, 0.9, rows), 1.0))  # fmt: skip
    X = pd.DataFrame({"adoption": adoption, "noise": rng.normal(0, 1, rows)})
    return X, ratio, np.arange(rows) // 3


def test_the_size_model_learns_who_grows_and_who_shrinks():
    X, ratio, groups = renewals()
    model = RenewalSize(**SMALL).fit(X.iloc[:1000], ratio[:1000], groups[:1000])
    out = model.predict(X.iloc[1000:])
    cls = size_class(ratio[1000:])
    # then growth and shrinkage are ranked well out of sample, and calibrated in the large
    assert roc_auc_score(cls == 2, out.p_expand) > 0.85
    assert roc_auc_score(cls == 0, out.p_contract) > 0.85
    assert out.p_expand.mean() == pytest.approx((cls == 2).mean(), abs=0.04)
    assert ((out.p_expand + out.p_contract) <= 1 + 1e-12).all()
    # the class means and quantiles travel with the model, from the training ratios
    assert model.means_["flat"] == pytest.approx(1.0)
    assert 1.1 <= model.means_["expansion"] <= 1.5 and 0.6 <= model.means_["contraction"] <= 0.9
    assert model.quantiles_["expansion"].size == 99
    assert sum(model.rows_.values()) == 1000
    # and the expected ratio follows adoption
    assert np.corrcoef(out.expected_ratio, X["adoption"].iloc[1000:])[0, 1] > 0.8


def test_a_class_with_no_renewals_is_refused_with_the_counts():
    X, ratio, groups = renewals(300)
    with pytest.raises(ModelInputError, match=r"0 contraction, .* each needs at least 2"):
        RenewalSize(**SMALL).fit(X, np.maximum(ratio, 1.0), groups)
    with pytest.raises(ModelInputError, match="positive finite"):
        RenewalSize(**SMALL).fit(X, np.where(np.arange(300) == 5, np.nan, ratio), groups)


def test_renewal_dollars_add_up():
    outlook = SizeOutlook(np.array([0.5, 0.0]), np.array([0.2, 1.0]), np.array([1.1, 0.8]))
    means = {"contraction": 0.8, "flat": 1.0, "expansion": 1.2}
    d = renewal_dollars(np.array([100.0, 50.0]), np.array([0.9, 0.5]), outlook, means)
    np.testing.assert_allclose(d.expected_renewal_arr, [100 * 0.9 * 1.1, 50 * 0.5 * 0.8])
    np.testing.assert_allclose(d.expected_churned_arr, [10, 25])
    np.testing.assert_allclose(d.p_expand, [0.45, 0.0])
    np.testing.assert_allclose(d.expected_expansion_arr, [100 * 0.45 * 0.2, 0])
    np.testing.assert_allclose(d.expected_contraction_arr, [100 * 0.18 * 0.2, 50 * 0.5 * 0.2])


def test_nrr_error_is_arr_weighted_points():
    error, table = nrr_errors(
        np.array([90.0, 10.0, 100.0]), np.array([100.0, 0.0, 90.0]),
        np.array([100.0, 10.0, 100.0]), np.array(["a", "a", "b"]),
    )  # fmt: skip
    # date a: forecast 100/110 = 90.9 %, realised 90.9 %; date b: 100 % against 90 %
    assert table["error"].tolist() == pytest.approx([0.0, 10.0])
    assert error == pytest.approx((0 * 110 + 10 * 100) / 210)


def test_the_nrr_forecast_and_its_interval_come_from_each_renewals_mixture():
    X, ratio, groups = renewals(900, seed=2)
    model = RenewalSize(**SMALL).fit(X, ratio, groups)
    rng = np.random.default_rng(5)
    due = X.iloc[:400]
    p = rng.uniform(0.6, 0.99, 400)
    arr = rng.uniform(10, 100, 400)
    d = renewal_dollars(arr, p, model.predict(due), model.means_)
    scores = pd.DataFrame({
        "arr": arr, "win_probability": p, "days_to_renewal": 30,
        "segment": np.where(np.arange(400) % 2, "a", "b"),
        "expected_renewal_arr": d.expected_renewal_arr,
        "expected_contraction_arr": d.expected_contraction_arr,
        "expected_expansion_arr": d.expected_expansion_arr,
        "p_expand": d.p_expand, "p_contract": d.p_contract,
    })  # fmt: skip
    out = renewal_forecast(scores, 90, {}, ["segment"], size=model).set_index("value")
    total = out.loc["(all)"]
    assert total["forecast_nrr"] == pytest.approx(d.expected_renewal_arr.sum() / arr.sum())
    # the draws' interval holds the expectation, and is not degenerate
    assert total["forecast_nrr_low"] < total["forecast_nrr"] < total["forecast_nrr_high"]
    assert total["forecast_grr_low"] < total["forecast_grr"] < total["forecast_grr_high"] <= 1
    assert total["forecast_grr"] <= total["forecast_nrr"] + 0.2
    # a segment's interval is wider than the book's (fewer renewals)
    width = out["forecast_nrr_high"] - out["forecast_nrr_low"]
    assert (width.loc[["a", "b"]] > width.loc["(all)"]).all()


def test_the_outlook_from_contributions_equals_the_outlook_from_the_models():
    # scoring gets P(expansion) from the expansion model's exact contributions (one pass)
    X, ratio, groups = renewals(600, seed=3)
    model = RenewalSize(**SMALL).fit(X, ratio, groups)
    up = model.expand_.calibrator_.predict(model.expand_.contributions(X).sum(axis=1).to_numpy())
    one_pass = model.outlook(up, model.contract_.predict_proba(X)[:, 1])
    two_pass = model.predict(X)
    np.testing.assert_allclose(one_pass.p_expand, two_pass.p_expand, atol=1e-9)
    np.testing.assert_allclose(one_pass.expected_ratio, two_pass.expected_ratio, atol=1e-9)
