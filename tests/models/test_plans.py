"""Plan search: the plan space, log-odds combination, eligibility, best plan and runners-up,
and the genetic search against exact enumeration."""

import itertools
from dataclasses import replace

import numpy as np
import pytest

from models.interventions.plans import (
    Option,
    candidates,
    count_plans,
    eligibility,
    enumerate_plans,
    make_options,
    plan_keep,
    plan_labels,
    plan_lift,
    search_plans,
    why_no_play,
)


def _catalog(kinds="abc", offsets=(0, 30), **spec):
    base = {"cost": 100.0, "csm_hours": 1.0, "exec_hours": 0.0, "min_days": 0, "max_days": 365}
    return make_options({kind: {**base, **spec} for kind in kinds}, offsets)


def test_plan_space_of_three_kinds_at_two_timings_with_one_exclusion():
    # given kinds a, b, c at offsets 0 and 30 (options a, a+30, b, b+30, c, c+30 = 0..5)
    options = _catalog()
    assert [o.label for o in options] == ["a", "a +30d", "b", "b +30d", "c", "c +30d"]
    # when plans of up to two plays are enumerated with a and c never together
    plans = enumerate_plans(options, max_plays=2, exclusions=[("a", "c")])
    # then: the empty plan, 6 singles, and 2 × 2 timings for each of the pairs ab and bc
    assert plans.shape == (1 + 6 + 8, 6)
    assert count_plans(options, 2, [("a", "c")]) == 15
    rows = [tuple(np.flatnonzero(row)) for row in plans]
    assert rows[:7] == [(), (0,), (1,), (2,), (3,), (4,), (5,)]
    assert rows[7:] == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 4), (2, 5), (3, 4), (3, 5)]
    kind = np.array([0, 0, 1, 1, 2, 2])
    for row in plans:
        chosen = kind[row]
        assert len(set(chosen)) == len(chosen), "one timing per kind"
        assert not {0, 2} <= set(chosen), "a and c are excluded"
    # and a third play adds nothing (abc holds the excluded pair); without it, 2³ more plans
    assert len(enumerate_plans(options, 3, [("a", "c")])) == 15
    assert len(enumerate_plans(options, 3)) == 1 + 6 + 3 * 4 + 8
    assert count_plans(options, 3, limit=10) > 10


def test_plan_space_rejects_unknown_kinds_and_bad_options():
    options = _catalog()
    with pytest.raises(ValueError, match="'z'"):
        enumerate_plans(options, 2, exclusions=[("a", "z")])
    with pytest.raises(ValueError, match="max_days"):
        Option("call", 0, 1.0, 1.0, 0.0, min_days=90, max_days=30)
    with pytest.raises(ValueError, match="cost"):
        Option("call", 0, -1.0, 1.0, 0.0, min_days=0, max_days=30)


def test_effects_combine_in_log_odds():
    # given two accounts and two options
    p0 = np.array([0.5, 0.2])
    lift = np.array([[0.1, 0.2], [0.05, -0.1]])
    plans = np.array([[False, False], [True, False], [False, True], [True, True]])
    # when the lift of each plan is computed
    out = plan_lift(p0, lift, plans)
    # then singles give back their lift, the empty plan exactly 0, and the pair multiplies odds:
    # 1 × 1.5 × 7/3 = 3.5 → 7/9; 0.25 × 4/3 × 4/9 = 4/27 → 4/31
    assert (out[:, 0] == 0.0).all()
    np.testing.assert_allclose(out[:, 1:3], lift, atol=1e-12)
    np.testing.assert_allclose(out[:, 3], [7 / 9 - 0.5, 4 / 31 - 0.2], atol=1e-12)


def test_eligibility_by_lead_time_window_and_arr():
    options = make_options(
        {"call": {"cost": 1, "csm_hours": 0, "exec_hours": 0, "min_days": 10, "max_days": 60,
                  "min_arr": 5000}},
        [0, 30],
    )  # fmt: skip
    arr = np.array([10_000, 10_000, 10_000, 1_000])
    days = np.array([35, 65, 95, 50])
    # start = days − offset must lie in [10, 60]: 35 → now only; 65 → +30 only; 95 → neither;
    # the last account is too small
    expected = [[True, False], [False, True], [False, False], [False, False]]
    assert eligibility(options, arr, days).tolist() == expected


def _hand_built():
    """Four accounts, options call, call +60d, review, review +60d (review needs ARR ≥ 50k and
    30–365 days of lead time; a call 0–90 days)."""
    options = make_options(
        {
            "call": {"cost": 100, "csm_hours": 1, "exec_hours": 0, "min_days": 0, "max_days": 90},
            "review": {"cost": 1000, "csm_hours": 4, "exec_hours": 2, "min_days": 30,
                       "max_days": 365, "min_arr": 50_000},
        },
        [0, 60],
    )  # fmt: skip
    p0 = np.full(4, 0.5)
    arr = np.array([100_000.0, 20_000.0, 100_000.0, 100_000.0])
    days = np.array([100, 100, 20, 100])
    lift = np.array(
        [
            [0.30, 0.05, 0.10, 0.08],  # A: a call now would be best but starts too early
            [0.30, 0.05, 0.30, 0.30],  # B: too small for a review, a later call only
            [0.0005, 0.3, 0.3, 0.3],  # C: 20 days out, only a call now, worth less than it costs
            [0.0, 0.0009, 0.005, -0.01],  # D: nothing pays
        ]
    )
    return options, p0, lift, arr, days


def test_search_finds_the_best_allowed_plan_and_frontier_runners_up():
    # given the hand-built accounts (options 0 call, 1 call +60d, 2 review, 3 review +60d)
    options, p0, lift, arr, days = _hand_built()
    extrapolated = np.zeros_like(lift, dtype=bool)
    extrapolated[0, 2] = True
    # when the plan space is searched exactly
    search = search_plans(
        p0, lift, lift - 0.02, lift + 0.02, arr, days, options, max_plays=2,
        extrapolated=extrapolated,
    )  # fmt: skip
    labels = plan_labels(search.plans, options)
    best = [labels[b] for b in search.best]
    # then A takes a later call with a review (odds 11/9 × 3/2 → 11/17), B the later call,
    # C and D business as usual
    assert search.exact
    assert best == ["call +60d + review", "call +60d", "business as usual", "business as usual"]
    np.testing.assert_allclose(search.net[:2], [1e5 * (11 / 17 - 0.5) - 1100, 900.0], rtol=1e-9)
    assert search.net[2:].tolist() == [0.0, 0.0]
    assert search.cost.tolist() == [1100.0, 100.0, 0.0, 0.0]
    assert search.csm_hours.tolist() == [5.0, 1.0, 0.0, 0.0]
    assert search.extrapolated.tolist() == [True, False, False, False]
    # the interval is the plan's lift at the low and high option lifts
    lo_lift = plan_lift(p0, lift - 0.02, search.plans)[np.arange(4), search.best]
    np.testing.assert_allclose(search.lift_lo, lo_lift, atol=1e-12)
    assert (search.saved_lo <= search.saved).all() and (search.saved <= search.saved_hi).all()
    # A's runners-up: the review alone (net 9000), then the later call alone (net 4900);
    # review +60d is dominated by review (same cost, saves less)
    runners = [[labels[r] if r >= 0 else None for r in row] for row in search.runners_up]
    assert runners[0] == ["review", "call +60d"]
    assert runners[1] == [None, None], "B can use nothing else"
    assert runners[2] == ["call", None], "C's call is on its frontier, though it loses money"
    np.testing.assert_allclose(search.runners_up_saved[0], [10_000.0, 5_000.0], rtol=1e-9)


def test_runners_up_are_not_dominated_by_any_allowed_plan():
    options, p0, lift, arr, days = _hand_built()
    search = search_plans(p0, lift, lift, lift, arr, days, options, max_plays=2)
    saved = arr[:, None] * plan_lift(p0, lift, search.plans)
    allowed = ~(~eligibility(options, arr, days)[:, None, :] & search.plans[None]).any(axis=2)
    cost = search.plan_cost
    for i, j in zip(*np.nonzero(search.runners_up >= 0), strict=True):
        r = search.runners_up[i, j]
        dominates = (
            allowed[i]
            & (saved[i] >= saved[i, r])
            & (cost <= cost[r])
            & ((saved[i] > saved[i, r]) | (cost < cost[r]))
        )
        assert not dominates.any(), f"account {i}: runner-up {r} is dominated"


def test_candidates_hold_business_as_usual_best_and_profitable_runners_up():
    options, p0, lift, arr, days = _hand_built()
    search = search_plans(p0, lift, lift, lift, arr, days, options, max_plays=2)
    cands = candidates(search)
    # A: BAU + best + 2 runners-up; B: BAU + best; C (its runner-up loses money), D: BAU only
    assert cands.account.tolist() == [0, 0, 0, 0, 1, 1, 2, 3]
    assert cands.plan[[0, 4, 6, 7]].tolist() == [0, 0, 0, 0]
    assert cands.plan[1] == search.best[0] and cands.plan[5] == search.best[1]
    np.testing.assert_allclose(cands.net[:4], [0.0, search.net[0], 9000.0, 4900.0], rtol=1e-9)
    assert cands.exec_hours[:4].tolist() == [0.0, 2.0, 2.0, 0.0]
    kept = candidates(search, drop_unprofitable=False)
    assert kept.account.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3], "frontier plans at a loss"


def _random_case(n, seed):
    rng = np.random.default_rng(seed)
    spec = {
        f"k{k}": {"cost": float(rng.integers(0, 2000)), "csm_hours": 2.0, "exec_hours": 1.0,
                  "min_days": int(rng.integers(0, 40)), "max_days": int(rng.integers(120, 300)),
                  "min_arr": float(rng.choice([0.0, 20_000.0]))}
        for k in range(4)
    }  # fmt: skip
    options = make_options(spec, [0, 30, 60])
    p0 = rng.uniform(0.2, 0.95, n)
    lift = rng.normal(0.02, 0.04, (n, len(options)))
    arr = np.exp(rng.normal(10, 1, n))
    days = rng.integers(0, 250, n)
    return options, p0, lift, arr, days


def test_genetic_search_matches_exact_enumeration():
    # given 300 random accounts and a plan space of 1 + 12 + 6·9 + 4·27 = 175 plans
    options, p0, lift, arr, days = _random_case(300, seed=3)
    kwargs = {"max_plays": 3, "exclusions": [("k0", "k1")]}
    exact = search_plans(p0, lift, lift - 0.01, lift + 0.01, arr, days, options, **kwargs)
    # when the genetic path is forced
    genetic = search_plans(
        p0, lift, lift - 0.01, lift + 0.01, arr, days, options, max_exact_plans=10, **kwargs
    )
    # then it reaches the exact optimum for at least 99 % of accounts, never beats it,
    # and every plan it proposes is in the plan space and eligible for its account
    assert exact.exact and not genetic.exact
    same = np.isclose(genetic.net, exact.net, rtol=1e-9, atol=1e-6)
    assert same.mean() >= 0.99, f"only {same.mean():.1%} of accounts at the optimum"
    assert (genetic.net <= exact.net + 1e-6).all()
    space = {tuple(row) for row in enumerate_plans(options, **kwargs)}
    assert all(tuple(row) in space for row in genetic.plans)
    assert not genetic.plans[0].any(), "row 0 is business as usual"
    eligible = eligibility(options, arr, days)
    for kind in (genetic.best[:, None], genetic.runners_up):
        index = np.where(kind >= 0, kind, 0)
        assert not (genetic.plans[index] & ~eligible[:, None, :]).any()


def test_genetic_search_is_deterministic_for_a_seed():
    options, p0, lift, arr, days = _random_case(60, seed=5)
    args = (p0, lift, lift, lift, arr, days, options)
    first, second = (
        search_plans(*args, max_plays=3, max_exact_plans=10, seed=11) for _ in range(2)
    )
    assert np.array_equal(first.plans, second.plans)
    assert np.array_equal(first.best, second.best)
    assert np.array_equal(first.runners_up, second.runners_up)


def test_search_rejects_bad_inputs():
    options, p0, lift, arr, days = _hand_built()
    with pytest.raises(ValueError, match="lo <= lift <= hi"):
        search_plans(p0, lift, lift + 0.1, lift, arr, days, options, max_plays=2)
    with pytest.raises(ValueError, match="4 option columns"):
        search_plans(p0, lift, lift, lift, arr, days, options[:3], max_plays=2)
    with pytest.raises(ValueError, match="p0"):
        search_plans(p0 + 1, lift, lift, lift, arr, days, options, max_plays=2)


def test_plan_lift_is_unchanged_by_option_order_inside_a_plan():
    # the log-odds sum does not depend on which option is added first
    rng = np.random.default_rng(0)
    p0 = rng.uniform(0.1, 0.9, 5)
    lift = rng.normal(0, 0.05, (5, 3))
    plans = np.array([list(bits) for bits in itertools.product([False, True], repeat=3)])
    out = plan_lift(p0, lift, plans)
    swapped = plan_lift(p0, lift[:, ::-1], plans[:, ::-1])
    np.testing.assert_allclose(out, swapped, atol=1e-12)


def test_scoring_by_eligibility_group_equals_scoring_every_plan_masked(monkeypatch):
    # given accounts whose caller mask gives many distinct eligibility patterns
    options, p0, lift, arr, days = _random_case(200, seed=8)
    allowed = np.random.default_rng(8).random(lift.shape) < 0.7
    args = (p0, lift, lift - 0.01, lift + 0.01, arr, days, options)
    grouped = search_plans(*args, max_plays=3, allowed=allowed)
    # when every plan is scored for every account and the disallowed ones masked instead
    monkeypatch.setattr("models.interventions.plans._MAX_PATTERNS", 0)
    masked = search_plans(*args, max_plays=3, allowed=allowed)
    # then both pick the same plans, and no plan uses an option the caller did not allow
    assert np.array_equal(grouped.best, masked.best)
    assert np.array_equal(grouped.runners_up, masked.runners_up)
    assert not (grouped.plans[grouped.best] & ~allowed).any()


def test_a_share_of_the_renewal_given_away_is_set_against_the_arr_saved():
    # given a discount that gives 12 % of the renewal away and a training at a money cost
    options = make_options(
        {
            "discount": {"cost": 0.0, "arr_share": 0.12, "csm_hours": 1.0, "exec_hours": 0.0,
                         "min_days": 0, "max_days": 365},
            "training": {"cost": 1000.0, "csm_hours": 4.0, "exec_hours": 0.0, "min_days": 0,
                         "max_days": 365},
        },
        [0],
    )  # fmt: skip
    # and two accounts of 100,000 ARR: one in doubt (p0 0.5), one safe (p0 0.9)
    p0 = np.array([0.5, 0.9])
    lift = np.array([[0.10, 0.02], [0.05, 0.02]])
    arr = np.full(2, 100_000.0)
    days = np.array([100, 100])
    # when the plans are searched
    search = search_plans(p0, lift, lift, lift, arr, days, options, max_plays=2)
    labels = plan_labels(search.plans, options)
    # then the account in doubt takes both (log-odds 0.4055 + 0.0800 → 0.6190, of which 88 %
    # renews: 100,000 × (0.6190 × 0.88 − 0.5) − 1000), the safe one the training alone: its
    # discount would keep 0.95 × 0.88 = 0.836 of a renewal worth 0.9 without it
    assert [labels[b] for b in search.best] == ["discount + training", "training"]
    both = plan_lift(p0[:1], lift[:1], search.plans[search.best[:1]])[0, 0]
    np.testing.assert_allclose(0.5 + both, 0.619048, atol=1e-6)
    np.testing.assert_allclose(
        search.net, [1e5 * ((0.5 + both) * 0.88 - 0.5) - 1000, 1e5 * 0.02 - 1000], rtol=1e-9
    )
    assert search.lift[0] == pytest.approx(both), "the lift stays the win probability's"
    # and without the share the safe account's discount would look like 5,000 saved for free
    free = [replace(o, arr_share=0.0) for o in options]
    plain = search_plans(p0, lift, lift, lift, arr, days, free, max_plays=2)
    assert plan_labels(plain.plans, free)[plain.best[1]] == "discount + training"


def test_genetic_search_matches_exact_enumeration_with_shares_given_away():
    # given the random case with two of its four kinds giving 10 % and 25 % of the renewal away
    options, p0, lift, arr, days = _random_case(300, seed=5)
    share = {"k1": 0.10, "k3": 0.25}
    options = [replace(o, arr_share=share.get(o.kind, 0.0)) for o in options]
    lift = lift + 0.1 * np.isin([o.kind for o in options], list(share))  # worth a look
    kwargs = {"max_plays": 3, "exclusions": [("k0", "k1")]}
    exact = search_plans(p0, lift, lift, lift, arr, days, options, **kwargs)
    # when the genetic path is forced
    genetic = search_plans(p0, lift, lift, lift, arr, days, options, max_exact_plans=10, **kwargs)
    # then it reaches the same optimum for at least 99 % of accounts and never beats it
    same = np.isclose(genetic.net, exact.net, rtol=1e-9, atol=1e-6)
    assert same.mean() >= 0.99, f"only {same.mean():.1%} of accounts at the optimum"
    assert (genetic.net <= exact.net + 1e-6).all()
    # and both value a plan as ARR × ((p0 + lift) × kept − p0) − cost
    keep = plan_keep(exact.plans, options)[exact.best]
    np.testing.assert_allclose(
        exact.net, arr * ((p0 + exact.lift) * keep - p0) - exact.cost, rtol=1e-9, atol=1e-6
    )
    assert ((exact.plans[exact.best] @ np.isin([o.kind for o in options], list(share))) > 0).any()


def test_a_share_must_leave_something_of_the_renewal():
    with pytest.raises(ValueError, match="arr_share must lie in"):
        Option("discount", 0, 0.0, 0.0, 0.0, 0, 365, arr_share=1.0)
    with pytest.raises(ValueError, match="arr_share must lie in"):
        Option("discount", 0, 0.0, 0.0, 0.0, 0, 365, arr_share=-0.1)


def test_why_no_play_gives_the_real_reason():
    """`explain` said "none whose expected ARR saved covers its cost" for an account renewing
    beyond every play's window, while listing a play worth 3x its cost."""
    options = (
        Option("exec_call", 0, 800, 2, 1, min_days=30, max_days=180, min_arr=20_000),
        Option("training", 0, 1200, 4, 0, min_days=60, max_days=365),
        Option("training", 30, 1200, 4, 0, min_days=60, max_days=365),
    )
    beyond = why_no_play(options, 50_000, 500)
    assert beyond.startswith("its renewal is 500 days away, beyond every play's window")
    assert "365 days before a renewal" in beyond
    close = why_no_play(options, 50_000, 10)
    assert close.startswith("its renewal is 10 days away, too close for any play")
    assert "30 days before a renewal" in close
    # a small account in exec_call's window only: its minimum ARR rules it out
    assert "minimum ARR" in why_no_play(options[:1], 5_000, 100)
    assert why_no_play(options, 50_000, 100).startswith("no play it may have now")
    assert why_no_play(options, 50_000, None).startswith("no play is expected")
