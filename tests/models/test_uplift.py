"""Effect estimation: the decision table's pairing of plays and snapshots, and the DR learner's
recovery of known effects on a confounded log where the naive comparison has the wrong sign."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from econml.dr import DRLearner
from scipy.special import expit

from models.errors import ModelInputError
from models.interventions.uplift import CONTROL, PlayEffects, decision_table


def test_decision_table_pairs_each_play_with_the_next_snapshot_and_shifts_history() -> None:
    snapshots = pd.DataFrame(
        {
            "account_id": ["a", "a", "a", "b", "b"],
            "as_of": pd.to_datetime(
                ["2024-01-01", "2024-02-01", "2024-03-01", "2024-02-01", "2024-03-01"]
            ),
            "plays_365d": [0, 1, 2, 5, 6],
        }
    )
    plays = pd.DataFrame(
        {
            "account_id": ["a", "a", "a", "b", "b"],
            "ts": pd.to_datetime(
                [
                    "2024-01-15 10:00",  # January's decision → the February snapshot
                    "2024-01-20 10:00",  # a second play that month: the first one counts
                    "2024-03-01 00:00",  # on an as-of date: the period after it (no snapshot)
                    "2023-12-31 23:59",  # before b's first decision period it has a snapshot for
                    "2024-02-29 12:00",  # February → b's March snapshot
                ],
                utc=True,
            ),
            "type": ["exec_call", "training", "training", "discount", "training"],
        }
    )
    table = decision_table(snapshots, plays, "monthly", ["plays_365d"])
    assert table["treatment"].tolist() == [CONTROL, "exec_call", CONTROL, CONTROL, "training"]
    assert table["decided_at"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-12-01", "2024-01-01", "2024-02-01", "2024-01-01", "2024-02-01",
    ]  # fmt: skip
    # history from the snapshot a period before; missing where there is none
    assert table["plays_365d"].tolist()[1:3] == [0, 1]
    assert table["plays_365d"].isna().tolist() == [True, False, False, True, False]


def _confounded_log(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """CSMs play ``rescue`` on at-risk accounts (low ``health``) and ``upsell`` only on large ones.

    True effects: ``rescue`` +0.6 and ``upsell`` −0.4 in log-odds of renewal.
    """
    rng = np.random.default_rng(seed)
    health = rng.normal(size=n)
    size = rng.normal(size=n)
    noise = rng.normal(size=n)
    p_rescue = expit(-2.2 - 1.6 * health)
    p_upsell = expit(-3.0 + 2.0 * size) * (1 - p_rescue)
    u = rng.random(n)
    treatment = np.where(
        u < p_rescue, "rescue", np.where(u < p_rescue + p_upsell, "upsell", CONTROL)
    )
    z0 = 1.2 + 1.4 * health
    shift = np.select([treatment == "rescue", treatment == "upsell"], [0.6, -0.4], 0.0)
    renewed = (rng.random(n) < expit(z0 + shift)).astype(int)
    true = {
        "rescue": float(np.mean(expit(z0 + 0.6) - expit(z0))),
        "upsell": float(np.mean(expit(z0 - 0.4) - expit(z0))),
    }
    frame = pd.DataFrame(
        {
            "health_signal": health + 0.3 * rng.normal(size=n),
            "size": size,
            "noise": noise,
            "region": pd.Categorical(rng.choice(["north", "south"], n)),
            "account_id": [f"A{i // 2:05d}" for i in range(n)],
            "segment": np.where(size > 0.5, "large", "small"),
            "treatment": treatment,
            "renewed": renewed,
            "p0": expit(z0),
        }
    )
    return frame, true


@pytest.fixture(scope="module")
def fitted() -> tuple[PlayEffects, pd.DataFrame, dict[str, float]]:
    frame, true = _confounded_log(12_000, seed=7)
    context = frame[["health_signal", "size", "noise", "region"]]
    model = PlayEffects(
        lightgbm={
            "n_estimators": 80,
            "learning_rate": 0.1,
            "num_leaves": 7,
            "min_child_samples": 40,
        },
        min_propensity=0.01,
        seed=3,
    ).fit(
        context,
        frame["treatment"].to_numpy(),
        frame["renewed"].to_numpy(),
        frame["account_id"].to_numpy(),
        frame["p0"].to_numpy(),
        frame["segment"].to_numpy(),
    )
    return model, frame, true


def test_naive_comparison_has_the_wrong_sign_the_dr_estimate_the_right_one(fitted) -> None:
    model, frame, true = fitted
    naive = (
        frame.loc[frame["treatment"] == "rescue", "renewed"].mean()
        - frame.loc[frame["treatment"] == CONTROL, "renewed"].mean()
    )
    assert true["rescue"] > 0.05 and naive < -0.05  # the trap: the treated were at risk
    for kind, effect in true.items():
        row = model.average_.loc[kind]
        assert np.sign(row["ate"]) == np.sign(effect), (kind, row["ate"], effect)
        assert row["lo"] <= effect <= row["hi"], (kind, row.to_dict(), effect)
        assert abs(row["ate"] - effect) < 0.04
        assert row["robustness"] > 0
    # the S-learner (regression adjustment on the true baseline) agrees on the signs
    assert np.sign(model.s_average_["rescue"]) == 1 and np.sign(model.s_average_["upsell"]) == -1


def test_per_account_effects_scale_with_the_slope_and_average_to_the_aipw_estimate(
    fitted,
) -> None:
    model, frame, _ = fitted
    p0 = frame["p0"].to_numpy()
    point, lo, hi = model.effects(p0, frame["segment"].to_numpy())
    assert point.shape == (len(frame), 2) and model.kinds_ == ["rescue", "upsell"]
    assert np.all(lo <= point) and np.all(point <= hi)
    np.testing.assert_allclose(point.mean(axis=0), model.average_["ate"].to_numpy(), rtol=1e-9)
    slope = p0 * (1 - p0)
    assert np.corrcoef(point[:, 0], slope)[0, 1] == pytest.approx(1.0)
    segments = set(model.by_segment_["segment"])
    assert segments == {"large", "small"}


def test_overlap_flag_marks_accounts_no_comparable_decision_covers(fitted) -> None:
    model, frame, _ = fitted
    context = frame[["health_signal", "size", "noise", "region"]]
    propensity = model.propensity(context, frame["p0"].to_numpy(), frame["segment"].to_numpy())
    np.testing.assert_allclose(propensity.sum(axis=1), 1.0, atol=1e-9)
    flagged = model.extrapolated(propensity)
    upsell = model.kinds_.index("upsell")
    small, large = frame["size"] < -1, frame["size"] > 1.5
    # upsell is only ever played on large accounts: small ones lie outside the logged overlap
    assert flagged[small.to_numpy(), upsell].mean() > 0.9
    assert flagged[large.to_numpy(), upsell].mean() < 0.3
    assert model.overlap_.loc["upsell", "share_outside_overlap"] == pytest.approx(
        flagged[:, upsell].mean()
    )


SMALL = {"n_estimators": 30, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 40}
SENSITIVITY = (
    "Invalid input: sigma and nu must be non-negative. Negative values may indicate issues "
    "with the underlying nuisance model estimations."
)  # econml's words when a few plays carry extreme inverse-propensity weights (small books)


def _fit_failing(monkeypatch, failing: set[str]) -> tuple[PlayEffects, pd.DataFrame]:
    """Fit on a small log where econml's sensitivity analysis fails for the ``failing`` kinds."""
    original = DRLearner.robustness_value

    def robustness_value(self, T, **kwargs):
        if T in failing:
            raise ValueError(SENSITIVITY)
        return original(self, T, **kwargs)

    monkeypatch.setattr(DRLearner, "robustness_value", robustness_value)
    frame, _ = _confounded_log(3_000, seed=11)
    model = PlayEffects(lightgbm=SMALL, min_propensity=0.01, seed=3)
    return model.fit(
        frame[["health_signal", "size", "noise", "region"]],
        frame["treatment"].to_numpy(),
        frame["renewed"].to_numpy(),
        frame["account_id"].to_numpy(),
        frame["p0"].to_numpy(),
        frame["segment"].to_numpy(),
    ), frame


def test_a_kind_whose_sensitivity_analysis_fails_is_left_out_and_the_rest_refitted(monkeypatch):
    # given a log on which econml's sensitivity analysis fails for upsell
    # when the model is fitted
    model, frame = _fit_failing(monkeypatch, {"upsell"})
    # then upsell is left out, saying why in plain words, and rescue is estimated without it
    assert model.kinds_ == ["rescue"]
    assert list(model.skipped_) == ["upsell"]
    assert "sensitivity analysis cannot be computed" in model.skipped_["upsell"]
    assert "too few comparable logged decisions" in model.skipped_["upsell"]
    assert list(model.average_.index) == ["rescue"] and model.average_["robustness"].notna().all()
    assert model.counts_.index.tolist() == [CONTROL, "rescue"]
    # and every output has one column per estimated kind
    context = frame[["health_signal", "size", "noise", "region"]]
    p0, segment = frame["p0"].to_numpy(), frame["segment"].to_numpy()
    point, lo, hi = model.effects(p0, segment)
    assert point.shape == lo.shape == hi.shape == (len(frame), 1)
    assert model.propensity(context, p0, segment).shape == (len(frame), 2)
    assert list(model.s_average_.index) == ["rescue"]


def test_when_no_kind_can_be_estimated_the_fit_says_why_for_each(monkeypatch):
    with pytest.raises(ModelInputError, match=r"no play's effect can be estimated") as caught:
        _fit_failing(monkeypatch, {"rescue", "upsell"})
    # one reason, said once for both
    assert str(caught.value).count("rescue, upsell: its sensitivity analysis") == 1
