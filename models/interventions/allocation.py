"""Which accounts get which plan when CSM hours, executive hours and budget are limited.

The plan search (:mod:`~models.interventions.plans`) proposes a few candidates per account, business
as usual among them. Here one candidate is chosen per account to maximise the portfolio's net value
(ARR saved − cost) under the team's capacity: a binary program solved by HiGHS through
``scipy.optimize.milp``. Its LP relaxation gives the shadow price of each resource (what one more
CSM hour, executive hour or dollar of budget would add), and re-solving under a grid of budget caps
traces the saved-vs-cost frontier a CS leader uses to argue for budget.

Measured on 2 cores shared with other work (10,000 accounts × 4 candidates, CSM hours binding):
the allocation with its shadow prices takes 0.6–0.9 s; the 12-point frontier adds about 0.3 s a
point (one LP each), 3.6–4.0 s in all. Pure numpy/scipy: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, linprog, milp

RESOURCES = ("csm_hours", "exec_hours", "budget")
_FILL_STEPS = 100  # upgrades tried to spend what LP rounding leaves of the capacity


@dataclass(frozen=True)
class Frontier:
    """The best portfolio under each budget cap, caps from 0 to the uncapped optimum's cost."""

    budget: np.ndarray
    saved: np.ndarray
    cost: np.ndarray
    net: np.ndarray
    optimal: np.ndarray  # False where the solver stopped at its time limit


@dataclass
class Allocation:
    """The chosen candidate rows (one per account) and what the portfolio saves and uses."""

    choice: np.ndarray
    objective: float
    saved: float
    used: dict[str, float]
    shadow_prices: dict[str, float]
    frontier: Frontier
    optimal: bool  # False: the time limit stopped the solver, ``choice`` is its best incumbent
    message: str


@dataclass(frozen=True)
class _Portfolio:
    net: np.ndarray  # (N,) saved − cost per candidate
    saved: np.ndarray
    usage: np.ndarray  # (3, N) in RESOURCES order
    one_per_account: sparse.csr_array  # (accounts, N)
    group: np.ndarray  # (N,) account number of each candidate


def allocate(
    account: np.ndarray,
    saved: np.ndarray,
    cost: np.ndarray,
    csm_hours: np.ndarray,
    exec_hours: np.ndarray,
    capacity: Mapping[str, float | None],
    frontier_points: int = 12,
    *,
    node_limit: int = 2_000,
    mip_rel_gap: float = 1e-4,
    frontier_gap: float = 1e-3,
) -> Allocation:
    """Choose exactly one candidate per account to maximise Σ (saved − cost) within capacity.

    Args:
        account: the account of each candidate row (any hashable labels).
        saved, cost, csm_hours, exec_hours: per candidate row.
        capacity: ``csm_hours``, ``exec_hours`` and ``budget`` (money) → the most the portfolio
            may use; ``None`` or a missing key = unlimited.
        frontier_points: budget caps on the saved-vs-cost frontier (at least 2).
        node_limit: branch-and-bound nodes per solve: the work is bound by a count, not the
            clock, so a plan is the same on a loaded machine. Past it the solver's best
            incumbent is used (or the rounded LP when better) and ``optimal`` is False.
        mip_rel_gap: relative optimality gap of the allocation.
        frontier_gap: relative gap of each frontier point (a planning curve: 0.1 % is plenty,
            and proving 0.01 % on a tight budget costs the solver seconds per point).

    Returns:
        The choice, its objective, resources used, the LP shadow price of each resource (value
        of one more unit, 0 when it is slack or unlimited) and the budget frontier.

    Raises:
        ValueError: on mismatched or negative inputs, an unknown resource, or when no choice
            fits the capacity (e.g. an account without a zero-cost candidate).
    """
    portfolio = _portfolio(account, saved, cost, csm_hours, exec_hours)
    limits = _limits(capacity)
    if frontier_points < 2:
        raise ValueError(f"frontier_points must be >= 2, got {frontier_points}")
    options = {"node_limit": int(node_limit), "mip_rel_gap": float(mip_rel_gap)}
    frontier_options = {**options, "mip_rel_gap": max(float(frontier_gap), float(mip_rel_gap))}
    columns = _undominated(portfolio)
    solution = _solve(portfolio, limits, options, columns)
    uncapped = {**limits, "budget": None}
    free = solution if limits["budget"] is None else _solve(portfolio, uncapped, options, columns)
    frontier = _frontier(portfolio, uncapped, free, frontier_points, frontier_options, columns)
    x = solution.x
    return Allocation(
        choice=x > 0.5,
        objective=float(portfolio.net @ x),
        saved=float(portfolio.saved @ x),
        used=dict(zip(RESOURCES, (portfolio.usage @ x).tolist(), strict=True)),
        shadow_prices=_shadow_prices(solution.lp, limits),
        frontier=frontier,
        optimal=solution.optimal,
        message=solution.message,
    )


def _portfolio(
    account: np.ndarray,
    saved: np.ndarray,
    cost: np.ndarray,
    csm_hours: np.ndarray,
    exec_hours: np.ndarray,
) -> _Portfolio:
    saved = np.asarray(saved, dtype=float)
    arrays = {
        "cost": np.asarray(cost, dtype=float),
        "csm_hours": np.asarray(csm_hours, dtype=float),
        "exec_hours": np.asarray(exec_hours, dtype=float),
    }
    account = np.asarray(account)
    n = len(saved)
    if n == 0:
        raise ValueError("there are no candidates to allocate")
    for name, values in {"account": account, "saved": saved, **arrays}.items():
        if values.shape != (n,):
            raise ValueError(f"{name} must be 1-d with one value per candidate ({n}), "
                             f"got shape {values.shape}")  # fmt: skip
    if not np.isfinite(saved).all():
        raise ValueError("saved must be finite")
    for name, values in arrays.items():
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError(f"{name} must be finite and >= 0")
    _, group = np.unique(account, return_inverse=True)
    group = group.ravel()
    one_per_account = sparse.csr_array(
        (np.ones(n), (group, np.arange(n))), shape=(int(group.max()) + 1, n)
    )
    usage = np.vstack([arrays["csm_hours"], arrays["exec_hours"], arrays["cost"]])
    return _Portfolio(saved - arrays["cost"], saved, usage, one_per_account, group)


def _limits(capacity: Mapping[str, float | None]) -> dict[str, float | None]:
    unknown = sorted(set(capacity) - set(RESOURCES))
    if unknown:
        raise ValueError(f"unknown resources in capacity: {unknown} (expected {list(RESOURCES)})")
    limits = {name: capacity.get(name) for name in RESOURCES}
    for name, value in limits.items():
        if value is not None and (not np.isfinite(value) or value < 0):
            raise ValueError(f"capacity {name} must be finite and >= 0 (or None), got {value}")
    return limits


def _rows(limits: Mapping[str, float | None]) -> tuple[list[int], np.ndarray]:
    """The limited resources (row indices into ``usage``) and their caps."""
    limited = [k for k, name in enumerate(RESOURCES) if limits[name] is not None]
    return limited, np.array([float(limits[RESOURCES[k]]) for k in limited])


class _Infeasible(ValueError):
    """No choice of one candidate per account fits the capacity."""


@dataclass(frozen=True)
class _Solution:
    x: np.ndarray  # (N,) 0/1
    optimal: bool
    message: str
    lp: OptimizeResult  # the LP relaxation (its duals are the shadow prices)


def _solve(
    portfolio: _Portfolio,
    limits: Mapping[str, float | None],
    options: dict[str, float],
    columns: np.ndarray | None = None,
) -> _Solution:
    """The binary program, to ``mip_rel_gap``: LP relaxation, reduced-cost fixing, ``milp``.

    HiGHS on all 40,000 binaries spends seconds in presolve and more closing the last 0.01 %,
    though the LP optimum is integral but for about one account per binding resource. So: solve
    the LP, round it to a feasible incumbent; if that is within the gap of the LP bound, done.
    Else fix every variable whose reduced cost exceeds the incumbent's gap (no better solution
    can move it) and hand ``milp`` only the accounts left open. ``columns`` restricts the
    candidates to a subset that provably holds the optimum (undominated, within the budget).
    """
    n = len(portfolio.net)
    columns = np.arange(n) if columns is None else columns
    part = _restrict(portfolio, columns)
    limited, caps = _rows(limits)
    lp = _relaxation(part, limits)
    cost = -part.net
    incumbent = _round_down(part, lp.x, limited, caps)
    x = np.zeros(len(columns))
    if incumbent is None:
        fixed_one = np.zeros(len(columns), dtype=bool)
        free = np.ones(len(columns), dtype=bool)
    else:
        gap = float(cost @ incumbent - lp.fun)
        if gap <= options["mip_rel_gap"] * abs(lp.fun):
            # the rounded LP is already within the gap asked for: nothing left to branch on
            full = np.zeros(n)
            full[columns] = incumbent
            return _Solution(full, True, f"optimal within {options['mip_rel_gap']:.0e}", lp)
        reduced = cost - part.one_per_account.T @ lp.eqlin.marginals
        if limited:
            reduced -= part.usage[limited].T @ lp.ineqlin.marginals
        slack = gap + 1e-9 * max(1.0, abs(lp.fun)) + 1e-7
        fixed_one = (lp.x > 0.5) & (-reduced > slack)
        fixed_zero = (lp.x < 0.5) & (reduced > slack)
        settled = np.zeros(part.one_per_account.shape[0], dtype=bool)
        settled[part.group[fixed_one]] = True
        free = ~fixed_zero & ~fixed_one & ~settled[part.group]
        n_free = np.bincount(part.group[free], minlength=len(settled))
        stranded = ~settled & (n_free == 0)
        free |= stranded[part.group]  # rounding noise must never leave an account without a row
        forced = free & (n_free[part.group] == 1)  # the one row its account has left
        fixed_one |= forced
        free &= ~forced
    x[fixed_one] = 1.0
    optimal, message = True, "optimal"
    if free.any():
        sub = _restrict(part, np.flatnonzero(free))
        rows = np.unique(sub.group)
        constraints = [LinearConstraint(sub.one_per_account[rows], 1, 1)]
        if limited:
            left = caps - part.usage[limited] @ x
            constraints.append(LinearConstraint(sub.usage[limited], -np.inf, left))
        # the gap asked for is relative to the whole portfolio, not to what is left free
        whole = max(abs(lp.fun), 1e-9)
        rest = max(abs(lp.fun - cost @ x), 1e-9)
        sub_gap = min(1.0, options["mip_rel_gap"] * whole / rest)
        result = milp(
            -sub.net,
            integrality=np.ones(len(sub.net)),
            bounds=Bounds(0, 1),
            constraints=constraints,
            options={**options, "presolve": False, "mip_rel_gap": sub_gap},
        )
        if result.x is not None and result.status in (0, 1):
            x[free] = np.rint(result.x)
            if result.status == 1:
                optimal = False
                message = f"node limit reached: best incumbent, gap {result.mip_gap:.2%}"
        elif incumbent is None:
            raise _Infeasible(
                f"no allocation fits the capacity {dict(limits)} ({result.message}): give every "
                "account a zero-cost candidate (business as usual), or raise node_limit"
            )
        else:
            x = incumbent
            optimal, message = False, f"no incumbent from milp ({result.message}): LP rounded"
    if incumbent is not None and cost @ incumbent < cost @ x:
        x = incumbent  # only when the solver stopped early with a worse incumbent
    full = np.zeros(n)
    full[columns] = x
    return _Solution(full, optimal, message, lp)


def _restrict(portfolio: _Portfolio, columns: np.ndarray) -> _Portfolio:
    return _Portfolio(
        portfolio.net[columns],
        portfolio.saved[columns],
        portfolio.usage[:, columns],
        portfolio.one_per_account[:, columns],
        portfolio.group[columns],
    )


def _round_down(
    portfolio: _Portfolio, x: np.ndarray, limited: list[int], caps: np.ndarray
) -> np.ndarray | None:
    """A feasible 0/1 choice near the LP solution, or None if rounding finds none.

    Accounts the LP takes whole keep their candidate; the few it splits (an LP vertex splits at
    most one account per binding resource) take, largest LP value first, their best candidate
    that still fits the capacity left, else their least demanding one.
    """
    n_accounts = portfolio.one_per_account.shape[0]
    whole = x > 1 - 1e-6
    choice = whole.astype(float)
    taken = np.bincount(portfolio.group[whole], minlength=n_accounts)
    if (taken > 1).any():
        return None
    usage = portfolio.usage[limited]
    left = caps - usage @ choice
    split = np.flatnonzero(taken == 0)
    if len(split):
        value = np.bincount(portfolio.group, weights=x * portfolio.net, minlength=n_accounts)
        rows = np.isin(portfolio.group, split)
        members = np.flatnonzero(rows)
        for account in split[np.argsort(-value[split], kind="stable")]:
            cols = members[portfolio.group[members] == account]
            if not len(cols):
                return None
            fits = (usage[:, cols] <= left[:, None] + 1e-9).all(axis=0)
            pick = (
                cols[fits][np.argmax(portfolio.net[cols[fits]])]
                if fits.any()
                else cols[np.argmin(portfolio.usage[:, cols].sum(axis=0))]
            )
            choice[pick] = 1.0
            left = left - usage[:, pick]
    if (left < -1e-9).any():
        return None
    return _fill(portfolio, choice, usage, left)


def _fill(
    portfolio: _Portfolio, choice: np.ndarray, usage: np.ndarray, left: np.ndarray
) -> np.ndarray:
    """Spend the capacity rounding left over: repeatedly take the single change of one
    account's candidate that gains the most net value and still fits."""
    current = np.flatnonzero(choice > 0.5)
    now = np.empty(portfolio.one_per_account.shape[0], dtype=np.int64)
    now[portfolio.group[current]] = current
    choice = choice.copy()
    for _ in range(_FILL_STEPS):
        held = now[portfolio.group]
        gain = portfolio.net - portfolio.net[held]
        extra = usage - usage[:, held]
        gain[(gain <= 1e-9) | (extra > left[:, None] + 1e-9).any(axis=0)] = -np.inf
        best = int(np.argmax(gain))
        if not np.isfinite(gain[best]):
            break
        choice[held[best]], choice[best] = 0.0, 1.0
        left = left - extra[:, best]
        now[portfolio.group[best]] = best
    return choice


def _relaxation(portfolio: _Portfolio, limits: Mapping[str, float | None]) -> OptimizeResult:
    limited, caps = _rows(limits)
    result = linprog(
        -portfolio.net,
        A_ub=portfolio.usage[limited] if limited else None,
        b_ub=caps if limited else None,
        A_eq=portfolio.one_per_account,
        b_eq=np.ones(portfolio.one_per_account.shape[0]),
        bounds=(0, 1),
        method="highs",
    )
    if result.status == 2:
        raise _Infeasible(
            f"no choice of one candidate per account fits the capacity {dict(limits)}: "
            "give every account a zero-cost candidate (business as usual)"
        )
    if result.status != 0:
        raise ValueError(f"the LP relaxation failed: {result.message}")
    return result


def _shadow_prices(lp: OptimizeResult, limits: Mapping[str, float | None]) -> dict[str, float]:
    """Net value of one more unit of each resource, from the LP relaxation's duals.

    HiGHS reports ∂(minimised objective)/∂(bound), ≤ 0 on a binding ``≤`` row; the objective
    minimised is −net, so the value gained per unit is its negation (0 when slack or unlimited).
    """
    limited, _ = _rows(limits)
    prices = dict.fromkeys(RESOURCES, 0.0)
    for k, marginal in zip(limited, lp.ineqlin.marginals, strict=True):
        prices[RESOURCES[k]] = max(0.0, -float(marginal))
    return prices


def _frontier(
    portfolio: _Portfolio,
    limits: Mapping[str, float | None],
    uncapped: _Solution,
    points: int,
    options: dict[str, float],
    columns: np.ndarray,
) -> Frontier:
    """Re-solve under budget caps from 0 to the uncapped optimum's cost (other capacities as
    given); NaN where no choice fits a cap (an account with no zero-cost candidate at cap 0).

    A choice that fits a cap fits every larger one, so a point never reports less than the
    point before it, even when a solve stops within its gap.
    """
    top = float(portfolio.usage[2] @ uncapped.x)
    caps = np.linspace(0.0, top, points)
    solutions: list[_Solution | None] = []
    for cap in caps[:-1]:
        within = columns[portfolio.usage[2, columns] <= cap]
        try:
            solution = _solve(portfolio, {**limits, "budget": float(cap)}, options, within)
        except _Infeasible:
            solution = None
        last = solutions[-1] if solutions else None
        if last is not None and (
            solution is None or portfolio.net @ last.x > portfolio.net @ solution.x
        ):
            solution = last
        solutions.append(solution)
    solutions.append(uncapped)
    x = np.array([np.full(len(portfolio.net), np.nan) if s is None else s.x for s in solutions])
    saved, cost = x @ portfolio.saved, x @ portfolio.usage[2]
    optimal = np.array([s is not None and s.optimal for s in solutions])
    return Frontier(caps, saved, cost, saved - cost, optimal)


def _undominated(portfolio: _Portfolio) -> np.ndarray:
    """Candidates no other candidate of the same account beats on net value while using no more
    of any resource (of identical ones, the first). Dropping the rest changes neither the
    optimum nor the LP relaxation's duals, and shrinks every solve."""
    n = len(portfolio.net)
    order = np.argsort(portfolio.group, kind="stable")
    group = portfolio.group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, n])
    slot = np.arange(n) - np.repeat(starts, sizes)
    width = int(sizes.max())
    net = np.full((len(starts), width), -np.inf)
    usage = np.full((3, len(starts), width), np.inf)
    rows = np.repeat(np.arange(len(starts)), sizes)
    net[rows, slot] = portfolio.net[order]
    usage[:, rows, slot] = portfolio.usage[:, order]
    dominated = np.zeros((len(starts), width), dtype=bool)
    for k in range(width):  # is column j beaten by column k of its account?
        no_worse = (net[:, [k]] >= net) & (usage[:, :, [k]] <= usage).all(axis=0)
        better = (net[:, [k]] > net) | (usage[:, :, [k]] < usage).any(axis=0)
        beats = no_worse & (better | (k < np.arange(width)))
        beats[:, k] = False
        dominated |= beats & np.isfinite(net[:, [k]])
    keep = ~dominated[rows, slot]
    return np.sort(order[keep])
