"""Portfolio allocation: the optimum against brute force, capacity, shadow prices, frontier,
and the failure modes."""

import itertools

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

from models.interventions import allocation
from models.interventions.allocation import allocate


def _brute_force(account, saved, cost, csm, exe, capacity):
    """Best Σ (saved − cost) over every choice of one row per account within capacity."""
    rows = [np.flatnonzero(account == a) for a in np.unique(account)]
    usage = {"csm_hours": csm, "exec_hours": exe, "budget": cost}
    best = -np.inf
    for pick in itertools.product(*rows):
        pick = list(pick)
        if all(cap is None or usage[k][pick].sum() <= cap + 1e-9 for k, cap in capacity.items()):
            best = max(best, (saved[pick] - cost[pick]).sum())
    return best


def _tiny():
    """Four accounts, each with business as usual and two plays (a call, a bigger review)."""
    account = np.repeat([0, 1, 2, 3], 3)
    saved = np.array([0, 3000, 9000, 0, 2500, 6000, 0, 1800, 8000, 0, 900, 4000], dtype=float)
    cost = np.array([0, 500, 2000, 0, 500, 2000, 0, 500, 2000, 0, 500, 2000], dtype=float)
    csm = np.array([0, 2, 10, 0, 2, 10, 0, 2, 10, 0, 2, 10], dtype=float)
    exe = np.array([0, 0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 2], dtype=float)
    return account, saved, cost, csm, exe


def test_allocation_is_the_brute_force_optimum_within_capacity():
    # given 4 accounts × 3 candidates and room for two reviews' worth of CSM time
    account, saved, cost, csm, exe = _tiny()
    capacity = {"csm_hours": 23.0, "exec_hours": 10.0, "budget": None}
    # when allocated
    result = allocate(account, saved, cost, csm, exe, capacity, mip_rel_gap=1e-9)
    # then: reviews for accounts 0 and 2 (10 h each) and a call for account 1 (2 h): 23 h
    chosen = np.flatnonzero(result.choice)
    assert chosen.tolist() == [2, 4, 8, 9]
    assert result.objective == pytest.approx(7000 + 2000 + 6000 + 0)
    assert result.objective == pytest.approx(_brute_force(account, saved, cost, csm, exe, capacity))
    assert result.used == {"csm_hours": 22.0, "exec_hours": 4.0, "budget": 4500.0}
    assert result.optimal
    assert np.bincount(account[result.choice]).tolist() == [1, 1, 1, 1], "one row per account"


def test_shadow_price_is_positive_on_a_binding_resource_and_zero_on_a_slack_one():
    # given CSM hours that bind (the LP would split a review) and executive hours to spare
    account, saved, cost, csm, exe = _tiny()
    result = allocate(account, saved, cost, csm, exe, {"csm_hours": 23.0, "exec_hours": 10.0})
    # then the LP says one more CSM hour is worth what account 1's review adds per extra hour:
    # (6000 − 2000 − 2000) net gained over 10 − 2 = 8 more hours = 250 per hour
    assert result.shadow_prices["csm_hours"] == pytest.approx(250.0)
    assert result.shadow_prices["exec_hours"] == 0.0
    assert result.shadow_prices["budget"] == 0.0, "unlimited"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_allocation_matches_brute_force_on_random_portfolios(seed):
    # given 8 accounts × 3 candidates (3⁸ = 6561 choices) under three tight capacities
    rng = np.random.default_rng(seed)
    account = np.repeat(np.arange(8), 3)
    cost = np.where(np.arange(24) % 3 == 0, 0, rng.integers(1, 30, 24) * 100).astype(float)
    saved = np.where(cost > 0, cost * rng.uniform(0.5, 4, 24), 0)
    csm = np.where(cost > 0, rng.integers(1, 12, 24), 0).astype(float)
    exe = np.where(cost > 0, rng.integers(0, 4, 24), 0).astype(float)
    capacity = {"csm_hours": 30.0, "exec_hours": 6.0, "budget": 6000.0}
    # when allocated, then it is the optimum and respects every capacity
    result = allocate(account, saved, cost, csm, exe, capacity, mip_rel_gap=1e-9)
    assert result.objective == pytest.approx(_brute_force(account, saved, cost, csm, exe, capacity))
    for name, cap in capacity.items():
        assert result.used[name] <= cap + 1e-9, name


def test_frontier_is_monotone_from_no_budget_to_the_uncapped_optimum():
    account, saved, cost, csm, exe = _tiny()
    result = allocate(account, saved, cost, csm, exe, {"csm_hours": 23.0, "budget": 1000.0},
                      frontier_points=5, mip_rel_gap=1e-9, frontier_gap=1e-9)  # fmt: skip
    frontier = result.frontier
    # the budget actually allowed now is 1000 (two calls); without a budget cap it is 4500
    assert result.used["budget"] == 1000.0
    assert frontier.budget.tolist() == [0.0, 1125.0, 2250.0, 3375.0, 4500.0]
    assert frontier.cost[0] == 0.0 and frontier.net[0] == 0.0
    assert (np.diff(frontier.net) >= 0).all() and (np.diff(frontier.saved) >= 0).all()
    assert (frontier.cost <= frontier.budget + 1e-9).all()
    assert frontier.net[-1] == pytest.approx(15000.0)
    for cap, net in zip(frontier.budget, frontier.net, strict=True):
        capped = {"csm_hours": 23.0, "budget": cap}
        assert net == pytest.approx(_brute_force(account, saved, cost, csm, exe, capped))
    assert frontier.optimal.all()


def test_a_solver_stopped_by_its_node_limit_falls_back_to_the_rounded_lp(monkeypatch):
    # given milp stopping at its node limit with no incumbent
    def stopped(*args, **kwargs):
        return OptimizeResult(status=1, x=None, message="Node limit reached", mip_gap=None)

    monkeypatch.setattr(allocation, "milp", stopped)
    account, saved, cost, csm, exe = _tiny()
    capacity = {"csm_hours": 23.0, "exec_hours": 10.0}
    result = allocate(account, saved, cost, csm, exe, capacity, mip_rel_gap=1e-9)
    # then the allocation is still one row per account within capacity, and says it is not proven
    assert not result.optimal
    assert "no incumbent" in result.message
    assert np.bincount(account[result.choice]).tolist() == [1, 1, 1, 1]
    assert result.used["csm_hours"] <= 23.0


def test_allocation_rejects_impossible_capacity_and_unknown_resources():
    account, saved, cost, csm, exe = _tiny()
    keep = cost > 0  # no business-as-usual rows left
    with pytest.raises(ValueError, match="fits the capacity"):
        allocate(account[keep], saved[keep], cost[keep], csm[keep], exe[keep], {"budget": 100.0})
    with pytest.raises(ValueError, match="'seats'"):
        allocate(account, saved, cost, csm, exe, {"seats": 3.0})
    with pytest.raises(ValueError, match="csm_hours must be finite"):
        allocate(account, saved, cost, -csm, exe, {})


def test_the_solver_is_bound_by_a_node_count_not_the_clock(monkeypatch):
    # given a spy on the solver, and a tight gap so the binary program is solved
    seen = []

    def spy(*args, **kwargs):
        seen.append(dict(kwargs["options"]))  # milp takes its options out of the dict
        return allocation_milp(*args, **kwargs)

    allocation_milp = allocation.milp
    monkeypatch.setattr(allocation, "milp", spy)
    account, saved, cost, csm, exe = _tiny()
    allocate(account, saved, cost, csm, exe, {"csm_hours": 23.0}, node_limit=7, mip_rel_gap=1e-9)
    # then every solve it ran was limited by nodes and none by seconds
    assert seen
    assert all(o["node_limit"] == 7 and "time_limit" not in o for o in seen)
