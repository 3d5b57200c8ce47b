"""Metrics, lead time, the scorecard baseline and the factor audit on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.win.metrics import (
    bootstrap_intervals,
    classification_metrics,
    expected_calibration_error,
    lead_time,
    top_share,
    univariate_auc,
)
from models.win.scorecard import Scorecard, factor_audit


def test_ece_is_the_weighted_gap_between_observed_and_predicted_per_bin():
    renewed = np.array([1, 1, 0, 0, 1, 1, 1, 1])
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9])
    # two equal-count bins: observed 0.5 vs 0.5 (gap 0), observed 1.0 vs 0.9 (gap 0.1)
    assert expected_calibration_error(renewed, p, bins=2) == pytest.approx(0.05)


def test_top_k_by_arr_at_risk_ranks_by_arr_times_risk():
    arr = np.array([100.0, 1000.0, 10.0, 500.0])
    p = np.array([0.5, 0.9, 0.0, 0.8])  # at risk: 50, 100, 10, 100 → ties kept in input order
    assert list(top_share(arr, p, 50)) == [1, 3]
    metrics = classification_metrics(np.array([1, 0, 1, 1]), p, arr, [50])
    assert metrics["precision_top_50pct"] == 0.5
    assert metrics["recall_top_50pct"] == 1.0
    assert metrics["arr_recall_top_50pct"] == 1.0


def test_lead_time_buckets_and_warning_days():
    snapshots = pd.DataFrame(
        {
            "contract_id": ["a", "a", "a", "b", "b", "c"],
            "days_to_renewal": [150, 80, 20, 170, 50, 40],
            "renewed": [0, 0, 0, 0, 0, 1],
        }
    )
    # a: flagged at 80 and 20 (not 150) → 80 days of warning; b: last snapshot not flagged → 0
    p = np.array([0.9, 0.5, 0.4, 0.3, 0.8, 0.6])
    leads = lead_time(snapshots, p, [30, 60, 90, 180], at_risk_below=0.7)
    table, median = leads.table, leads.median_days
    assert median == pytest.approx(40.0)
    assert leads.warned_share == 0.5 and leads.warned_median_days == 80.0, "a warned, b not"
    # the share rests on two lost contracts: its interval says how little that is
    assert leads.lost == 2 and leads.warned_low < 0.1 and leads.warned_high > 0.9
    rows = table.set_index("days_before_renewal")
    assert rows.loc["1-30", "recall"] == 1.0
    assert rows.loc["31-60", "snapshots"] == 2
    assert rows.loc["31-60", "precision"] == 0.0  # only the renewed contract c is flagged there
    assert rows.loc["31-60", "recall"] == 0.0
    assert rows.loc["91-180", "recall"] == 0.5


def test_lead_time_at_the_list_a_team_works():
    """At a fixed p < 0.7 the book rarely crossed, the model page said "median 0 days of
    warning": at risk is now the riskiest k % of the book on each date."""
    # two dates of four accounts; the lost contract x is the lowest on both, at p 0.8 and 0.75
    snapshots = pd.DataFrame(
        {
            "as_of": ["d1"] * 4 + ["d2"] * 4,
            "contract_id": ["x", "y", "z", "w"] * 2,
            "days_to_renewal": [90, 300, 200, 250, 60, 270, 170, 220],
            "renewed": [0, 1, 1, 1, 0, 1, 1, 1],
        }
    )
    p = np.array([0.8, 0.95, 0.9, 0.97, 0.75, 0.96, 0.93, 0.99])
    below = lead_time(snapshots, p, [90, 365], at_risk_below=0.7).median_days
    assert below == 0.0, "never under 0.7: no warning"
    table, listed, *_ = lead_time(snapshots, p, [90, 365], at_risk_below=0.7, top_percent=25)
    # (a LeadTime unpacks like a tuple: the table and the median first)
    assert listed == 90.0, "the lowest quarter on both dates: on the list from 90 days out"
    assert table.set_index("days_before_renewal").loc["1-90", "flagged"] == 2
    # a share rounds up to whole accounts: 10 % of four is one account a date
    one = lead_time(snapshots, p, [90, 365], at_risk_below=0.7, top_percent=10).median_days
    assert one == 90.0


def test_univariate_auc_of_a_perfect_and_a_useless_factor():
    renewed = np.array([0, 0, 1, 1])
    assert univariate_auc(pd.Series([1.0, 2.0, 3.0, 4.0]), renewed) == 1.0
    assert univariate_auc(pd.Series([4.0, 3.0, 2.0, 1.0]), renewed) == 0.0
    assert univariate_auc(pd.Series([1.0, 1.0, 1.0, 1.0]), renewed) == 0.5


def test_scorecard_orients_features_and_scores_by_percentile():
    X = pd.DataFrame(
        {"logins": [0.0, 10.0, 20.0, 30.0], "tickets": [9.0, 6.0, 3.0, 0.0], "nps": [np.nan] * 4}
    )
    renewed = np.array([0, 0, 1, 1])
    components = {"logins": "usage", "tickets": "support", "nps": "surveys"}
    card = Scorecard({"usage": 0.5, "support": 0.5}, components).fit(X, renewed)
    scores = card.component_scores(X)
    # more logins and fewer tickets go with renewal: both rank the last account highest
    assert list(scores["usage"]) == [12.5, 37.5, 62.5, 87.5]
    assert list(scores["support"]) == [12.5, 37.5, 62.5, 87.5]
    assert list(card.health(X)) == [12.5, 37.5, 62.5, 87.5]
    with pytest.raises(ValueError, match="sentiment"):
        Scorecard({"sentiment": 1.0}, components).fit(X, renewed)


def test_factor_audit_flags_metrics_that_do_not_predict_renewal():
    rng = np.random.default_rng(1)
    renewed = (rng.random(2000) < 0.8).astype(int)
    X = pd.DataFrame(
        {"active_users": renewed * 2 + rng.normal(0, 1, 2000), "page_views": rng.normal(0, 1, 2000)}
    )
    audit = factor_audit(X, renewed, {"active_users": "usage", "page_views": "usage"})
    rows = audit.set_index("name")
    assert bool(rows.loc["active_users", "predictive"])
    assert not bool(rows.loc["page_views", "predictive"])
    assert rows.loc["active_users", "auc"] > 0.8
    assert rows.loc["active_users", "spearman"] > 0.5


def test_bootstrap_intervals_cover_the_value_and_say_a_real_gain_is_one():
    rng = np.random.default_rng(7)
    accounts = np.repeat(np.arange(400), 3)  # three snapshots each: they resample together
    renewed = (rng.random(accounts.size) < 0.7).astype(int)
    good = np.clip(0.5 + 0.35 * (renewed - 0.5) + rng.normal(0, 0.15, renewed.size), 0.01, 0.99)
    noise = rng.random(renewed.size)
    table = bootstrap_intervals(renewed, {"model": good, "coin": noise}, accounts, replicates=60)
    auc = table.set_index(["score", "metric"])
    model = auc.loc[("model", "roc_auc")]
    assert model["low"] <= model["value"] <= model["high"]
    assert model["high"] - model["low"] < 0.1
    gain = auc.loc[("gain_vs_coin", "roc_auc")]
    assert gain["value"] == pytest.approx(model["value"] - auc.loc[("coin", "roc_auc"), "value"])
    assert gain["low"] > 0  # a real gain: its interval excludes zero
    coin = auc.loc[("coin", "roc_auc")]
    assert coin["low"] < 0.5 < coin["high"]  # no skill: the interval holds 0.5
    assert table["non_renewals"].iloc[0] == int((1 - renewed).sum())
    assert table["groups"].iloc[0] == 400
    # Brier: lower is better, so the gain is the coin's minus the model's (positive here)
    assert auc.loc[("gain_vs_coin", "brier"), "value"] > 0


def test_bootstrap_is_deterministic_under_its_seed():
    rng = np.random.default_rng(1)
    renewed = (rng.random(300) < 0.6).astype(int)
    p = rng.random(300)
    groups = np.arange(300) // 2
    first = bootstrap_intervals(renewed, {"m": p}, groups, replicates=20, seed=3)
    again = bootstrap_intervals(renewed, {"m": p}, groups, replicates=20, seed=3)
    pd.testing.assert_frame_equal(first, again)


def test_calibration_by_period_flags_the_dates_whose_rate_drifted():
    from models.win.metrics import calibration_by_period

    # given two dates of 400 snapshots predicted at 0.9: one renews at 0.9, the other at 0.8
    p = np.full(800, 0.9)
    renewed = np.r_[np.arange(400) % 10 != 0, np.arange(400) % 5 != 0].astype(int)
    periods = np.repeat(["2026-05-01", "2026-06-01"], 400)
    out = calibration_by_period(renewed, p, periods).set_index("period")
    # then the range the predictions allow is 0.9 ± 1.96·√(0.09/400)
    spread = 1.96 * np.sqrt(400 * 0.09) / 400
    assert out.loc["2026-05-01", "expected_low"] == pytest.approx(0.9 - spread)
    assert out.loc["2026-05-01", "realised"] == pytest.approx(0.9)
    assert bool(out.loc["2026-05-01", "within"]) is True
    # and the drifted date falls outside it, with its counts
    assert out.loc["2026-06-01", "realised"] == pytest.approx(0.8)
    assert bool(out.loc["2026-06-01", "within"]) is False
    assert out.loc["2026-06-01", "non_renewals"] == 80 and out.loc["2026-06-01", "snapshots"] == 400
    assert out.loc["2026-06-01", "ece"] == pytest.approx(0.1)
    # no rows, no periods, same columns
    assert (
        calibration_by_period(renewed[:0], p[:0], []).columns.tolist()
        == out.reset_index().columns.tolist()
    )
