"""One scoring run on frames built in code: scores, drivers, points, changes, alerts and drift."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.config import ScoreConfig
from models.scoring.accounts import (
    Changes,
    ScoredAccounts,
    Words,
    compare_runs,
    score_snapshot,
)
from models.scoring.monitoring import drift_report, feature_profile

AS_OF = date(2026, 10, 1)
CATALOG = pd.DataFrame(
    {
        "name": ["usage", "tickets"],
        "component": ["usage", "support"],
        "description": ["usage score {value}", "{value} tickets open"],
    }
)


class _Calibrator:
    """Log-odds to probability on a straight line, so every figure is exact in binary."""

    @staticmethod
    def predict(log_odds: np.ndarray) -> np.ndarray:
        return np.clip(0.5 + np.asarray(log_odds, dtype=float) / 8, 0.0, 1.0)

    def interval(self, log_odds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict(np.asarray(log_odds) - 1), self.predict(np.asarray(log_odds) + 1)


class _Ensemble:
    """log-odds = usage − tickets, base 0 (so the base probability is 0.5)."""

    def __init__(self) -> None:
        self.calibrator_ = _Calibrator()
        self.chunks: list[int] = []

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        self.chunks.append(len(X))
        return pd.DataFrame(
            {"usage": X["usage"].astype(float), "tickets": -X["tickets"].astype(float),
             "_base": 0.0},
            index=X.index,
        )  # fmt: skip


def _snapshot() -> pd.DataFrame:
    # log-odds −2, 2, 1, 2 → p 0.25, 0.75, 0.625, 0.75; all ARR 1000
    return pd.DataFrame(
        {
            "account_id": ["b", "a2", "c", "a1"],
            "contract_id": ["b-1", "a2-1", "c-1", "a1-1"],
            "segment": ["smb", "smb", "ent", "ent"],
            "arr": [1000.0, 1000.0, 1000.0, 1000.0],
            "days_to_renewal": [30.0, 400.0, np.nan, 60.0],
            "usage": [0, 2, 1, 2],
            "tickets": [2, 0, 0, 0],
        }
    )


def _score(snapshot: pd.DataFrame, cfg: ScoreConfig, ensemble: _Ensemble) -> ScoredAccounts:
    return score_snapshot(
        snapshot, ensemble, CATALOG, ["usage", "tickets"], cfg,  # type: ignore[arg-type]
        horizon_days=365, version="7", as_of=AS_OF, account_columns=("name", "segment"),
    )  # fmt: skip


def test_scores_are_exact_and_ordered_by_a_unique_priority():
    # given four accounts with hand-computable probabilities
    snapshot = _snapshot()
    untouched = snapshot.copy()
    cfg = ScoreConfig(top_drivers=1)
    # when scored
    scored = _score(snapshot, cfg, _Ensemble())
    scores = scored.scores
    # then most ARR at risk comes first; a tie on ARR at risk and ARR breaks by account id
    assert scores["account_id"].tolist() == ["b", "c", "a1", "a2"]
    assert scores["priority"].tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(scores["win_probability"], [0.25, 0.625, 0.75, 0.75])
    np.testing.assert_array_equal(scores["arr_at_risk"], [750.0, 375.0, 250.0, 250.0])
    # health 62.5 rounds half to even; 75 is the first green point (bands 50 / 75)
    assert scores["health"].tolist() == [25, 62, 75, 75]
    assert scores["band"].tolist() == ["red", "yellow", "green", "green"]
    assert scores["within_horizon"].tolist() == [True, True, True, False], "nan and ≤ 365 days"
    assert (scores["win_probability_low"] <= scores["win_probability"]).all()
    assert (scores["win_probability"] <= scores["win_probability_high"]).all()
    assert (scores["model_version"] == "7").all()
    assert (scores["as_of"] == pd.Timestamp(AS_OF)).all()
    # only the account columns present are carried, in the documented order
    assert scores.columns.tolist() == [
        "account_id", "contract_id", "segment", "arr", "days_to_renewal", "win_probability",
        "win_probability_low", "win_probability_high", "health", "band", "arr_at_risk",
        "within_horizon", "points_usage", "points_support", "top_risk_1", "top_strength_1",
        "value_of_acting", "priority", "model_version", "as_of",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(snapshot, untouched, obj="the snapshot is not mutated")


def test_points_components_and_drivers_in_plain_words():
    # given the same accounts, scored with one driver of each kind
    scored = _score(_snapshot(), ScoreConfig(top_drivers=1), _Ensemble())
    scores = scored.scores.set_index("account_id")
    # then each account's points add up to 100 × (p − 0.5), shared by contribution
    np.testing.assert_array_equal(scored.points.loc["b"], [0.0, -25.0])
    np.testing.assert_array_equal(scored.points.loc["c"], [12.5, 0.0])
    assert scored.points.dtypes.tolist() == [np.float32, np.float32]
    assert scored.points.index.name == "account_id"
    assert scores.loc["b", "points_support"] == -25.0 and scores.loc["b", "points_usage"] == 0.0
    # and the drivers name the largest points in words; a missing strength is empty
    assert scores.loc["b", "top_risk_1"] == "2 tickets open"
    assert pd.isna(scores.loc["b", "top_strength_1"])
    assert scores.loc["a2", "top_strength_1"] == "usage score 2"
    drivers = scored.drivers
    assert drivers.columns.tolist() == [
        "kind", "rank", "feature", "component", "value", "points", "text", "actionable",
        "account_id",
    ]  # fmt: skip
    mine = drivers[drivers["account_id"] == "b"]
    assert mine[["kind", "feature", "value"]].to_numpy().tolist() == [["risk", "tickets", "2"]]
    assert drivers["value"].dtype == "str", "the values as text, typed as text"


def test_chunks_of_chunk_rows_give_the_same_scores_as_one_pass():
    # given 250 accounts
    rng = np.random.default_rng(0)
    n = 250
    snapshot = pd.DataFrame(
        {
            "account_id": [f"A{i:03d}" for i in range(n)],
            "contract_id": [f"A{i:03d}-1" for i in range(n)],
            "arr": rng.integers(1, 50, n) * 1000.0,
            "days_to_renewal": rng.integers(0, 500, n).astype(float),
            "usage": rng.integers(0, 4, n),
            "tickets": rng.integers(0, 4, n),
        }
    )
    # when scored in chunks of 100 and in one chunk
    chunked, whole = _Ensemble(), _Ensemble()
    small = _score(snapshot, ScoreConfig(chunk_rows=100), chunked)
    large = _score(snapshot, ScoreConfig(chunk_rows=1000), whole)
    # then the work is split as configured and the results are the same
    assert chunked.chunks == [100, 100, 50] and whole.chunks == [250]
    pd.testing.assert_frame_equal(small.scores, large.scores)
    pd.testing.assert_frame_equal(small.drivers, large.drivers)
    pd.testing.assert_frame_equal(small.points, large.points)
    assert sorted(small.scores["priority"]) == list(range(1, n + 1))


def _runs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """This run (priority order) and the previous one (a2 is new); points = components."""
    scores = pd.DataFrame(
        {
            "account_id": ["b", "c", "a1", "a2"],
            "health": [25, 62, 75, 75],
            "band": ["red", "yellow", "green", "green"],
            "arr": [1000.0, 900.0, 800.0, 700.0],
            "priority": [1, 2, 3, 4],
            "points_usage": [0.0, 12.5, 25.0, 25.0],
            "points_support": [-25.0, 0.0, 0.0, 0.0],
        }
    )
    previous = pd.DataFrame(
        {
            "account_id": ["a1", "c", "b"],
            "health": [99, 70, 40],
            "band": ["green", "yellow", "yellow"],
            "points_usage": [49.0, 20.0, 5.0],
            "points_support": [0.0, 0.0, -15.0],
        }
    )
    points = scores.set_index("account_id")[["points_usage", "points_support"]]
    points = points.set_axis(["usage", "tickets"], axis=1)
    before = previous.set_index("account_id")[["points_usage", "points_support"]]
    before = before.set_axis(["usage", "tickets"], axis=1)
    return scores, points, previous, before


def test_changes_attribute_the_move_to_components_and_features():
    # given this run and the previous one
    scores, points, previous, before = _runs()
    # when compared
    result = compare_runs(scores, points, previous, before, date(2026, 9, 1), ScoreConfig())
    # then one row per account in this run's order, the change attributed
    assert isinstance(result, Changes)
    changes = result.changes.set_index("account_id")
    assert result.changes.columns.tolist() == [
        "account_id", "health", "band", "health_previous", "band_previous", "health_change",
        "previous_as_of", "most_fell", "most_fell_points", "most_rose", "most_rose_points",
        "points_usage_change", "points_support_change",
    ]  # fmt: skip
    assert result.changes["account_id"].tolist() == ["b", "c", "a1", "a2"]
    np.testing.assert_array_equal(changes["health_change"], [-15, -8, -24, np.nan])
    fell = changes[["most_fell", "most_fell_points"]]
    assert fell.loc["b"].tolist() == ["tickets", -10.0]
    assert fell.loc["a1"].tolist() == ["usage", -24.0]
    assert changes["most_rose"].isna().all(), "nothing rose"
    np.testing.assert_array_equal(changes["points_usage_change"], [-5.0, -7.5, -24.0, np.nan])
    np.testing.assert_array_equal(changes["points_support_change"], [-10.0, 0.0, 0.0, np.nan])
    assert pd.isna(changes.loc["a2", "health_previous"]), "a new account has no previous run"
    assert (changes["previous_as_of"] == pd.Timestamp(2026, 9, 1)).all()


def test_what_moved_most_is_said_in_words_with_its_value_now():
    """The explain page said "most fell: integration_sync_qty_90d"."""
    scores, points, previous, before = _runs()
    values = pd.DataFrame(
        {"usage": [0.0, 1.0, 2.0, 2.0], "tickets": [2.0, 0.0, 0.0, 0.0]},
        index=pd.Index(["b", "c", "a1", "a2"], name="account_id"),
    )
    words = Words.of(CATALOG, ["usage", "tickets"], ["contract"])
    result = compare_runs(
        scores, points, previous, before, date(2026, 9, 1), ScoreConfig(), values, words
    )
    changes = result.changes.set_index("account_id")
    assert changes.loc["b", "most_fell_text"] == "2 tickets open"
    assert changes.loc["a1", "most_fell_text"] == "usage score 2"
    assert changes["most_rose_text"].isna().all()


class _WithContract(_Ensemble):
    """log-odds = usage − tickets − term / 12: the contract's term weighs against every account."""

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return super().contributions(X).assign(term=-X["term"].astype(float) / 12)


def test_what_the_account_is_is_shown_apart_from_what_the_team_can_change():
    """ "a 24-month contract" and "segment: enterprise" were listed as risks and strengths: the
    contract's features are context, never a top risk or strength, and still in the drivers."""
    catalog = pd.concat(
        [CATALOG, pd.DataFrame({"name": ["term"], "component": ["contract"],
                                "description": ["a {value:.0f}-month contract"]})],
        ignore_index=True,
    )  # fmt: skip
    snapshot = _snapshot().assign(term=[24.0, 12.0, 36.0, 12.0])
    scored = score_snapshot(
        snapshot, _WithContract(), catalog, ["usage", "tickets", "term"],  # type: ignore[arg-type]
        ScoreConfig(top_drivers=2), horizon_days=365, version="7", as_of=AS_OF,
    )  # fmt: skip
    scores = scored.scores.set_index("account_id")
    # the term costs a2 a point of log-odds, its largest risk, yet no top risk names it
    risks = scores.filter(like="top_risk_")
    assert not risks.apply(lambda c: c.str.contains("month contract", na=False)).any().any()
    assert scores.loc["b", "top_risk_1"] == "2 tickets open"
    assert pd.isna(scores.loc["a2", "top_risk_1"])
    context = scored.drivers[~scored.drivers["actionable"]].set_index("account_id")
    assert context.loc["a2", "text"] == "a 12-month contract"
    assert context.loc["a2", "kind"] == "risk"
    assert set(scored.drivers.loc[scored.drivers["actionable"], "feature"]) <= {"usage", "tickets"}
    # and a model whose every feature is context keeps them all as drivers
    only = Words.of(catalog.iloc[[2]], ["term"], ["contract"])
    assert only.context == frozenset()


@pytest.mark.parametrize(
    ("alert_drop", "expected"),
    [
        # b worsened a band (and fell 15), a1 fell 24 within green, c fell 8 within yellow
        (10, [("b", "band worsened"), ("a1", "health fell ≥ 10")]),
        # a band worsening alerts whatever the drop
        (20, [("b", "band worsened"), ("a1", "health fell ≥ 20")]),
        # a drop of exactly alert_drop alerts; a new account (a2) never does
        (8, [("b", "band worsened"), ("c", "health fell ≥ 8"), ("a1", "health fell ≥ 8")]),
        (30, [("b", "band worsened")]),
    ],
)
def test_alerts_for_a_worse_band_or_a_drop_of_alert_drop(alert_drop, expected):
    # given this run and the previous one
    scores, points, previous, before = _runs()
    # when compared with an alert threshold
    cfg = ScoreConfig(alert_drop=alert_drop)
    alerts = compare_runs(scores, points, previous, before, date(2026, 9, 1), cfg).alerts
    # then the alerts are picked and ordered by priority, with this run's ARR
    assert list(zip(alerts["account_id"], alerts["reason"], strict=True)) == expected
    assert alerts["priority"].is_monotonic_increasing
    arr = scores.set_index("account_id")["arr"]
    assert alerts["arr"].tolist() == arr[alerts["account_id"]].tolist()


def test_drift_is_zero_on_training_data_and_flagged_on_a_shift():
    # given a training profile and today's accounts, all within the horizon
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"usage": rng.normal(0, 1, 2000)})
    reference = rng.uniform(0, 1, 2000)
    n = 500
    snapshot = pd.DataFrame(
        {"account_id": np.arange(n), "days_to_renewal": 30.0, "usage": train["usage"][:n] + 3}
    )
    scores = pd.DataFrame({"account_id": np.arange(n), "win_probability": reference[:n]})
    # when drift is measured
    drift = drift_report(
        snapshot, scores, ["usage"], feature_profile(train), reference, ScoreConfig(),
        horizon_days=365,
    )  # fmt: skip
    # then the shifted feature drifts most and is flagged; the score (same draw) is not
    assert drift.columns.tolist() == ["kind", "name", "psi", "flagged"]
    assert drift[["kind", "name"]].to_numpy().tolist() == [
        ["feature", "usage"], ["score", "win_probability"]
    ]  # fmt: skip
    assert drift["flagged"].tolist() == [True, False]
    # and with neither profile nor reference scores there is nothing to compare
    empty = drift_report(snapshot, scores, ["usage"], None, None, ScoreConfig(), horizon_days=365)
    assert empty.empty


def test_drift_compares_the_renewals_within_the_horizon_when_there_are_enough():
    # given 200 accounts due within the horizon like training and 200 beyond it, shifted
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"usage": rng.normal(0, 1, 2000)})
    due = train["usage"][:200].to_numpy()
    snapshot = pd.DataFrame(
        {
            "account_id": np.arange(400),
            "days_to_renewal": np.r_[np.full(200, 30.0), np.full(200, 900.0)],
            "usage": np.r_[due, due + 5],
        }
    )
    scores = pd.DataFrame({"account_id": np.arange(400), "win_probability": 0.5})
    # when drift is measured with a 365-day horizon
    drift = drift_report(
        snapshot, scores, ["usage"], feature_profile(train), None, ScoreConfig(), horizon_days=365
    )
    # then only the due accounts count: no drift
    assert not drift["flagged"].any()
