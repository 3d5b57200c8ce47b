"""Exploration across kinds and the effects its randomised rows identify."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.interventions.experiment import (
    CONTROL,
    bias_spread,
    explore,
    ground,
    randomised_effects,
)

KINDS = ["exec_call", "training", "csm_change"]


def ids(n: int) -> list[str]:
    return [f"A{i:06d}" for i in range(n)]


def test_exploration_spends_its_budget_and_logs_the_probability_of_each_arm():
    # given 20,000 accounts, a fifth allowed nothing, the rest one to three kinds
    rng = np.random.default_rng(0)
    n = 20_000
    allowed = rng.random((n, 3)) < 0.6
    allowed[: n // 5] = False
    draw = explore(ids(n), allowed, budget=600, seed=1, salt="2026-10-01")
    played = draw.arm >= 0
    # then the expected number of plays is the budget, a third per kind
    assert abs(played.sum() - 600) < 4 * np.sqrt(600)
    assert np.allclose(np.bincount(draw.arm[played]), 200, atol=4 * np.sqrt(200))
    assert not draw.assigned[: n // 5].any()
    assert allowed[np.flatnonzero(played), draw.arm[played]].all()
    # each kind's logged propensity is its budget over the accounts allowed it
    for kind in range(3):
        rows = played & (draw.arm == kind)
        assert np.allclose(draw.propensity[rows], 200 / allowed[:, kind].sum())
    # and the control's logged propensity matches how often it is drawn
    control = draw.arm == CONTROL
    two = allowed.sum(axis=1) == 2
    assert control[two].mean() == pytest.approx(draw.propensity[control & two].mean(), abs=0.01)


def test_a_kind_few_accounts_may_get_is_played_about_as_often_as_a_common_one():
    n = 30_000
    allowed = np.ones((n, 2), dtype=bool)
    allowed[np.arange(n) % 10 != 0, 1] = False  # kind 1: a tenth of the accounts
    draw = explore(ids(n), allowed, 1_000, seed=4, salt="d")
    counts = np.bincount(draw.arm[draw.arm >= 0], minlength=2)
    assert counts[1] == pytest.approx(counts[0], rel=0.2)
    assert counts.sum() == pytest.approx(1_000, rel=0.1)


def test_a_larger_control_arm_costs_no_plays():
    allowed = np.ones((10_000, 3), dtype=bool)
    one = explore(ids(10_000), allowed, 500, seed=1, salt="d", controls_per_play=1.0)
    four = explore(ids(10_000), allowed, 500, seed=1, salt="d", controls_per_play=4.0)
    assert abs((four.arm >= 0).sum() - (one.arm >= 0).sum()) < 10
    assert (four.arm == CONTROL).sum() == pytest.approx(4 * (one.arm == CONTROL).sum(), rel=0.15)


def test_exploration_replays_for_the_same_salt_and_differs_for_another():
    allowed = np.ones((500, 3), dtype=bool)
    a = explore(ids(500), allowed, 60, seed=1, salt="2026-10-01")
    b = explore(ids(500), allowed, 60, seed=1, salt="2026-10-01")
    c = explore(ids(500), allowed, 60, seed=1, salt="2026-11-01")
    assert np.array_equal(a.arm, b.arm)
    assert not np.array_equal(a.arm, c.arm)
    # the draw of one account does not depend on the others in the batch
    alone = explore(ids(500)[:250], allowed[:250], 30, seed=1, salt="2026-10-01")
    assert np.array_equal(alone.arm[alone.assigned], a.arm[:250][alone.assigned])


def test_a_known_effect_is_recovered_from_randomised_rows_where_the_log_is_confounded():
    # given a world where CSMs pick the kind by the very trait that drives its effect
    rng = np.random.default_rng(7)
    n = 60_000
    x = rng.normal(size=n)  # e.g. how broken the relationship is
    true = np.array([0.05, 0.02, -0.03])
    effect = np.column_stack([true[0] + 0.0 * x, true[1] + 0.0 * x, true[2] + 0.10 * x])

    def outcome(arm: np.ndarray) -> np.ndarray:
        lift = np.where(arm >= 0, effect[np.arange(n), np.maximum(arm, 0)], 0.0)
        return (rng.random(n) < 0.7 + 0.1 * np.tanh(x) + lift).astype(float)

    # the CSMs' own log: csm_change goes where x is high (where it helps)
    own = np.where(x > 1.0, 2, np.where(rng.random(n) < 0.3, 0, CONTROL))
    y_own = outcome(own)
    naive = y_own[own == 2].mean() - y_own[own == CONTROL].mean()
    # the experiment: randomised arms with logged propensities
    draw = explore(ids(n), np.ones((n, 3), dtype=bool), budget=24_000, seed=3, salt="m1")
    rows = draw.assigned
    y = outcome(np.where(rows, draw.arm, CONTROL))
    table = randomised_effects(draw.arm[rows], draw.propensity[rows], y[rows], KINDS)
    # then every kind's interval covers the truth, and the sign is right where it is clear
    for j, kind in enumerate(KINDS):
        assert table.loc[kind, "lo"] <= true[j] <= table.loc[kind, "hi"], kind
    assert table.loc["exec_call", "hi"] > table.loc["exec_call", "lo"] > 0
    assert table.loc["csm_change", "hi"] < 0
    # while the CSMs' own log says the opposite for csm_change
    assert naive > 0


def test_a_covariate_narrows_the_experiment_and_leaves_it_unbiased():
    # given 200 worlds of 600 randomised rows whose outcome a pre-draw covariate predicts
    rng = np.random.default_rng(11)
    n, true = 600, np.array([0.05, -0.03])
    plain, adjusted = [], []
    for _ in range(200):
        x = rng.normal(0, 1, n)
        arm = rng.choice([CONTROL, 0, 1], size=n, p=[0.5, 0.3, 0.2])
        propensity = np.select([arm == CONTROL, arm == 0], [0.5, 0.3], 0.2)
        lift = np.where(arm >= 0, true[np.maximum(arm, 0)], 0.0)
        y = lift + 0.2 * x + rng.normal(0, 0.1, n)
        plain.append(randomised_effects(arm, propensity, y, KINDS[:2])[["ate", "se"]].to_numpy())
        adjusted.append(
            randomised_effects(arm, propensity, y, KINDS[:2], covariates=x)[
                ["ate", "se"]
            ].to_numpy()
        )
    plain, adjusted = np.array(plain), np.array(adjusted)
    # then both are centred on the truth, the adjusted one with about half the spread
    np.testing.assert_allclose(adjusted[:, :, 0].mean(axis=0), true, atol=0.002)
    np.testing.assert_allclose(plain[:, :, 0].mean(axis=0), true, atol=0.005)
    ratio = adjusted[:, :, 0].std(axis=0) / plain[:, :, 0].std(axis=0)
    assert (ratio < 0.5).all()  # residual sd 0.1 against 0.22 without the covariate
    # and its standard error says so: it matches the estimates' spread over the worlds
    np.testing.assert_allclose(
        adjusted[:, :, 1].mean(axis=0), adjusted[:, :, 0].std(axis=0), rtol=0.15
    )
    # a covariate with no spread changes nothing
    x = np.ones(n)
    same = randomised_effects(arm, propensity, y, KINDS[:2], covariates=np.column_stack([x]))
    pd.testing.assert_frame_equal(same, randomised_effects(arm, propensity, y, KINDS[:2]))


def test_randomised_effects_need_enough_rows_and_finite_inputs():
    arm = np.array([0] * 5 + [CONTROL] * 20)
    table = randomised_effects(arm, np.full(25, 0.1), np.ones(25), ["exec_call"])
    assert np.isnan(table.loc["exec_call", "ate"]) and table.loc["exec_call", "rows"] == 5
    with pytest.raises(ValueError, match="finite propensity"):
        randomised_effects(arm, np.full(25, 0.0), np.ones(25), ["exec_call"])


def test_grounding_shifts_a_kind_by_the_experiments_view_of_its_bias_and_widens_it():
    effect = np.array([[0.02, 0.01], [0.04, 0.03]])
    se = np.full((2, 2), 0.01)
    experiment = pd.DataFrame(
        {"ate": [-0.01, np.nan], "se": [0.02, np.nan]}, index=["csm_change", "training"]
    )
    on_rows = pd.Series({"csm_change": 0.03, "training": 0.02})
    out = ground(effect, se, ["csm_change", "training"], experiment, on_rows)
    assert out.effect[:, 0] == pytest.approx([-0.02, 0.0])
    assert out.se[:, 0] == pytest.approx(np.sqrt(0.01**2 + 0.02**2))
    assert out.effect[:, 1] == pytest.approx(effect[:, 1])  # no experiment: unchanged
    assert out.grounded.tolist() == [True, False]


def test_shrunk_grounding_moves_a_kind_as_far_as_the_experiment_is_sure_of_its_bias():
    # given three kinds whose observational estimates are 0 everywhere, two read out precisely
    # (biases +0.06 and -0.04) and one so noisily that its gap says nothing
    kinds = ["exec_call", "training", "discount"]
    effect, se = np.zeros((3, 3)), np.full((3, 3), 0.01)
    experiment = pd.DataFrame({"ate": [0.06, -0.04, 0.03], "se": [0.01, 0.01, 0.2]}, index=kinds)
    on_rows = pd.Series(0.0, index=kinds)
    out = ground(effect, se, kinds, experiment, on_rows, shrink=True)
    # each kind is judged by how far the others' biases spread (their root mean square less the
    # noise; the noisy kind counts little): 0.039 for exec_call, 0.059 for training, 0.05 for
    # discount; so the precise kinds move nearly all the way and the noisy one barely
    assert out.spread.to_numpy() == pytest.approx(
        np.sqrt([0.04**2 - 0.01**2, 0.06**2 - 0.01**2, (0.06**2 + 0.04**2) / 2 - 0.01**2]),
        rel=0.1,
    )
    weight = out.spread**2 / (out.spread**2 + np.array([0.01, 0.01, 0.2]) ** 2)
    assert out.shift.to_numpy() == pytest.approx(weight * np.array([0.06, -0.04, 0.03]))
    assert out.shift["exec_call"] > 0.055 and out.shift["discount"] < 0.003
    # the posterior interval: never wider than the full shift's, nor narrower than the estimate's
    full = ground(effect, se, kinds, experiment, on_rows)
    assert np.all(out.se <= full.se + 1e-12) and np.all(out.se >= se)
    assert full.shift.tolist() == pytest.approx([0.06, -0.04, 0.03])


def test_shrunk_grounding_leaves_estimates_alone_when_every_gap_is_within_noise():
    kinds = ["exec_call", "training"]
    experiment = pd.DataFrame({"ate": [0.01, -0.01], "se": [0.03, 0.03]}, index=kinds)
    out = ground(np.zeros((2, 2)), np.full((2, 2), 0.01), kinds, experiment,
                 pd.Series(0.0, index=kinds), shrink=True)  # fmt: skip
    assert (out.spread == 0.0).all()
    assert out.shift.tolist() == [0.0, 0.0] and out.grounded.all()
    assert np.allclose(out.effect, 0.0) and np.allclose(out.se, 0.01)


def test_bias_spread_is_the_gaps_root_mean_square_without_noise():
    assert bias_spread(np.array([0.02, -0.01]), np.zeros(2)) == pytest.approx(
        np.sqrt((0.02**2 + 0.01**2) / 2), rel=1e-3
    )
    assert bias_spread(np.array([]), np.array([])) == 0.0


def test_one_kinds_outlying_read_out_cannot_vouch_for_itself():
    # given two kinds whose experiments agree with the effect model within noise, and a third
    # read out 3 errors below it on 15 rows (what turned the executive call negative once)
    kinds = ["csm_change", "training", "exec_call"]
    experiment = pd.DataFrame(
        {"ate": [0.005, -0.005, -0.035], "se": [0.01, 0.01, 0.011]}, index=kinds
    )
    out = ground(np.zeros((2, 3)), np.full((2, 3), 0.01), kinds, experiment,
                 pd.Series(0.0, index=kinds), shrink=True)  # fmt: skip
    # then the others show no bias beyond noise, so the outlier is not moved on its own word
    assert out.spread["exec_call"] == 0.0 and out.shift["exec_call"] == 0.0
    # while its own gap would have moved it most of the way had it counted
    alone = bias_spread(experiment["ate"].to_numpy(), experiment["se"].to_numpy())
    assert alone**2 / (alone**2 + 0.011**2) > 0.5


def test_weighted_exploration_draws_large_accounts_less_and_logs_it():
    # given half the accounts ten times the ARR, drawn a tenth as often
    n = 20_000
    arr = np.where(np.arange(n) % 2 == 0, 10_000.0, 100_000.0)
    weight = np.minimum(1.0, 10_000.0 / arr)
    draw = explore(ids(n), np.ones((n, 2), dtype=bool), 1_000, seed=2, salt="d", weight=weight)
    played = draw.arm >= 0
    small, large = played[arr == 10_000].mean(), played[arr == 100_000].mean()
    assert abs(played.sum() - 1_000) < 4 * np.sqrt(1_000)
    assert large == pytest.approx(small / 10, rel=0.3)
    # each row's propensity is its own, so weighted means stay unbiased
    big, little = played & (arr == 100_000), played & (arr == 10_000)
    assert np.allclose(draw.propensity[big] * 10, draw.propensity[little][0])
