"""Points of health, drivers in words, bands, priority, drift and expected AUC: exact values."""

import numpy as np
import pandas as pd
import pytest

from models.config import ScoreConfig
from models.explain.drivers import component_points, describe, health_points, top_drivers
from models.scoring.health import health_band, health_score, priority_rank
from models.scoring.monitoring import expected_auc, feature_profile, population_stability


def test_points_rescale_log_odds_to_health_above_the_base():
    # given log-odds contributions of two accounts and their calibrated probabilities
    phi = pd.DataFrame({"a": [1.0, -0.5], "b": [1.0, -1.5], "_base": [2.0, 2.0]})
    # when turned into points against a base probability of 0.8
    points = health_points(phi, np.array([0.9, 0.6]), 0.8)
    # then each row adds up to 100 × (p − base), shared in proportion to the contributions
    np.testing.assert_allclose(points.to_numpy(), [[5.0, 5.0], [-5.0, -15.0]])
    assert list(points.columns) == ["a", "b"]
    parts = component_points(points, {"a": "usage", "b": "support"})
    np.testing.assert_allclose(parts["usage"], [5.0, -5.0])


def test_points_and_components_of_a_base_anywhere_and_of_many_components():
    # given the base in the middle, and four features over three components, one unmapped
    phi = pd.DataFrame({"a": [1.0, 2.0], "_base": [0.5, 0.5], "b": [1.0, -1.0],
                        "c": [2.0, 0.0], "d": [0.0, 1.0]})  # fmt: skip
    points = health_points(phi, np.array([0.9, 0.7]), 0.5)
    assert list(points.columns) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(points.sum(axis=1), [40.0, 20.0])
    np.testing.assert_allclose(points.loc[0], [10.0, 10.0, 20.0, 0.0])
    parts = component_points(points, {"a": "usage", "c": "usage", "b": "support"})
    assert list(parts.columns) == ["usage", "support", "other"]
    np.testing.assert_allclose(parts.to_numpy(), [[30.0, 10.0, 0.0], [20.0, -10.0, 10.0]])


def test_drivers_among_some_columns_equal_the_drivers_of_those_columns():
    rng = np.random.default_rng(3)
    points = pd.DataFrame(rng.normal(size=(50, 8)).round(1), columns=list("abcdefgh"))
    values = pd.DataFrame(rng.integers(0, 9, size=(50, 8)), columns=list("abcdefgh"))
    words = {c: f"{c} is {{value}}" for c in "abcdefgh"}
    among = ["g", "b", "e", "a"]  # out of order: ties go by this order, as a frame of them
    expected = top_drivers(points[among], values, words, {}, k=2)
    pd.testing.assert_frame_equal(top_drivers(points, values, words, {}, 2, None, among), expected)
    with pytest.raises(KeyError, match="zz"):
        top_drivers(points, values, words, {}, 2, None, ["a", "zz"])


def test_no_contribution_means_no_points():
    points = health_points(pd.DataFrame({"a": [0.0], "_base": [1.0]}), np.array([0.7]), 0.7)
    assert points.iloc[0, 0] == 0.0


def test_drivers_rank_risks_and_strengths_and_fill_the_description():
    points = pd.DataFrame({"x": [-3.0, 1.0], "y": [2.0, -4.0], "z": [-1.0, 0.0]}, index=[10, 11])
    values = pd.DataFrame(
        {"x": [0.42, 3.0], "y": [5, np.nan], "z": ["red", "blue"]}, index=[10, 11]
    )
    words = {"x": "usage is {value:.0%} of before", "y": "{value} tickets", "z": "rated {value}"}
    top = top_drivers(points, values, words, {"x": "usage"}, k=2)
    first = top[top["row"] == 10]
    assert first[first["kind"] == "risk"]["feature"].tolist() == ["x", "z"]
    assert first[first["kind"] == "strength"]["feature"].tolist() == ["y"]
    assert first["text"].tolist()[:1] == ["usage is 42% of before"]
    second = top[(top["row"] == 11) & (top["kind"] == "risk")]
    assert second["text"].tolist() == ["… tickets (not known)"], "a blank value reads as such"
    assert set(top["component"]) == {"usage", "other"}


def test_describe_survives_a_format_that_does_not_fit_the_value():
    assert describe("{value:.0f} days since", "n/a") == "n/a days since"
    assert describe("rated {value}", None) == "rated … (not known)"


def test_health_bands_and_priority():
    health = health_score(np.array([0.494, 0.5, 0.749, 0.75, 1.0]))
    assert health.tolist() == [49, 50, 75, 75, 100]
    cfg = ScoreConfig(bands={"red_below": 50, "yellow_below": 75})
    assert health_band(np.array([49, 50, 74, 75]), cfg).tolist() == ["red", "yellow", "yellow",
                                                                    "green"]  # fmt: skip
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        health_score(np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="must not exceed"):
        ScoreConfig(bands={"red_below": 80, "yellow_below": 75})
    # ties on ARR at risk break by ARR, then by account id: a unique rank
    rank = priority_rank(np.array([10, 10, 10, 50]), np.array([100, 200, 100, 1]),
                         np.array(["b", "c", "a", "d"]))  # fmt: skip
    assert rank.tolist() == [4, 2, 3, 1]


def test_the_value_of_acting_weighs_risk_growth_pipeline_and_time_as_set():
    from models.config import PriorityWeights
    from models.scoring.health import value_of_acting

    risk, growth = np.array([100.0, 10.0, 50.0]), np.array([0.0, 300.0, np.nan])
    pipeline, days = np.array([0.0, 0.0, 1000.0]), np.array([0.0, 180.0, np.nan])
    # the default is ARR at risk alone
    plain = value_of_acting(risk, growth, pipeline, days, PriorityWeights())
    assert plain.tolist() == [100.0, 10.0, 50.0]
    # growth and pipeline in currency, a missing value counting as none
    mixed = PriorityWeights(expansion=0.5, opportunity=0.1)
    assert value_of_acting(risk, growth, pipeline, days, mixed).tolist() == [100, 160, 150]
    # a half-life of 180 days halves a renewal 180 days out; no date: no weighting
    timed = PriorityWeights(expansion=0.5, half_life_days=180)
    assert value_of_acting(risk, growth, pipeline, days, timed).tolist() == [100, 80, 50]
    # and the rank stays unique and deterministic whatever the weights
    value = value_of_acting(risk, growth, pipeline, days, mixed)
    rank = priority_rank(value, np.array([5.0, 5.0, 5.0]), np.array(["a", "b", "c"]))
    assert rank.tolist() == [3, 1, 2]


def test_psi_is_zero_on_the_training_data_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"n": rng.normal(0, 1, 5000),
                          "c": pd.Categorical(rng.choice(["a", "b"], 5000))})  # fmt: skip
    profile = feature_profile(train)
    same = population_stability(profile, train)
    assert same.max() < 1e-9
    shifted = train.assign(n=train["n"] + 1.0, c=pd.Categorical(["a"] * 4000 + ["new"] * 1000))
    moved = population_stability(profile, shifted)
    assert moved["n"] > 0.5 and moved["c"] > 0.5


def test_expected_auc_matches_the_pairwise_definition():
    p = np.array([0.2, 0.5, 0.5, 0.9])
    num = den = 0.0
    for i in range(4):
        for j in range(4):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    assert expected_auc(p) == pytest.approx(num / den)


def test_forecast_sums_expected_losses_of_renewals_due_in_the_window():
    from models.scoring.forecast import contraction_rates, realised, renewal_forecast

    rates = contraction_rates(
        pd.Series(["a", "a", "b"]), pd.Series([100.0, 100.0, 50.0]),
        pd.Series([80.0, 120.0, 50.0]), pd.Series([1.0, 1.0, 1.0]),
    )  # fmt: skip
    assert rates == pytest.approx({"a": 0.1, "b": 0.0, "(all)": 0.2 / 3})
    scores = pd.DataFrame({
        "contract_id": ["c1", "c2", "c3"], "segment": ["a", "b", "a"], "csm_id": ["x", "x", "y"],
        "arr": [100.0, 50.0, 10.0], "win_probability": [0.9, 0.5, 0.2],
        "days_to_renewal": [30, 80, 200],
    })  # fmt: skip
    out = renewal_forecast(scores, 90, rates, ["segment", "csm_id"]).set_index(["group", "value"])
    total = out.loc[("total", "(all)")]
    assert total["renewals_due"] == 2 and total["arr_due"] == 150
    assert total["expected_churned_arr"] == pytest.approx(10 + 25)
    assert total["expected_contraction_arr"] == pytest.approx(100 * 0.9 * 0.1)
    assert out.loc[("csm_id", "x"), "expected_churned_arr"] == pytest.approx(35)
    # the interval the probabilities allow: c1 (100, p 0.9) and c2 (50, p 0.5) churn or not
    assert (total["expected_churned_arr_low"], total["expected_churned_arr_high"]) == (0, 150)
    segment_a = out.loc[("segment", "a")]  # c1 alone: 0 or 100, churning 1 time in 10
    assert (segment_a["expected_churned_arr_low"], segment_a["expected_churned_arr_high"]) == (
        0, 100,
    )  # fmt: skip
    outcomes = pd.DataFrame({"contract_id": ["c1", "c2", "c3"], "renewed": [1.0, 0.0, np.nan],
                             "renewal_arr": [100.0, 0.0, np.nan]})  # fmt: skip
    back = realised(scores, outcomes, 90)
    assert back["realised_churned_arr"] == 50 and back["forecast_churned_arr"] == 35
    assert back["realised_auc"] == 1.0
    assert back["renewals_due"] == 2 and back["non_renewals"] == 1
    # each renewal an independent draw: churned ARR is 0, 50, 100 or 150 (p 0.45, 0.45, 0.05, 0.05)
    assert back["forecast_churned_arr_low"] == 0 and back["forecast_churned_arr_high"] == 150
    # calibration in the large per run: forecast 0.7 ± 1.96·√(0.09 + 0.25)/2, realised 0.5
    assert back["forecast_renewal_rate"] == pytest.approx(0.7)
    spread = 1.96 * np.sqrt(0.09 + 0.25) / 2
    assert back["forecast_renewal_rate_low"] == pytest.approx(0.7 - spread)
    assert back["forecast_renewal_rate_high"] == pytest.approx(0.7 + spread)
    assert back["realised_renewal_rate"] == 0.5
    # ECE over equal-count bins: one renewal each, |1 − 0.9| and |0 − 0.5| averaged
    assert back["realised_ece"] == pytest.approx((0.1 + 0.5) / 2)
    assert realised(scores, outcomes, 365) is None, "c3 has no outcome yet"


def test_the_interval_in_health_points_always_holds_the_health():
    from models.scoring.health import health_interval, health_score

    # p = 0.745 reads 74 (half to even); its interval [0.745, 0.80] must not read 75–80
    p, low, high = np.array([0.745, 0.5]), np.array([0.745, 0.4951]), np.array([0.80, 0.5049])
    lo, hi = health_interval(low, high, health_score(p))
    assert health_score(p).tolist() == [74, 50]
    assert lo.tolist() == [74, 50] and hi.tolist() == [80, 50]
