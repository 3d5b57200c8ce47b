"""The randomised holdout: exact propensities, stable draws, fallbacks, and its evaluation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from models.interventions.policy import (
    action_probabilities,
    assign_holdout,
    holdout_uplift,
    qini_curve,
    stable_uniform,
    uplift_at_k,
)

EPS, SHARE = 0.2, 0.5
IDS = ["a0", "a1", "a2", "a3", "a4"]
RECOMMENDED = np.array([2, 0, 0, 3, 3])
ALLOWED = np.array(
    [
        [True, True, True, False],  # two non-BAU plans, recommends plan 2
        [True, True, True, True],  # recommends BAU
        [True, False, False, False],  # nothing but BAU allowed
        [True, True, True, True],  # ineligible
        [True, True, True, True],  # three non-BAU plans, recommends plan 3
    ]
)
ELIGIBLE = np.array([True, True, True, False, True])
# π(a) = 0.8·1[a = rec] + 0.2·(0.5·1[a = BAU] + 0.5·1[a allowed non-BAU] / m), by hand
EXPECTED_PROBS = np.array(
    [
        [0.1, 0.05, 0.85, 0.0],
        [0.9, 1 / 30, 1 / 30, 1 / 30],
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.1, 1 / 30, 1 / 30, 0.8 + 1 / 30],
    ]
)


def _assign(salt: str = "2025-01-06", ids=IDS, **overrides):
    kwargs = {"epsilon": EPS, "random_share": SHARE, "seed": 7, "salt": salt} | overrides
    return assign_holdout(ids, RECOMMENDED, ALLOWED, ELIGIBLE, **kwargs)


def test_stable_uniform_is_the_documented_hash_of_seed_salt_and_key():
    # given the documented recipe, computed here on its own
    digest = hashlib.blake2b(b"7|2025-01-06|acc-1", digest_size=8).digest()
    expected = (int.from_bytes(digest, "big") >> 11) / 2**53
    # when / then
    u = stable_uniform(["acc-0", "acc-1"], seed=7, salt="2025-01-06")
    assert u[1] == expected
    assert u[1] == stable_uniform(["acc-1"], seed=7, salt="2025-01-06")[0], "depends on the batch"
    assert stable_uniform(["acc-1"], seed=7, salt="2025-01-07")[0] != expected
    assert stable_uniform(["acc-1"], seed=8, salt="2025-01-06")[0] != expected


def test_stable_uniform_spreads_evenly_over_the_unit_interval():
    u = stable_uniform([f"acc-{i}" for i in range(20_000)], seed=0, salt="2025-01-06")
    assert u.min() >= 0 and u.max() < 1
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.abs(counts / 2_000 - 1).max() < 0.07, counts


def test_a_salt_with_the_separator_is_refused():
    with pytest.raises(ValueError, match="salt must not contain"):
        stable_uniform(["acc-1"], seed=0, salt="2025|01")


def test_action_probabilities_match_the_hand_computed_table_and_sum_to_one():
    probs = action_probabilities(RECOMMENDED, ALLOWED, ELIGIBLE, EPS, SHARE)
    np.testing.assert_allclose(probs, EXPECTED_PROBS, atol=1e-15)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-15)
    assert (probs[~ALLOWED] == 0).all(), "a plan that is not allowed is never run"


def test_each_row_logs_the_probability_of_what_it_ran_and_of_its_recommendation():
    # given every account held out and randomised, then none held out
    for epsilon, share in [(EPS, SHARE), (1.0, 1.0), (1.0, 0.0), (0.0, SHARE)]:
        # when
        a = _assign(epsilon=epsilon, random_share=share)
        probs = action_probabilities(RECOMMENDED, ALLOWED, ELIGIBLE, epsilon, share)
        # then
        rows = np.arange(len(IDS))
        np.testing.assert_array_equal(a.propensity, probs[rows, a.assigned])
        np.testing.assert_array_equal(a.p_recommended, probs[rows, RECOMMENDED])
        assert ALLOWED[rows, a.assigned].all()
        assert (a.propensity > 0).all()


def test_arms_decide_the_plan_run():
    a = _assign(epsilon=1.0, random_share=1.0)
    # every eligible account drew the random arm: a non-BAU plan where one is allowed
    assert list(a.arm) == ["holdout_random"] * 3 + ["ineligible", "holdout_random"]
    assert a.assigned[0] in (1, 2) and a.propensity[0] == pytest.approx(0.5)
    assert a.assigned[4] in (1, 2, 3) and a.propensity[4] == pytest.approx(1 / 3)
    assert a.holdout_propensity[4] == pytest.approx(1 / 3)
    # plan arm runs the recommendation; the BAU holdout runs BAU
    a = _assign(epsilon=0.0)
    assert list(a.arm) == ["plan", "plan", "plan", "ineligible", "plan"]
    np.testing.assert_array_equal(a.assigned, [2, 0, 0, 0, 3])
    np.testing.assert_allclose(a.propensity, [1, 1, 1, 1, 1])
    a = _assign(epsilon=1.0, random_share=0.0)
    np.testing.assert_array_equal(a.assigned, [0, 0, 0, 0, 0])
    np.testing.assert_allclose(a.propensity, [1, 1, 1, 1, 1])
    np.testing.assert_allclose(a.holdout_propensity, [1, 1, 1, 1, 1])


def test_no_allowed_plan_falls_back_to_bau_with_an_exact_propensity():
    a = _assign(epsilon=1.0, random_share=1.0)
    # account a2 drew the random arm but only BAU is allowed: it runs BAU, for sure
    assert a.arm[2] == "holdout_random"
    assert a.assigned[2] == 0
    assert a.propensity[2] == 1.0 and a.holdout_propensity[2] == 1.0


def test_ineligible_accounts_run_bau_with_propensity_one():
    a = _assign()
    assert (a.arm[3], a.assigned[3], a.propensity[3]) == ("ineligible", 0, 1.0)
    assert a.p_recommended[3] == 0.0, "its recommendation (plan 3) is never run"


def test_assignment_frequencies_over_many_dates_match_the_propensities():
    # given the same accounts on 4000 as-of dates
    salts = [f"day-{d}" for d in range(4000)]
    counts = np.zeros(EXPECTED_PROBS.shape)
    arms = {"plan": 0, "holdout_bau": 0, "holdout_random": 0}
    eligible_rows = np.flatnonzero(ELIGIBLE)
    # when
    for salt in salts:
        a = _assign(salt=salt)
        counts[np.arange(len(IDS)), a.assigned] += 1
        for name in a.arm[eligible_rows]:
            arms[name] += 1
    # then: each account runs each plan about as often as its propensity says (sd ≤ 0.008)
    np.testing.assert_allclose(counts / len(salts), EXPECTED_PROBS, atol=0.025)
    shares = {name: count / (len(salts) * eligible_rows.size) for name, count in arms.items()}
    assert shares == pytest.approx(
        {"plan": 0.8, "holdout_bau": 0.1, "holdout_random": 0.1}, abs=0.01
    )


def test_assignment_is_idempotent_and_follows_the_account_not_the_row():
    ids = [f"acc-{i}" for i in range(1000)]
    rng = np.random.default_rng(3)
    allowed = np.column_stack([np.ones(1000, bool), rng.random((1000, 3)) < 0.7])
    recommended = np.where(allowed[:, 1], 1, 0)
    eligible = np.ones(1000, bool)

    def run(order, salt):
        return assign_holdout(
            [ids[i] for i in order], recommended[order], allowed[order], eligible[order],
            epsilon=0.3, random_share=0.5, seed=11, salt=salt,
        )  # fmt: skip

    # when the same date is re-run, and run again with the accounts in another order
    first, again = run(np.arange(1000), "2025-01-06"), run(np.arange(1000), "2025-01-06")
    order = rng.permutation(1000)
    shuffled = run(order, "2025-01-06")
    other_day = run(np.arange(1000), "2025-01-13")
    # then
    for field in ("arm", "assigned", "propensity", "p_recommended", "holdout_propensity"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
        np.testing.assert_array_equal(getattr(first, field)[order], getattr(shuffled, field))
    assert (first.arm != other_day.arm).mean() > 0.3, "another date draws afresh"


def test_a_larger_epsilon_only_adds_accounts_to_the_holdout():
    small, large = _assign(epsilon=0.1), _assign(epsilon=0.6)
    held_small = small.arm != "plan"
    assert (large.arm[held_small] != "plan").all()


def test_inputs_are_not_mutated():
    recommended, allowed, eligible = RECOMMENDED.copy(), ALLOWED.copy(), ELIGIBLE.copy()
    _assign(epsilon=1.0, random_share=1.0)
    np.testing.assert_array_equal(recommended, RECOMMENDED)
    np.testing.assert_array_equal(allowed, ALLOWED)
    np.testing.assert_array_equal(eligible, ELIGIBLE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epsilon": 1.5}, "epsilon must be in"),
        ({"random_share": -0.1}, "random_share must be in"),
        ({"ids": ["a0", "a0", "a2", "a3", "a4"]}, "account ids must be unique"),
        ({"ids": IDS[:4]}, "4 account ids for 5"),
        ({"salt": "2025|01"}, "salt must not contain"),
    ],
)
def test_bad_settings_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        _assign(**change)


def test_a_recommendation_that_is_not_allowed_is_refused():
    allowed = ALLOWED.copy()
    allowed[0, 2] = False
    with pytest.raises(ValueError, match=r"recommended plan is not allowed .* row 0"):
        assign_holdout(IDS, RECOMMENDED, allowed, ELIGIBLE, EPS, SHARE, 7, "d")
    allowed = ALLOWED.copy()
    allowed[1, 0] = False
    with pytest.raises(ValueError, match=r"BAU \(plan 0\) is not allowed .* row 1"):
        assign_holdout(IDS, RECOMMENDED, allowed, ELIGIBLE, EPS, SHARE, 7, "d")
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        assign_holdout(IDS, np.array([2, 0, 0, 3, 4]), ALLOWED, ELIGIBLE, EPS, SHARE, 7, "d")
    with pytest.raises(ValueError, match="shapes must be"):
        assign_holdout(IDS, RECOMMENDED, ALLOWED[:, 0], ELIGIBLE, EPS, SHARE, 7, "d")


def test_uplift_at_k_and_qini_on_a_hand_computed_case():
    # given four treated and four control accounts with the same scores
    score = np.array([4, 3, 2, 1, 4, 3, 2, 1.0])
    outcome = np.array([1, 1, 0, 0, 0, 1, 0, 1])
    treated = np.array([True] * 4 + [False] * 4)
    # then: top half of each group renews at 1.0 vs 0.5; top quarter at 1 vs 0
    assert uplift_at_k(outcome, score, treated, 0.5) == 0.5
    assert uplift_at_k(outcome, score, treated, 0.25) == 1.0
    # tied pairs are one step: after 2, 4, 6 rows the treated lead by one renewal, then by none
    x, gain = qini_curve(outcome, score, treated)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(gain, [0, 1 / 8, 1 / 8, 1 / 8, 0])
    reordered = np.array([4, 1, 2, 3, 0, 5, 6, 7])
    np.testing.assert_allclose(
        qini_curve(outcome[reordered], score[reordered], treated[reordered])[1], gain
    )


def test_holdout_uplift_on_a_hand_computed_case():
    # given 4 plan rows, 4 BAU holdout rows and 2 random holdout rows (plan 1 recommended)
    arm = np.array(["plan"] * 4 + ["holdout_bau"] * 4 + ["holdout_random"] * 2 + ["ineligible"])
    recommended = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
    assigned = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 2, 0])
    mu = np.array([0.25] * 4 + [0.5] * 4 + [0.25, 0.25, 1.0])
    outcome = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1])
    score = np.arange(11, 0, -1.0)
    # when
    out = holdout_uplift(arm, recommended, assigned, mu, outcome, score, ks=(0.5,))
    # then: 0.75 − 0.5, se = √(0.25/4 + (1/3)/4)
    assert out["uplift"] == pytest.approx(0.25)
    assert out["uplift_se"] == pytest.approx(np.sqrt(0.25 / 4 + 1 / 12))
    assert out["uplift_ci_low"] == pytest.approx(0.25 - 1.959964 * np.sqrt(0.25 / 4 + 1 / 12))
    assert out["uplift_at_50pct"] == pytest.approx(1.0 - 0.5)
    assert {k: out[f"n_{k}"] for k in ("plan", "holdout_bau", "holdout_random", "ineligible")} == {
        "plan": 4, "holdout_bau": 4, "holdout_random": 2, "ineligible": 1
    }  # fmt: skip
    # holdout rows that ran their recommendation: 2 BAU (w = 2; y = 0, 1), 1 random (w = 4; y = 1)
    assert out["n_ips_matched"] == 3
    assert out["ips_value"] == pytest.approx(6 / 6)
    assert out["ips_se"] == pytest.approx(np.sqrt(14 / 5) / np.sqrt(6))
    assert out["snips_value"] == pytest.approx(6 / 8)
    assert out["snips_se"] == pytest.approx(np.sqrt(4 * 0.75**2 + 4 * 0.25**2 + 16 * 0.25**2) / 8)


def _simulated_experiment(seed: int = 0, n: int = 40_000):
    """Accounts whose effect of the recommended plan, τ = 0.4·q³, rises with the score ≈ q."""
    rng = np.random.default_rng(seed)
    ids = [f"acc-{i:05d}" for i in range(n)]
    allowed = np.column_stack([np.ones(n, bool), rng.random((n, 3)) < 0.6])
    eligible = rng.random(n) < 0.9
    q = rng.random(n)
    best = 1 + np.argmax(allowed[:, 1:] * rng.random((n, 3)), axis=1)
    recommended = np.where(allowed[:, 1:].any(axis=1) & (q > 0.1), best, 0)
    tau = np.where(recommended > 0, 0.4 * q**3, 0.0)
    base = 0.45 + 0.3 * rng.random(n)
    a = assign_holdout(ids, recommended, allowed, eligible, 0.3, 0.5, seed=7, salt="2025-01-06")
    # any other non-BAU plan helps a little; BAU not at all
    effect = np.where(a.assigned == recommended, tau, np.where(a.assigned > 0, 0.02, 0.0))
    outcome = (rng.random(n) < base + effect).astype(int)
    score = q + rng.normal(0, 0.05, n)
    truth = {"tau_bar": tau[eligible].mean(), "value": (base + tau)[eligible].mean()}
    return a, recommended, outcome, score, rng.lognormal(10, 1, n), truth


def test_the_evaluation_recovers_a_known_uplift_and_policy_value():
    # given a simulated experiment with a known mean effect of following the recommendation
    a, recommended, outcome, score, arr, truth = _simulated_experiment()
    # when
    out = holdout_uplift(a.arm, recommended, a.assigned, a.holdout_propensity, outcome, score, arr)
    # then
    assert out["uplift_ci_low"] <= truth["tau_bar"] <= out["uplift_ci_high"], out
    assert (
        out["uplift_arr_weighted_ci_low"] <= truth["tau_bar"] <= out["uplift_arr_weighted_ci_high"]
    )
    at_k = [out[f"uplift_at_{k}pct"] for k in (10, 20, 30, 50)]
    assert at_k == sorted(at_k, reverse=True), f"uplift@k should fall with k: {at_k}"
    assert at_k[-1] > out["uplift"], "the top half gains more than everyone"
    assert out["qini_vs_random"] > 0 and out["qini_coefficient"] > 0
    assert out["qini_auc"] == pytest.approx(out["qini_random_auc"] + out["qini_vs_random"])
    for name in ("ips", "snips"):
        gap = abs(out[f"{name}_value"] - truth["value"])
        assert gap < 2 * out[f"{name}_se"], f"{name}: {out[f'{name}_value']} vs {truth['value']}"
    assert out["renewal_rate_plan"] == pytest.approx(truth["value"], abs=0.01)


def test_a_score_that_ranks_backwards_has_a_negative_qini():
    a, recommended, outcome, score, _, _ = _simulated_experiment(seed=1, n=20_000)
    out = holdout_uplift(a.arm, recommended, a.assigned, a.holdout_propensity, outcome, -score)
    assert out["qini_vs_random"] < 0 and out["uplift_at_10pct"] < out["uplift"]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("arm", "control", "unknown arms"),
        ("outcome", 2, "outcome must be 0/1"),
        ("score", np.nan, "score has missing"),
        ("mu", 0.0, "holdout_propensity must be in"),
    ],
)
def test_bad_evaluation_inputs_are_refused(column, value, message):
    arm = np.array(["plan"] * 3 + ["holdout_bau"] * 3, dtype=object)
    columns = {"arm": arm, "outcome": np.array([1, 0, 1, 0, 1, 0]), "score": np.arange(6.0)}
    columns["mu"] = np.ones(6)
    columns[column] = columns[column].astype(object if column == "arm" else float)
    columns[column][-1] = value
    zeros = np.zeros(6, int)
    with pytest.raises(ValueError, match=message):
        holdout_uplift(
            columns["arm"], zeros, zeros, columns["mu"], columns["outcome"], columns["score"]
        )


def test_an_arm_too_small_to_compare_is_refused():
    arm = np.array(["plan"] * 3 + ["holdout_bau"], dtype=object)
    zeros = np.zeros(4, int)
    with pytest.raises(ValueError, match="arm 'holdout_bau' has 1 rows"):
        holdout_uplift(arm, zeros, zeros, np.ones(4), np.array([1, 0, 1, 0]), np.arange(4.0))
    with pytest.raises(ValueError, match=r"every k must be in \(0, 1\]"):
        holdout_uplift(
            np.array(["plan"] * 2 + ["holdout_bau"] * 2, dtype=object), zeros, zeros,
            np.ones(4), np.array([1, 0, 1, 0]), np.arange(4.0), ks=(0.0,),
        )  # fmt: skip
