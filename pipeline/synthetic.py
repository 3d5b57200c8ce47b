"""The synthetic B2B SaaS world: eleven raw tables in the data contract, plus its oracle.

A latent monthly health process per account drives everything the tables show. Hidden
troubles (a champion leaving, a budget cut) hit health and are only partly visible in the data;
simulated CSMs with limited capacity act on what *they* perceive (confounding), log their
decision context, and each intervention kind has a heterogeneous true effect.

Renewal is a probit in the health at the contract's end month::

    renewed  ⇔  base[segment] + term_offset[term] + β·h[end] + γ·adoption + ε > 0,   ε ~ N(0, 1)
    h[m+1] = μ + ρ·(h[m] − μ) + η − δ_champion·champion_left − δ_budget·budget_cut + τ(interventions)

so the oracle's renewal probability at a snapshot is exact for the Gaussian part of the future
and moment-matched for future shocks, given the hidden state at ``as_of`` and no new
interventions. Nothing outside evaluation code may read ``data.oracle_dir``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy.special import expit, ndtr

from pipeline.config import FeaturesConfig, SyntheticConfig
from pipeline.storage import atomic_directory

# ---- the world's dynamics (fixed physics; scale and segments come from params) -------------
RHO = 0.85  # monthly persistence of health
SIGMA = 0.25  # monthly innovation of health
BETA = 1.3  # weight of health in the renewal decision
GAMMA_ADOPTION = 0.25  # weight of key-feature adoption in the renewal decision
CHAMPION_HAZARD = 0.012  # per month, while a champion is in place
CHAMPION_SHOCK = 0.9
BUDGET_HAZARD = 0.007
BUDGET_SHOCK = 0.6
BUDGET_DECAY = 0.85
TERM_OFFSET = {1: 0.95, 3: 0.55, 6: 0.3, 12: 0.0, 24: -0.1, 36: -0.15}
EFFECT_LAG = 1  # an intervention decided in month m moves health from month m+1 on
RECENT_MONTHS = 6

INTERVENTIONS = ("exec_call", "strategic_review", "training", "csm_change", "discount")
INTERVENTION_COST = {"exec_call": 800.0, "strategic_review": 2500.0, "training": 1200.0}
CSM_CHANGE_COST = 3000.0
DISCOUNT_SHARE = 0.12  # a discount gives this share of ARR away at renewal
REASONS = (
    "champion_left",
    "budget_cut",
    "renewal_risk",
    "low_usage",
    "low_engagement",
    "proactive",
)
# P(kind | reason), rows in REASONS order, columns in INTERVENTIONS order
KIND_GIVEN_REASON = np.array(
    [
        [0.45, 0.25, 0.15, 0.15, 0.00],
        [0.30, 0.15, 0.00, 0.00, 0.55],
        [0.30, 0.30, 0.10, 0.10, 0.20],
        [0.00, 0.20, 0.65, 0.15, 0.00],
        [0.25, 0.20, 0.20, 0.35, 0.00],
        [0.00, 0.50, 0.50, 0.00, 0.00],
    ]
)

EVENT_TYPES = (
    "dashboard_view",
    "report_export",
    "workflow_run",
    "integration_sync",
    "api_call",
    "alert_configured",
    "admin_settings",
)
KEY_EVENT_TYPES = ("workflow_run", "integration_sync")
EVENT_BASE_WEIGHT = np.array([0.34, 0.14, 0.14, 0.10, 0.14, 0.08, 0.06])
EVENT_MEAN_QUANTITY = np.array([3.0, 1.0, 2.0, 4.0, 12.0, 1.0, 1.0])
SEASON = np.array([0.95, 1.0, 1.05, 1.03, 1.02, 0.98, 0.9, 0.84, 1.0, 1.05, 1.02, 0.78])
WEEKDAY_WEIGHT = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.12, 0.08])  # Mon..Sun

PERSONAS = ("decision_maker", "champion", "admin", "power_user", "user", "other")
PRIORITIES = ("low", "normal", "high", "urgent")
INDUSTRIES = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "logistics",
    "media",
)
REGIONS = ("north_america", "emea", "apac", "latam")
REGION_WEIGHT = np.array([0.45, 0.33, 0.15, 0.07])
NAME_HEAD = (
    "North Star Acme Blue Harbor Iron Cedar Summit Pioneer Bright Silver Granite Maple Orbit "
    "Falcon Vertex Lumen Atlas Nimbus Quartz Redwood Sterling Harbor Beacon Cobalt Evergreen "
    "Helix Juniper Keystone Meridian Nova Oakridge Polar Riverstone Sage Tidewater Union Vantage "
    "Willow Zenith Aurora Bluebird Crescent Delta Ember Frontier Golden"
).split()
NAME_TAIL = (
    "Analytics Logistics Health Systems Foods Robotics Labs Capital Energy Media Partners Retail "
    "Software Networks Bank Insurance Outfitters Studios Holdings Dynamics Works Biotech Freight "
    "Learning Pharma Clinics Supply Motors Security"
).split()
NAME_FORM = ("Inc", "LLC", "Ltd", "GmbH", "SA", "BV", "Co", "Group", "PLC", "AG")
SENTIMENT_NOTES = {
    1: ("Escalation open; exec sponsor unhappy", "Considering alternatives", "Budget under review"),
    2: ("Champion unresponsive", "Adoption stalled after rollout", "Frustrated with support"),
    3: ("Steady, no news", "Waiting on integration", "Mixed feedback from users"),
    4: ("Good QBR", "Rolling out to a second team", "Happy with support"),
    5: ("Expanding use cases", "Reference customer", "Asked about upsell"),
}


@dataclass(frozen=True)
class WorldSummary:
    """What ``healthscore data`` reports and ``make bench`` prints."""

    accounts: int
    rows: dict[str, int]
    checks: dict[str, float]
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass
class _Calendar:
    """Monthly grid of the simulation: prehistory, history up to the data's end, and beyond."""

    first_month: np.datetime64  # datetime64[M]
    months: int
    end_month: int  # index of the data's end month (end_date lies in it)
    start_month: int  # first month with event history
    end: np.datetime64  # datetime64[D], the data's end (exclusive)
    start: np.datetime64  # datetime64[D], first day with events

    def month_start(self, m: np.ndarray | int) -> np.ndarray:
        return (self.first_month + np.asarray(m)).astype("datetime64[D]")

    def month_days(self, m: np.ndarray | int) -> np.ndarray:
        return (self.month_start(np.asarray(m) + 1) - self.month_start(m)).astype(int)

    def month_of(self, days: np.ndarray) -> np.ndarray:
        return (days.astype("datetime64[M]") - self.first_month).astype(int)


def _calendar(cfg: SyntheticConfig, features: FeaturesConfig) -> _Calendar:
    end = np.datetime64(cfg.end_date, "D")
    end_m = end.astype("datetime64[M]")
    beyond = int(np.ceil(features.horizon_days / 28)) + 2  # outcomes of censored contracts
    first = end_m - (cfg.history_months + cfg.prehistory_months)
    months = cfg.history_months + cfg.prehistory_months + beyond + 1
    start = (end_m - cfg.history_months).astype("datetime64[D]")
    return _Calendar(
        first_month=first,
        months=months,
        end_month=int(end_m - first),
        start_month=int(end_m - first) - cfg.history_months,
        end=end,
        start=start,
    )


@dataclass
class _Accounts:
    n: int
    segment: np.ndarray  # int index into segments
    size: np.ndarray  # 0..1, the segment's rank by ARR
    created_month: np.ndarray
    created_day: np.ndarray  # datetime64[D]
    mu: np.ndarray
    adoption: np.ndarray
    arr0: np.ndarray
    seat_price: np.ndarray
    term0: np.ndarray
    csm: np.ndarray
    industry: np.ndarray
    region: np.ndarray
    name: np.ndarray


@dataclass
class _History:
    """Latent paths and logs from the month-by-month simulation."""

    health: np.ndarray  # (n, months); nan before creation / after churn
    budget: np.ndarray  # (n, months) budget stress
    alive: np.ndarray  # (n, months) bool: account is a customer during the month
    seats: np.ndarray  # (n, months) seats of the contract in force
    champion_gone: np.ndarray  # (n, months) month the champion left, -1 while one is in place
    pending: np.ndarray  # (n, months) effect decided in the month, landing in the next
    last_day: np.ndarray  # datetime64[D]: first day the account is no longer a customer
    csm_final: np.ndarray
    champion_events: dict[str, np.ndarray]
    contracts: dict[str, np.ndarray] = field(default_factory=dict)
    interventions: dict[str, np.ndarray] = field(default_factory=dict)


# ---- accounts ---------------------------------------------------------------------------------


def _make_accounts(cfg: SyntheticConfig, cal: _Calendar, rng: np.random.Generator) -> _Accounts:
    names = list(cfg.segments)
    specs = [cfg.segments[s] for s in names]
    shares = np.array([s.share for s in specs])
    n = cfg.accounts
    segment = rng.choice(len(names), size=n, p=shares / shares.sum())
    order = np.argsort(np.argsort([s.arr_median for s in specs]))
    size = (order / max(len(specs) - 1, 1))[segment]

    # a third of the book predates the event history; the rest arrives over it
    history_end = cal.end_month - 2
    old = rng.random(n) < 0.35
    created_month = np.where(
        old,
        rng.integers(0, max(cal.start_month, 1), n),
        rng.integers(cal.start_month, history_end, n),
    )
    created_day = cal.month_start(created_month) + rng.integers(0, 28, n)

    arr_median = np.array([s.arr_median for s in specs])[segment]
    arr_sigma = np.array([s.arr_sigma for s in specs])[segment]
    arr0 = np.round(arr_median * np.exp(rng.normal(0, 1, n) * arr_sigma), -1)
    seat_price = np.array([s.seat_price for s in specs])[segment] * np.exp(rng.normal(0, 0.2, n))

    term0 = np.empty(n, dtype=int)
    for k, spec in enumerate(specs):
        idx = np.flatnonzero(segment == k)
        terms = np.array(list(spec.terms))
        weights = np.array(list(spec.terms.values()))
        term0[idx] = rng.choice(terms, size=idx.size, p=weights / weights.sum())

    n_csm = max(1, int(np.ceil(n / cfg.accounts_per_csm)))
    name = np.array(
        [
            f"{NAME_HEAD[a]} {NAME_TAIL[b]} {NAME_FORM[c]}"
            for a, b, c in zip(
                rng.integers(0, len(NAME_HEAD), n),
                rng.integers(0, len(NAME_TAIL), n),
                rng.integers(0, len(NAME_FORM), n),
                strict=True,
            )
        ]
    )
    return _Accounts(
        n=n,
        segment=segment,
        size=size,
        created_month=created_month,
        created_day=created_day,
        mu=rng.normal(0.3, 0.55, n) + 0.15 * size,
        adoption=rng.normal(0, 1, n),
        arr0=arr0,
        seat_price=seat_price,
        term0=term0,
        csm=rng.integers(0, n_csm, n),
        industry=rng.integers(0, len(INDUSTRIES), n),
        region=rng.choice(len(REGIONS), size=n, p=REGION_WEIGHT),
        name=name,
    )


def _add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    days = np.asarray(days).astype("datetime64[D]")
    dom = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(int)
    return (days.astype("datetime64[M]") + months).astype("datetime64[D]") + dom


# ---- intervention effects (the world's truth) ------------------------------------------------


def intervention_effects(
    health: np.ndarray,
    size: np.ndarray,
    adoption: np.ndarray,
    champion_recent: np.ndarray,
    budget: np.ndarray,
    recent_exec: np.ndarray,
    recent_review: np.ndarray,
) -> np.ndarray:
    """True effect of each intervention kind on latent health, shape (n, len(INTERVENTIONS)).

    Heterogeneous by construction: an exec call pays off in large accounts and after a champion
    left; a strategic review and an exec call are partly redundant; training helps where
    key-feature adoption is low; a CSM change helps a broken relationship and harms a good one
    (more so in large accounts); a discount helps under budget stress.
    """
    adopt_level = adoption + 0.5 * health
    exec_call = (0.08 + 0.30 * size + 0.30 * champion_recent) * np.where(recent_review, 0.5, 1.0)
    review = (0.04 + 0.30 * size) * np.where(recent_exec, 0.5, 1.0)
    training = 0.03 + 0.45 * expit(-2.0 * adopt_level)
    csm_change = -0.32 * np.tanh(1.5 * health) - 0.12 * size
    discount = 0.04 + 0.45 * np.minimum(budget, 1.0)
    return np.column_stack([exec_call, review, training, csm_change, discount])


# ---- the month-by-month simulation -------------------------------------------------------------


@dataclass
class _Decision:
    account: np.ndarray
    kind: np.ndarray
    reason: np.ndarray
    flag: np.ndarray
    effect: np.ndarray
    csm: np.ndarray


def _simulate(
    cfg: SyntheticConfig, cal: _Calendar, acc: _Accounts, rng: np.random.Generator
) -> _History:
    n, months = acc.n, cal.months
    specs = list(cfg.segments.values())
    base = np.array([s.renewal_base for s in specs])[acc.segment]
    sd_stationary = SIGMA / np.sqrt(1 - RHO**2)
    n_csm = int(acc.csm.max()) + 1

    health = np.full((n, months), np.nan)
    budget_hist = np.zeros((n, months))
    alive_hist = np.zeros((n, months), dtype=bool)
    seats_hist = np.zeros((n, months), dtype=np.int32)
    gone_hist = np.full((n, months), -1, dtype=np.int16)
    pending_hist = np.zeros((n, months))
    alive = np.zeros(n, dtype=bool)
    last_day = np.full(n, cal.month_start(months), dtype="datetime64[D]")
    h = np.zeros(n)
    budget = np.zeros(n)
    pending = np.zeros(n)
    champion_gone = np.full(n, -1)  # month the champion left; -1 while one is in place
    champion_back = np.full(n, -1)
    champion_aware = np.zeros(n, dtype=bool)
    last_kind = np.full((n, len(INTERVENTIONS)), -999)
    last_any = np.full(n, -999)
    last_discount = np.full(n, -999)
    csm = acc.csm.copy()

    c_start = acc.created_day.copy()
    c_term = acc.term0.copy()
    c_arr = acc.arr0.copy()
    c_seats = np.maximum(1, np.round(c_arr / acc.seat_price)).astype(np.int32)
    c_end = _add_months(c_start, c_term)
    c_end_month = cal.month_of(c_end)
    contract_rows: dict[str, list[np.ndarray]] = {
        k: [] for k in ("account", "start", "end", "arr", "seats", "renewed", "renewal_arr")
    }
    decisions: list[tuple[int, _Decision]] = []
    events: dict[str, list[np.ndarray]] = {k: [] for k in ("account", "day", "recorded", "back")}
    term_offset = np.vectorize(TERM_OFFSET.get, otypes=[float])

    for m in range(months):
        new = acc.created_month == m
        old = alive.copy()
        has_champion = champion_gone < 0
        champ = old & has_champion & (rng.random(n) < CHAMPION_HAZARD)
        cut = old & (rng.random(n) < BUDGET_HAZARD)
        eta = rng.normal(0, SIGMA, n)
        step = acc.mu + RHO * (h - acc.mu) + eta - CHAMPION_SHOCK * champ - BUDGET_SHOCK * cut
        h = np.where(old, step + pending, h)
        budget = np.where(old, BUDGET_DECAY * budget + cut, budget)
        h = np.where(new, acc.mu + rng.normal(0, sd_stationary, n), h)
        alive = alive | new
        pending = np.zeros(n)

        # a champion who leaves is recorded in the CRM 60 % of the time; the CSM hears of it 75 %
        if champ.any():
            idx = np.flatnonzero(champ)
            recorded = rng.random(idx.size) < 0.6
            back = m + rng.integers(3, 9, idx.size)
            events["account"].append(idx)
            events["day"].append(cal.month_start(m) + rng.integers(0, 28, idx.size))
            events["recorded"].append(recorded)
            events["back"].append(back)
            champion_gone[idx] = m
            champion_back[idx] = back
            champion_aware[idx] = recorded | (rng.random(idx.size) < 0.4)
        returned = (champion_gone >= 0) & (champion_back <= m)
        champion_gone = np.where(returned, -1, champion_gone)

        eligible = old & (acc.created_month < m)
        if eligible.any() and cfg.csm_capacity_per_month > 0:
            decision = _decide(
                m, eligible, h, budget, acc, csm, n_csm, cfg.csm_capacity_per_month, rng,
                champion_gone, champion_aware, c_end_month, last_kind, last_any,
            )  # fmt: skip
            if decision is not None:
                decisions.append((m, decision))
                np.add.at(pending, decision.account, decision.effect)
                last_kind[decision.account, decision.kind] = m
                last_any[decision.account] = m
                is_discount = decision.kind == INTERVENTIONS.index("discount")
                last_discount[decision.account[is_discount]] = m
                moved = decision.account[decision.kind == INTERVENTIONS.index("csm_change")]
                shift = 1 + rng.integers(0, max(n_csm - 1, 1), moved.size)
                csm[moved] = (csm[moved] + shift) % n_csm

        health[:, m] = np.where(alive, h, np.nan)
        budget_hist[:, m] = budget
        alive_hist[:, m] = alive
        seats_hist[:, m] = np.where(alive, c_seats, 0)
        gone_hist[:, m] = champion_gone
        pending_hist[:, m] = pending

        ending = np.flatnonzero(alive & (c_end_month == m))
        if ending.size == 0:
            continue
        i = ending
        z = (
            base[i]
            + term_offset(c_term[i])
            + BETA * h[i]
            + GAMMA_ADOPTION * acc.adoption[i]
            + rng.normal(0, 1, i.size)
        )
        renewed = z > 0
        discounted = m - last_discount[i] <= 6
        mult = _renewal_multiplier(h[i], acc.adoption[i], budget[i], discounted, renewed, rng)
        renewal_arr = np.round(c_arr[i] * mult, -1)
        for key, values in (
            ("account", i),
            ("start", c_start[i]),
            ("end", c_end[i]),
            ("arr", c_arr[i]),
            ("seats", c_seats[i]),
            ("renewed", renewed),
            ("renewal_arr", renewal_arr),
        ):
            contract_rows[key].append(values)
        stay = i[renewed]
        gap = np.where(rng.random(stay.size) < 0.8, 0, rng.integers(1, 15, stay.size))
        nxt = c_end[stay] + gap
        # keep start days on 1–28 so month arithmetic stays exact: day 29+ moves to the 1st
        month_start = nxt.astype("datetime64[M]")
        late = (nxt - month_start.astype("datetime64[D]")).astype(int) > 27
        nxt = np.where(late, (month_start + 1).astype("datetime64[D]"), nxt)
        switch = (c_term[stay] == 1) & (rng.random(stay.size) < 0.03)
        c_term[stay] = np.where(switch, 12, c_term[stay])
        c_start[stay] = nxt
        c_arr[stay] = renewal_arr[renewed]
        c_seats[stay] = np.maximum(1, np.round(c_arr[stay] / acc.seat_price[stay]))
        c_end[stay] = _add_months(nxt, c_term[stay])
        c_end_month[stay] = cal.month_of(c_end[stay])
        gone = i[~renewed]
        alive[gone] = False
        last_day[gone] = c_end[gone]

    running = np.flatnonzero(alive)
    decided_count = sum(a.size for a in contract_rows["account"])
    for key, values in (
        ("account", running),
        ("start", c_start[running]),
        ("end", c_end[running]),
        ("arr", c_arr[running]),
        ("seats", c_seats[running]),
        ("renewed", np.zeros(running.size, dtype=bool)),
        ("renewal_arr", np.full(running.size, np.nan)),
    ):
        contract_rows[key].append(values)
    contracts = {k: np.concatenate(v) for k, v in contract_rows.items()}
    contracts["decided"] = np.arange(contracts["account"].size) < decided_count

    def _cat(parts: list[np.ndarray], dtype: str) -> np.ndarray:
        return np.concatenate(parts) if parts else np.array([], dtype=dtype)

    interventions = {
        "account": _cat([d.account for _, d in decisions], "int64"),
        "month": _cat([np.full(d.account.size, m) for m, d in decisions], "int64"),
        "kind": _cat([d.kind for _, d in decisions], "int64"),
        "reason": _cat([d.reason for _, d in decisions], "int64"),
        "flag": _cat([d.flag for _, d in decisions], "int64"),
        "effect": _cat([d.effect for _, d in decisions], "float64"),
    }
    interventions["csm"] = _cat([d.csm for _, d in decisions], "int64")
    champion_events = {
        "account": _cat(events["account"], "int64"),
        "day": _cat(events["day"], "datetime64[D]"),
        "recorded": _cat(events["recorded"], "bool"),
        "back": _cat(events["back"], "int64"),
    }
    return _History(
        health=health,
        budget=budget_hist,
        alive=alive_hist,
        seats=seats_hist,
        champion_gone=gone_hist,
        pending=pending_hist,
        last_day=last_day,
        csm_final=csm,
        champion_events=champion_events,
        contracts=contracts,
        interventions=interventions,
    )


def _renewal_multiplier(
    health: np.ndarray,
    adoption: np.ndarray,
    budget: np.ndarray,
    discounted: np.ndarray,
    renewed: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Renewal ARR over ARR: 0 on churn; contraction, flat or expansion for the renewed."""
    u = health + 0.35 * adoption - 1.2 * budget + rng.normal(0, 0.45, health.size)
    expansion = np.exp(rng.normal(0.22, 0.12, health.size))
    contraction = np.exp(-np.abs(rng.normal(0.2, 0.1, health.size)))
    flat = 1 + rng.uniform(0, 0.025, health.size)
    mult = np.where(u > 0.95, expansion, np.where(u < -0.35, contraction, flat))
    mult = mult * np.where(discounted, 1 - DISCOUNT_SHARE, 1.0)
    return np.where(renewed, mult, 0.0)


def _decide(
    m: int,
    eligible: np.ndarray,
    h: np.ndarray,
    budget: np.ndarray,
    acc: _Accounts,
    csm: np.ndarray,
    n_csm: int,
    capacity: int,
    rng: np.random.Generator,
    champion_gone: np.ndarray,
    champion_aware: np.ndarray,
    contract_end_month: np.ndarray,
    last_kind: np.ndarray,
    last_any: np.ndarray,
) -> _Decision | None:
    """CSMs act on their *perception* of trouble, up to capacity: the source of confounding."""
    n = acc.n
    champion_recent = (champion_gone >= 0) & (m - champion_gone <= RECENT_MONTHS)
    knows_champion = champion_recent & champion_aware
    knows_budget = (budget > 0.3) & (rng.random(n) < 0.5)
    months_to_end = contract_end_month - m
    renewal_soon = (months_to_end >= 0) & (months_to_end <= 4)
    perceived = (
        -(h + rng.normal(0, 0.45, n)) + 1.3 * knows_champion + 0.9 * knows_budget + 0.35 * renewal_soon
    )
    cooldown = m - last_any <= 2
    act = eligible & ~cooldown & (perceived > 0.75)
    proactive = eligible & ~cooldown & ~act & renewal_soon & (rng.random(n) < 0.015)
    candidates = np.flatnonzero(act | proactive)
    if candidates.size == 0:
        return None
    urgency = np.where(act[candidates], perceived[candidates], -10.0)
    cand = candidates[np.lexsort((-urgency, csm[candidates]))]
    owner = csm[cand]
    rank = np.arange(cand.size) - np.searchsorted(owner, owner)
    chosen = cand[rank < capacity]

    adopt_level = acc.adoption[chosen] + 0.5 * h[chosen]
    reason = np.select(
        [
            ~act[chosen],
            knows_champion[chosen],
            knows_budget[chosen],
            renewal_soon[chosen],
            adopt_level < -0.3,
        ],
        [5, 0, 1, 2, 3],
        default=4,
    )
    probs = KIND_GIVEN_REASON[reason]
    kind = (rng.random(chosen.size)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    kind = np.minimum(kind, len(INTERVENTIONS) - 1)
    repeat = m - last_kind[chosen, kind] <= 3
    kind = np.where(repeat, probs.argsort(axis=1, kind="stable")[:, -2], kind)
    recent = m - last_kind[chosen] <= 3
    effects = intervention_effects(
        h[chosen],
        acc.size[chosen],
        acc.adoption[chosen],
        champion_recent[chosen].astype(float),
        budget[chosen],
        recent[:, 0],
        recent[:, 1],
    )
    flag = np.where(~act[chosen], 0, np.where(perceived[chosen] > 1.4, 2, 1))
    return _Decision(
        account=chosen,
        kind=kind,
        reason=reason,
        flag=flag,
        effect=effects[np.arange(chosen.size), kind],
        csm=csm[chosen],
    )


# ---- the oracle ------------------------------------------------------------------------------------


def as_of_grid(start: np.datetime64, end: np.datetime64, frequency: str) -> np.ndarray:
    """The regular as-of grid (inclusive of both ends when they fall on it)."""
    freq = {"weekly": "W-MON", "monthly": "MS", "quarterly": "QS"}[frequency]
    dates = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=freq)
    return dates.values.astype("datetime64[D]")


def future_health(
    health_now: np.ndarray,
    mu: np.ndarray,
    steps: np.ndarray,
    pending: np.ndarray,
    has_champion: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of health ``steps`` months ahead, with no new interventions.

    Exact for the Gaussian innovations; future shocks enter by their mean and variance.
    ``pending`` is effect already decided that lands in the first of those months.
    """
    steps = np.maximum(steps, 0)
    decay = RHO**steps
    geo1 = (1 - decay) / (1 - RHO)
    geo2 = (1 - RHO ** (2 * steps)) / (1 - RHO**2)
    lam_c = CHAMPION_HAZARD * has_champion
    shock_mean = lam_c * CHAMPION_SHOCK + BUDGET_HAZARD * BUDGET_SHOCK
    shock_var = (
        lam_c * (1 - lam_c) * CHAMPION_SHOCK**2
        + BUDGET_HAZARD * (1 - BUDGET_HAZARD) * BUDGET_SHOCK**2
    )
    landed = np.where(steps >= 1, RHO ** np.maximum(steps - 1, 0), 0.0) * pending
    mean = mu + decay * (health_now - mu) + landed - shock_mean * geo1
    var = SIGMA**2 * geo2 + shock_var * geo2
    return mean, var


def renewal_probability(
    base: np.ndarray,
    adoption: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """P(renewed) when health at the decision is N(mean + shift, var) (probit link)."""
    z = base + BETA * (mean + shift) + GAMMA_ADOPTION * adoption
    return ndtr(z / np.sqrt(1 + BETA**2 * var))


def _oracle(
    cfg: SyntheticConfig,
    features: FeaturesConfig,
    cal: _Calendar,
    acc: _Accounts,
    hist: _History,
    contract_ids: np.ndarray,
    account_ids: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """True renewal probability per snapshot, and the true effect of each play at that as_of."""
    con = hist.contracts
    horizon = np.timedelta64(features.horizon_days, "D")
    base_seg = np.array([s.renewal_base for s in cfg.segments.values()])
    term = (con["end"].astype("datetime64[M]") - con["start"].astype("datetime64[M]")).astype(int)
    term_offset = np.vectorize(lambda t: TERM_OFFSET.get(t, 0.0), otypes=[float])(term)
    inter = hist.interventions
    snapshots, effects = [], []
    for as_of in as_of_grid(cal.start, cal.end, features.frequency):
        sel = np.flatnonzero(
            (con["start"] <= as_of) & (con["end"] > as_of) & (con["end"] <= as_of + horizon)
        )
        if sel.size == 0:
            continue
        a = con["account"][sel]
        m0 = int(cal.month_of(np.array([as_of]))[0])
        known = m0 - 1  # the state at as_of: the last full month before it
        h_now = hist.health[a, known]
        ok = ~np.isnan(h_now)
        sel, a, h_now = sel[ok], a[ok], h_now[ok]
        end_m = cal.month_of(con["end"][sel])
        has_champion = hist.champion_gone[a, known] < 0
        base = base_seg[acc.segment[a]] + term_offset[sel]
        mean, var = future_health(
            h_now, acc.mu[a], end_m - known, hist.pending[a, known], has_champion
        )
        p = renewal_probability(base, acc.adoption[a], mean, var)
        ids = account_ids[a]
        as_of_col = np.full(sel.size, as_of)
        snapshots.append(
            pd.DataFrame(
                {
                    "account_id": ids,
                    "as_of": as_of_col,
                    "contract_id": contract_ids[sel],
                    "end_date": con["end"][sel],
                    "p_renew": p,
                    "renewed": con["renewed"][sel],
                    "arr": con["arr"][sel],
                    "renewal_arr": con["renewal_arr"][sel],
                }
            )
        )
        recent = np.zeros((a.size, len(INTERVENTIONS)), dtype=bool)
        if inter["account"].size:
            lookup = pd.Series(np.arange(a.size), index=a)
            window = (inter["month"] <= known) & (known - inter["month"] <= 3)
            hit = np.isin(inter["account"], a) & window
            rows = lookup.reindex(inter["account"][hit]).to_numpy()
            recent[rows, inter["kind"][hit]] = True
        gone = hist.champion_gone[a, known]
        tau = intervention_effects(
            h_now,
            acc.size[a],
            acc.adoption[a],
            ((gone >= 0) & (known - gone <= RECENT_MONTHS)).astype(float),
            hist.budget[a, known],
            recent[:, 0],
            recent[:, 1],
        )
        # a play started at as_of moves health from the month after (EFFECT_LAG)
        lead = end_m - (m0 + EFFECT_LAG)
        reach = np.where(lead >= 0, RHO ** np.maximum(lead, 0), 0.0)
        for k, kind in enumerate(INTERVENTIONS):
            p_k = renewal_probability(base, acc.adoption[a], mean, var, reach * tau[:, k])
            effects.append(
                pd.DataFrame(
                    {
                        "account_id": ids,
                        "as_of": as_of_col,
                        "intervention": kind,
                        "effect_health": tau[:, k],
                        "effect": p_k - p,
                    }
                )
            )
    return pd.concat(snapshots, ignore_index=True), pd.concat(effects, ignore_index=True)


# ---- tables ------------------------------------------------------------------------------------


@dataclass
class _Context:
    """Everything the table builders read: the calendar, accounts, latent history and ids."""

    cfg: SyntheticConfig
    cal: _Calendar
    acc: _Accounts
    hist: _History
    account_ids: np.ndarray
    account_ids_arrow: pa.Array
    contact_offset: np.ndarray  # first contact index of each account
    contact_count: np.ndarray
    contact_ids: np.ndarray


def _rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every unit in a matrix of counts."""
    flat = counts.ravel()
    cell = np.repeat(np.arange(flat.size), flat)
    return cell // counts.shape[1], cell % counts.shape[1]


def _days(
    cal: _Calendar, month: np.ndarray, rng: np.random.Generator, weekdays: bool = True
) -> np.ndarray:
    """A day in each month; business days are far likelier than weekends when ``weekdays``."""
    first = cal.month_start(month)
    span = cal.month_days(month)
    day = first + (rng.random(month.size) * span).astype(int)
    if weekdays:
        for _ in range(4):
            weekday = (day.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thu
            redo = rng.random(month.size) > WEEKDAY_WEIGHT[weekday] / WEEKDAY_WEIGHT.max()
            if not redo.any():
                break
            day = np.where(redo, first + (rng.random(month.size) * span).astype(int), day)
    return day


def _stamp(day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Timestamps (µs) on the given days, around business hours UTC."""
    seconds = np.clip(rng.normal(14.5 * 3600, 3.2 * 3600, day.size), 0, 86_399).astype(int)
    return day.astype("datetime64[us]") + seconds.astype("timedelta64[s]")


def _in_life(ctx: _Context, a: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Rows that fall inside the event history and the account's life as a customer."""
    global_a = a
    return (
        (day >= ctx.cal.start)
        & (day < ctx.cal.end)
        & (day >= ctx.acc.created_day[global_a])
        & (day < ctx.hist.last_day[global_a])
    )


def _ts_array(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("datetime64[us]"), pa.timestamp("us")).cast(
        pa.timestamp("us", tz="UTC")
    )


def _ids(ctx: _Context, account: np.ndarray) -> pa.Array:
    return pc.take(ctx.account_ids_arrow, pa.array(account))


def _sequence_ids(ids: pa.Array, account: np.ndarray, infix: str) -> pa.Array:
    """Ids unique within the world: the account id, an infix and a sequence per account.

    ``account`` must be sorted so that each account's rows are contiguous.
    """
    first = np.searchsorted(account, account)
    seq = pa.array(np.arange(account.size) - first + 1).cast(pa.string())
    return pc.binary_join_element_wise(ids, seq, infix)


def _history_months(ctx: _Context) -> slice:
    return slice(ctx.cal.start_month, ctx.cal.end_month + 1)


def _usage(ctx: _Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    cal, acc, hist = ctx.cal, ctx.acc, ctx.hist
    months = _history_months(ctx)
    h = np.nan_to_num(hist.health[chunk, months], nan=0.0)
    seats = hist.seats[chunk, months]
    moy = (cal.first_month + np.arange(cal.months)[months]).astype(int) % 12
    rate = ctx.cfg.usage_sessions_per_seat * seats**0.8 * np.exp(0.45 * h) * SEASON[moy]
    counts = rng.poisson(np.where(hist.alive[chunk, months], rate, 0.0))
    r, c = _rows(counts)
    a = chunk[r]
    month = c + months.start
    hr = h[r, c]
    day = _days(cal, month, rng)
    keep = _in_life(ctx, a, day)
    a, month, hr, day, seats_r = a[keep], month[keep], hr[keep], day[keep], seats[r, c][keep]
    # key features are used in proportion to adoption; the rest is volume
    key = np.isin(np.array(EVENT_TYPES), KEY_EVENT_TYPES)
    lift = 2 * expit(acc.adoption[a] + 0.8 * hr - 0.3)
    weight = np.where(key[None, :], EVENT_BASE_WEIGHT * lift[:, None], EVENT_BASE_WEIGHT)
    cum = (weight / weight.sum(axis=1, keepdims=True)).cumsum(axis=1)
    etype = np.minimum((rng.random(a.size)[:, None] > cum).sum(axis=1), len(EVENT_TYPES) - 1)
    pool = np.maximum(1, np.round(seats_r * expit(-0.2 + 1.2 * hr))).astype(int)
    user = (pool * rng.random(a.size) ** 2).astype(int)  # a few power users do most of it
    quantity = 1 + rng.poisson(EVENT_MEAN_QUANTITY[etype] * np.exp(0.2 * hr))
    ts = _stamp(day, rng)
    order = np.lexsort((ts.astype(np.int64), a))
    ids = _ids(ctx, a[order])
    user_ids = pc.binary_join_element_wise(ids, pa.array(user[order] + 1).cast(pa.string()), "-u")
    return pa.table(
        {
            "account_id": ids,
            "ts": _ts_array(ts[order]),
            "event_type": pa.array(np.array(EVENT_TYPES)[etype[order]]),
            "user_id": user_ids,
            "quantity": pa.array(quantity[order].astype(np.int64)),
        }
    )


def _pick_contact(ctx: _Context, a: np.ndarray, rng: np.random.Generator) -> pa.Array:
    count = ctx.contact_count[a]
    pick = ctx.contact_offset[a] + (rng.random(a.size) * np.maximum(count, 1)).astype(int)
    values = pa.array(ctx.contact_ids).take(pa.array(np.minimum(pick, len(ctx.contact_ids) - 1)))
    return pc.if_else(pa.array(count > 0), values, pa.scalar(None, pa.string()))


def _monthly(ctx: _Context, chunk: np.ndarray, rate: np.ndarray, rng: np.random.Generator):  # noqa: ANN202
    """Rows from a Poisson rate per (account, history month): account, month, health, day."""
    months = _history_months(ctx)
    counts = rng.poisson(np.where(ctx.hist.alive[chunk, months], rate, 0.0))
    r, c = _rows(counts)
    a, month = chunk[r], c + months.start
    h = np.nan_to_num(ctx.hist.health[a, month], nan=0.0)
    day = _days(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    return a[keep], month[keep], h[keep], day[keep]


def _chunk_health(ctx: _Context, chunk: np.ndarray) -> np.ndarray:
    return np.nan_to_num(ctx.hist.health[chunk, _history_months(ctx)], nan=0.0)


def _tickets(ctx: _Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    h = _chunk_health(ctx, chunk)
    seats = ctx.hist.seats[chunk, _history_months(ctx)]
    budget = ctx.hist.budget[chunk, _history_months(ctx)]
    rate = 0.12 * np.sqrt(np.maximum(seats, 1)) * np.exp(-0.45 * h) + 0.1 * budget
    a, _month, h, day = _monthly(ctx, chunk, rate, rng)
    tilt = np.exp(-0.5 * h)[:, None] * np.array([0.0, 0.0, 1.0, 1.0])
    weight = np.array([0.3, 0.45, 0.18, 0.07]) * np.where(tilt > 0, tilt, 1.0)
    cum = (weight / weight.sum(axis=1, keepdims=True)).cumsum(axis=1)
    priority = np.minimum((rng.random(a.size)[:, None] > cum).sum(axis=1), 3)
    opened = _stamp(day, rng)
    median_hours = np.array([96.0, 48.0, 24.0, 8.0])[priority] * np.exp(-0.25 * h)
    hours = median_hours * np.exp(rng.normal(0, 0.8, a.size))
    closed = opened + (hours * 3600).astype("timedelta64[s]")
    still_open = (rng.random(a.size) < 0.02) | (closed >= ctx.cal.end.astype("datetime64[us]"))
    answered = ~still_open & (rng.random(a.size) < 0.45)
    csat = np.clip(np.round(3.9 + 0.6 * h - 0.15 * priority + rng.normal(0, 0.8, a.size)), 1, 5)
    order = np.lexsort((opened.astype(np.int64), a))
    ids = _ids(ctx, a[order])
    return pa.table(
        {
            "ticket_id": _sequence_ids(ids, a[order], "-t"),
            "account_id": ids,
            "opened_at": _ts_array(opened[order]),
            "closed_at": pa.array(
                closed[order].astype("datetime64[us]"), pa.timestamp("us"), mask=still_open[order]
            ).cast(pa.timestamp("us", tz="UTC")),
            "priority": pa.array(np.array(PRIORITIES)[priority[order]]),
            "csat": pa.array(csat[order], mask=~answered[order]),
        }
    )


def _surveys(ctx: _Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    months = _history_months(ctx)
    month_index = np.arange(ctx.cal.months)[months]
    quarterly = (month_index[None, :] - ctx.acc.created_month[chunk, None]) % 3 == 2
    recipients = 1 + (ctx.acc.size[chunk] >= 0.5) + (ctx.acc.size[chunk] >= 1.0)
    counts = np.where(ctx.hist.alive[chunk, months] & quarterly, recipients[:, None], 0)
    r, c = _rows(counts)
    a, month = chunk[r], c + months.start
    h = np.nan_to_num(ctx.hist.health[a, month], nan=0.0)
    day = _days(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    a, h, day = a[keep], h[keep], day[keep]
    sent = _stamp(day, rng)
    delay = (rng.exponential(4.0, a.size) * 86_400).astype("timedelta64[s]")
    responded_at = sent + delay
    answered = (rng.random(a.size) < expit(0.1 + 1.1 * h)) & (
        responded_at < ctx.cal.end.astype("datetime64[us]")
    )
    score = np.clip(np.round(7.2 + 1.7 * h + rng.normal(0, 1.6, a.size)), 0, 10)
    order = np.lexsort((sent.astype(np.int64), a))
    return pa.table(
        {
            "account_id": _ids(ctx, a[order]),
            "sent_at": _ts_array(sent[order]),
            "contact_id": _pick_contact(ctx, a[order], rng),
            "responded_at": pa.array(
                responded_at[order].astype("datetime64[us]"),
                pa.timestamp("us"),
                mask=~answered[order],
            ).cast(pa.timestamp("us", tz="UTC")),
            "score": pa.array(score[order], mask=~answered[order]),
        }
    )


def _activities(ctx: _Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    h = _chunk_health(ctx, chunk)
    size = ctx.acc.size[chunk, None]
    months = _history_months(ctx)
    month_index = np.arange(ctx.cal.months)[months]
    quarter = (month_index[None, :] - ctx.acc.created_month[chunk, None]) % 3 == 1
    half = (month_index[None, :] - ctx.acc.created_month[chunk, None]) % 6 == 1
    kinds = (
        # (type, direction, rate, answered-probability or None)
        ("email", "outbound", 2.0 + 3.0 * size + 0 * h, expit(0.3 + 1.2 * h)),
        ("email", "inbound", (0.8 + 1.5 * size) * np.exp(0.3 * h), None),
        ("call", "outbound", 0.5 + 1.0 * size + 0 * h, expit(0.2 + 1.0 * h)),
        ("meeting", "outbound", (0.4 + 1.2 * size) * expit(1.0 + h), None),
        ("qbr", "outbound", np.where(quarter & (size >= 0.5), expit(0.8 + 1.2 * h), 0.0), None),
        ("ebr", "outbound", np.where(half & (size >= 1.0), expit(0.5 + h), 0.0), None),
    )
    parts = []
    for kind, direction, rate, answer in kinds:
        a, month, _h, day = _monthly(ctx, chunk, np.broadcast_to(rate, h.shape), rng)
        if answer is not None:
            p = np.broadcast_to(answer, h.shape)[
                np.searchsorted(chunk, a), month - months.start
            ]
            responded = pa.array(rng.random(a.size) < p)
        else:
            responded = pa.nulls(a.size, pa.bool_())
        parts.append((a, _stamp(day, rng), kind, direction, responded))
    a = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ts.astype(np.int64), a))
    table = pa.table(
        {
            "account_id": _ids(ctx, a),
            "ts": _ts_array(ts),
            "type": pa.array(np.concatenate([np.full(p[0].size, p[2]) for p in parts])),
            "direction": pa.array(np.concatenate([np.full(p[0].size, p[3]) for p in parts])),
            "contact_id": _pick_contact(ctx, a, rng),
            "responded": pa.concat_arrays([p[4] for p in parts]),
        }
    )
    return table.take(pa.array(order))


def _sentiment(ctx: _Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    months = _history_months(ctx)
    updated = rng.random((chunk.size, months.stop - months.start)) < 0.8
    counts = (ctx.hist.alive[chunk, months] & updated).astype(int)
    r, c = _rows(counts)
    a, month = chunk[r], c + months.start
    # CSMs see reality late: the rating follows health two months back
    lagged = ctx.hist.health[a, np.maximum(month - 2, 0)]
    lagged = np.where(np.isnan(lagged), ctx.hist.health[a, month], lagged)
    rating = np.clip(np.round(3 + 1.3 * np.nan_to_num(lagged) + rng.normal(0, 0.7, a.size)), 1, 5)
    day = _days(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    a, rating, day = a[keep], rating[keep].astype(int), day[keep]
    note_pick = rng.integers(0, 3, a.size)
    has_note = rng.random(a.size) < 0.3
    notes = np.array([SENTIMENT_NOTES[int(r)][k] for r, k in zip(rating, note_pick, strict=True)])
    ts = _stamp(day, rng)
    order = np.lexsort((ts.astype(np.int64), a))
    return pa.table(
        {
            "account_id": _ids(ctx, a[order]),
            "ts": _ts_array(ts[order]),
            "rating": pa.array(rating[order].astype(np.int64)),
            "note": pa.array(notes[order], mask=~has_note[order]),
        }
    )


def _accounts_table(ctx: _Context) -> pa.Table:
    acc = ctx.acc
    segments = np.array(list(ctx.cfg.segments))
    tier = np.full(acc.n, "tier_3", dtype=object)
    for k in range(segments.size):
        idx = np.flatnonzero(acc.segment == k)
        if idx.size:
            rank = acc.arr0[idx].argsort().argsort() / max(idx.size - 1, 1)
            tier[idx] = np.where(rank >= 2 / 3, "tier_1", np.where(rank >= 1 / 3, "tier_2", "tier_3"))
    return pa.table(
        {
            "account_id": ctx.account_ids_arrow,
            "name": pa.array(acc.name),
            "segment": pa.array(segments[acc.segment]),
            "created_at": _ts_array(_stamp(acc.created_day, np.random.default_rng(ctx.cfg.seed))),
            "industry": pa.array(np.array(INDUSTRIES)[acc.industry]),
            "region": pa.array(np.array(REGIONS)[acc.region]),
            "csm_id": pa.array([f"csm_{c:03d}" for c in ctx.hist.csm_final]),
            "tier": pa.array(tier.astype(str)),
        }
    )


def _contract_frame(ctx: _Context) -> pd.DataFrame:
    """All simulated contracts in id order; ``in_data`` marks those the CRM holds at the end."""
    con = ctx.hist.contracts
    frame = pd.DataFrame(
        {
            "index": np.arange(con["account"].size),
            "account": con["account"],
            "start": con["start"],
            "end": con["end"],
            "arr": con["arr"],
            "seats": con["seats"].astype(np.int64),
            "renewed": con["renewed"],
            "renewal_arr": con["renewal_arr"],
            "decided": con["decided"],
        }
    ).sort_values(["account", "start"], kind="stable")
    frame["seq"] = frame.groupby("account").cumcount() + 1
    frame["contract_id"] = ctx.account_ids[frame["account"]] + "-k" + frame["seq"].astype(str)
    frame["in_data"] = frame["start"] <= ctx.cal.end
    frame["known"] = frame["decided"] & (frame["end"] < ctx.cal.end)
    return frame


def _contracts_table(frame: pd.DataFrame, ctx: _Context) -> pa.Table:
    rows = frame[frame["in_data"]]
    known = rows["known"].to_numpy()
    return pa.table(
        {
            "contract_id": pa.array(rows["contract_id"].to_numpy()),
            "account_id": _ids(ctx, rows["account"].to_numpy()),
            "start_date": pa.array(rows["start"].to_numpy().astype("datetime64[D]"), pa.date32()),
            "end_date": pa.array(rows["end"].to_numpy().astype("datetime64[D]"), pa.date32()),
            "arr": pa.array(rows["arr"].to_numpy(dtype=float)),
            "seats": pa.array(rows["seats"].to_numpy()),
            "renewed": pa.array(rows["renewed"].to_numpy(), mask=~known),
            "renewal_arr": pa.array(rows["renewal_arr"].to_numpy(dtype=float), mask=~known),
        }
    )


def _contacts(ctx: _Context, rng: np.random.Generator) -> pd.DataFrame:
    """Contacts by persona; champions who leave are replaced months later (the CRM lags)."""
    acc, cal = ctx.acc, ctx.cal
    size = acc.size
    per_persona = np.column_stack(
        [
            np.ones(acc.n, dtype=int),
            1 + ((size >= 1.0) & (rng.random(acc.n) < 0.5)),
            np.ones(acc.n, dtype=int),
            rng.poisson(1 + 2 * size),
            rng.poisson(1 + 4 * size),
            rng.poisson(0.5, acc.n),
        ]
    )
    a, persona = _rows(per_persona)
    joined = acc.created_day[a] + np.where(
        persona <= 2, rng.integers(0, 45, a.size), rng.integers(0, 365, a.size)
    )
    tenure = (rng.exponential(50.0, a.size) * 30.4).astype(int)
    left = joined + tenure
    left_known = (persona != 1) & (rng.random(a.size) < 0.85)
    initial = pd.DataFrame(
        {"account": a, "persona": persona, "joined": joined, "left": left, "left_known": left_known}
    )
    initial["order"] = initial.groupby("account").cumcount()

    ev = ctx.hist.champion_events
    events = pd.DataFrame(
        {"account": ev["account"], "day": ev["day"], "recorded": ev["recorded"], "back": ev["back"]}
    ).sort_values(["account", "day"], kind="stable")
    events["j"] = events.groupby("account").cumcount()
    replacements = pd.DataFrame(
        {
            "account": events["account"].to_numpy(),
            "persona": 1,
            "joined": cal.month_start(events["back"].to_numpy()) + rng.integers(0, 28, len(events)),
            "left": np.datetime64("NaT", "D"),
            "left_known": False,
            "order": 10_000 + events["j"].to_numpy(),
        }
    )
    contacts = pd.concat([initial, replacements], ignore_index=True)
    # the j-th departure is of the first champion (j = 0) or of the (j−1)-th replacement
    first_champion = initial[initial["persona"] == 1].groupby("account")["order"].min()
    leaver_order = np.where(
        events["j"].to_numpy() == 0,
        first_champion.reindex(events["account"]).to_numpy(),
        10_000 + events["j"].to_numpy() - 1,
    )
    key = pd.MultiIndex.from_arrays([events["account"].to_numpy(), leaver_order])
    departures = pd.DataFrame(
        {"day": events["day"].to_numpy(), "recorded": events["recorded"].to_numpy()}, index=key
    )
    at = pd.MultiIndex.from_arrays([contacts["account"].to_numpy(), contacts["order"].to_numpy()])
    hit = departures.reindex(at)
    is_champion_row = contacts["persona"].to_numpy() == 1
    left = np.where(
        is_champion_row, hit["day"].to_numpy().astype("datetime64[D]"), contacts["left"].to_numpy()
    )
    left_known = np.where(
        is_champion_row, hit["recorded"].fillna(False).to_numpy(dtype=bool), contacts["left_known"]
    )
    contacts = contacts.assign(left=left, left_known=left_known)
    contacts = contacts[contacts["joined"].to_numpy() < cal.end]
    contacts = contacts.sort_values(["account", "joined", "persona", "order"], kind="stable")
    contacts["contact_id"] = (
        ctx.account_ids[contacts["account"]] + "-c" + (contacts.groupby("account").cumcount() + 1).astype(str)
    )
    visible = contacts["left_known"].to_numpy() & (contacts["left"].to_numpy() < cal.end)
    return contacts.assign(left_visible=visible).reset_index(drop=True)


def _contacts_table(contacts: pd.DataFrame, ctx: _Context, rng: np.random.Generator) -> pa.Table:
    return pa.table(
        {
            "contact_id": pa.array(contacts["contact_id"].to_numpy()),
            "account_id": _ids(ctx, contacts["account"].to_numpy()),
            "persona": pa.array(np.array(PERSONAS)[contacts["persona"].to_numpy()]),
            "created_at": _ts_array(_stamp(contacts["joined"].to_numpy(), rng)),
            "left_at": pa.array(
                _stamp(contacts["left"].to_numpy().astype("datetime64[D]"), rng),
                pa.timestamp("us"),
                mask=~contacts["left_visible"].to_numpy(),
            ).cast(pa.timestamp("us", tz="UTC")),
        }
    )


def _invoices(frame: pd.DataFrame, ctx: _Context, rng: np.random.Generator) -> pa.Table:
    rows = frame[frame["in_data"]]
    term = (
        rows["end"].to_numpy().astype("datetime64[M]") - rows["start"].to_numpy().astype("datetime64[M]")
    ).astype(int)
    account = rows["account"].to_numpy()
    period = np.where(term <= 1, 1, np.where(ctx.acc.size[account] >= 1.0, 3, 12))
    period = np.minimum(period, np.maximum(term, 1))
    per_contract = np.maximum(term // period, 1)
    contract = np.repeat(np.arange(len(rows)), per_contract)
    k = np.arange(contract.size) - np.searchsorted(contract, contract)
    a = account[contract]
    issued = _add_months(rows["start"].to_numpy()[contract], k * period[contract])
    keep = issued < ctx.cal.end
    contract, a, issued = contract[keep], a[keep], issued[keep]
    due = issued + 30
    due_month = np.minimum(ctx.cal.month_of(due), ctx.cal.months - 1)
    stress = ctx.hist.budget[a, due_month]
    h = np.nan_to_num(ctx.hist.health[a, due_month], nan=0.0)
    delay = np.round(rng.normal(-3, 6, a.size) + 40 * stress + 15 * (h < -0.8)).astype(int)
    paid = due + np.maximum(delay, -25)
    unpaid = paid >= ctx.cal.end
    amount = np.round(rows["arr"].to_numpy()[contract] * period[contract] / 12, 2)
    return pa.table(
        {
            "account_id": _ids(ctx, a),
            "due_date": pa.array(due.astype("datetime64[D]"), pa.date32()),
            "amount": pa.array(amount),
            "paid_date": pa.array(paid.astype("datetime64[D]"), pa.date32(), mask=unpaid),
        }
    )


def _opportunities(frame: pd.DataFrame, ctx: _Context, rng: np.random.Generator) -> pa.Table:
    acc, cal, hist = ctx.acc, ctx.cal, ctx.hist
    chunk = np.arange(acc.n)
    h = _chunk_health(ctx, chunk)
    upsell_rate = 0.03 * expit(2 * h + acc.adoption[:, None]) * (1 + acc.size[:, None])
    parts = []
    for kind, rate, share in (("upsell", upsell_rate, (0.1, 0.4)), ("cross-sell", upsell_rate / 2, (0.05, 0.2))):
        a, month, hr, day = _monthly(ctx, chunk, rate, rng)
        created = _stamp(day, rng)
        won = rng.random(a.size) < expit(0.3 + hr)
        closed = created + (rng.integers(20, 100, a.size) * 86_400).astype("timedelta64[s]")
        arr = hist.seats[a, month] * acc.seat_price[a]
        amount = np.round(arr * rng.uniform(*share, a.size), -1)
        parts.append(pd.DataFrame({"a": a, "created": created, "type": kind, "amount": amount,
                                   "closed": closed, "won": won}))  # fmt: skip
    rows = frame[frame["in_data"] & (frame["end"] - frame["start"] >= np.timedelta64(300, "D"))]
    created = rows["end"].to_numpy().astype("datetime64[D]") - 90
    ok = (created < cal.end) & (created >= rows["start"].to_numpy())
    rows = rows[ok]
    parts.append(
        pd.DataFrame(
            {
                "a": rows["account"].to_numpy(),
                "created": _stamp(created[ok], rng),
                "type": "renewal",
                "amount": rows["arr"].to_numpy(),
                "closed": rows["end"].to_numpy().astype("datetime64[us]"),
                "won": rows["renewed"].to_numpy(dtype=bool),
            }
        )
    )
    opp = pd.concat(parts, ignore_index=True).sort_values(["a", "created"], kind="stable")
    still_open = (opp["closed"] >= np.datetime64(cal.end, "us")).to_numpy()
    stage = np.where(still_open, "open", np.where(opp["won"], "closed_won", "closed_lost"))
    return pa.table(
        {
            "account_id": _ids(ctx, opp["a"].to_numpy()),
            "created_at": _ts_array(opp["created"].to_numpy()),
            "type": pa.array(opp["type"].to_numpy().astype(str)),
            "amount": pa.array(opp["amount"].to_numpy(dtype=float)),
            "closed_at": pa.array(
                opp["closed"].to_numpy().astype("datetime64[us]"), pa.timestamp("us"), mask=still_open
            ).cast(pa.timestamp("us", tz="UTC")),
            "stage": pa.array(stage),
        }
    )


def _interventions(ctx: _Context, rng: np.random.Generator) -> pa.Table:
    inter = ctx.hist.interventions
    a, month = inter["account"], inter["month"]
    day = _days(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    ts = _stamp(day, rng)
    kind = np.array(INTERVENTIONS)[inter["kind"]]
    arr = ctx.hist.seats[a, month] * ctx.acc.seat_price[a]
    cost = np.where(
        kind == "discount",
        np.round(arr * DISCOUNT_SHARE, -1),
        np.vectorize(lambda k: INTERVENTION_COST.get(k, CSM_CHANGE_COST), otypes=[float])(kind),
    )
    order = np.lexsort((ts.astype(np.int64), a))
    order = order[keep[order]]
    return pa.table(
        {
            "account_id": _ids(ctx, a[order]),
            "ts": _ts_array(ts[order]),
            "type": pa.array(kind[order]),
            "cost": pa.array(cost[order]),
            "risk_flag": pa.array(np.array(["green", "yellow", "red"])[inter["flag"][order]]),
            "reason": pa.array(np.array(REASONS)[inter["reason"][order]]),
            "decided_by": pa.array(np.array([f"csm_{c:03d}" for c in inter["csm"][order]], dtype=str)),
        }
    )


# ---- the world, written ----------------------------------------------------------------------

CHUNKED: dict[str, Callable[[_Context, np.ndarray, np.random.Generator], pa.Table]] = {
    "usage_events": _usage,
    "support_tickets": _tickets,
    "surveys": _surveys,
    "activities": _activities,
    "sentiment": _sentiment,
}
TABLE_ORDER = (
    "accounts",
    "contracts",
    "usage_events",
    "support_tickets",
    "surveys",
    "activities",
    "contacts",
    "sentiment",
    "invoices",
    "opportunities",
    "interventions",
)


class _TableWriter:
    """Streams chunks of one table to Parquet or CSV with one fixed schema."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path.with_suffix(f".{fmt}")
        self.fmt = fmt
        self.schema: pa.Schema | None = None
        self.writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
            if self.fmt == "parquet":
                self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
            else:
                self.writer = pacsv.CSVWriter(self.path, self.schema)
        table = table.cast(self.schema)
        assert self.writer is not None
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> int:
        if self.writer is not None:
            self.writer.close()
        return self.rows


def _write(table: pa.Table, path: Path, fmt: str) -> int:
    writer = _TableWriter(path, fmt)
    writer.write(table)
    return writer.close()


def _seed(cfg: SyntheticConfig, *stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *stream])


def simulate_world(cfg: SyntheticConfig, features: FeaturesConfig) -> _Context:
    """Run the latent simulation (accounts, health, contracts, CSM decisions) in memory."""
    cal = _calendar(cfg, features)
    acc = _make_accounts(cfg, cal, _seed(cfg, 1))
    hist = _simulate(cfg, cal, acc, _seed(cfg, 2))
    width = max(6, len(str(acc.n)))
    account_ids = np.char.add("A", np.char.zfill(np.arange(1, acc.n + 1).astype(str), width))
    ctx = _Context(
        cfg=cfg,
        cal=cal,
        acc=acc,
        hist=hist,
        account_ids=account_ids.astype(object),
        account_ids_arrow=pa.array(account_ids),
        contact_offset=np.zeros(acc.n, dtype=int),
        contact_count=np.zeros(acc.n, dtype=int),
        contact_ids=np.array([], dtype=object),
    )
    return ctx


def write_world(
    cfg: SyntheticConfig,
    features: FeaturesConfig,
    raw_dir: Path,
    oracle_dir: Path,
    progress: Callable[[str, int], None] | None = None,
) -> WorldSummary:
    """Simulate the world and write its raw tables to ``raw_dir`` and its truth to ``oracle_dir``.

    Both folders are replaced atomically: a failure leaves the previous world intact.

    Args:
        cfg: scale, segments and seed of the world.
        features: the snapshot grid and horizon the oracle is written on.
        raw_dir: destination of the eleven data-contract tables.
        oracle_dir: destination of the truth (evaluation code only).
        progress: called with (step name, units done) as work advances.
    """
    tick = progress or (lambda _name, _n: None)
    ctx = simulate_world(cfg, features)
    tick("simulate", 1)
    rows: dict[str, int] = {}
    fmt = cfg.format
    with atomic_directory(raw_dir) as raw, atomic_directory(oracle_dir) as truth:
        contracts = _contract_frame(ctx)
        contacts = _contacts(ctx, _seed(cfg, 3))
        first = np.searchsorted(contacts["account"].to_numpy(), np.arange(ctx.acc.n))
        ctx.contact_offset = first
        ctx.contact_count = np.diff(np.append(first, len(contacts)))
        ctx.contact_ids = contacts["contact_id"].to_numpy()

        rows["accounts"] = _write(_accounts_table(ctx), raw / "accounts", fmt)
        rows["contracts"] = _write(_contracts_table(contracts, ctx), raw / "contracts", fmt)
        rows["contacts"] = _write(_contacts_table(contacts, ctx, _seed(cfg, 4)), raw / "contacts", fmt)
        rows["invoices"] = _write(_invoices(contracts, ctx, _seed(cfg, 5)), raw / "invoices", fmt)
        rows["opportunities"] = _write(
            _opportunities(contracts, ctx, _seed(cfg, 6)), raw / "opportunities", fmt
        )
        rows["interventions"] = _write(
            _interventions(ctx, _seed(cfg, 7)), raw / "interventions", fmt
        )
        tick("crm tables", 1)

        writers = {name: _TableWriter(raw / name, fmt) for name in CHUNKED}
        for c, start in enumerate(range(0, ctx.acc.n, cfg.chunk_accounts)):
            chunk = np.arange(start, min(start + cfg.chunk_accounts, ctx.acc.n))
            for t, (name, build) in enumerate(CHUNKED.items()):
                writers[name].write(build(ctx, chunk, _seed(cfg, 100 + t, c)))
            tick("events", chunk.size)
        rows.update({name: w.close() for name, w in writers.items()})

        snapshots, effects = _oracle(
            cfg, features, ctx.cal, ctx.acc, ctx.hist,
            contracts.sort_values("index")["contract_id"].to_numpy(), ctx.account_ids,
        )  # fmt: skip
        summary = WorldSummary(
            accounts=ctx.acc.n,
            rows={name: rows[name] for name in TABLE_ORDER},
            checks=_checks(ctx, contracts, snapshots, effects),
        )
        _write_oracle(truth, ctx, snapshots, effects, summary)
        tick("oracle", 1)
    return summary


def outcome_class(renewed: np.ndarray, arr: np.ndarray, renewal_arr: np.ndarray) -> np.ndarray:
    """churn / contraction / flat / expansion from the renewal ARR (±3 % counts as flat)."""
    ratio = np.divide(renewal_arr, arr, out=np.ones_like(arr, dtype=float), where=arr > 0)
    return np.where(
        ~renewed,
        "churn",
        np.where(ratio < 0.97, "contraction", np.where(ratio > 1.03, "expansion", "flat")),
    )


def _checks(
    ctx: _Context, contracts: pd.DataFrame, snapshots: pd.DataFrame, effects: pd.DataFrame
) -> dict[str, float]:
    """Realism figures the README states and the tests assert."""
    cal, hist = ctx.cal, ctx.hist
    decided = contracts[contracts["known"] & (contracts["end"] >= cal.start)]
    term = (decided["end"].to_numpy().astype("datetime64[M]") - decided["start"].to_numpy().astype("datetime64[M]")).astype(int)
    checks: dict[str, float] = {}
    segments = list(ctx.cfg.segments)
    seg = ctx.acc.segment[decided["account"].to_numpy()]
    renewed = decided["renewed"].to_numpy(dtype=bool)
    for k, name in enumerate(segments):
        annual = (seg == k) & (term >= 12)
        if annual.sum() >= 20:
            checks[f"renewal_rate_{name}"] = float(renewed[annual].mean())
    monthly = term == 1
    if monthly.sum() >= 20:
        checks["monthly_churn_rate"] = float(1 - renewed[monthly].mean())

    # confounding: the treated renew less although the plays help on average
    inter = hist.interventions
    end_month = cal.month_of(decided["end"].to_numpy())
    account = decided["account"].to_numpy()
    treated = np.zeros(len(decided), dtype=bool)
    if inter["account"].size:
        log = pd.DataFrame({"account": inter["account"], "month": inter["month"]})
        pairs = pd.DataFrame({"account": account, "end_month": end_month, "row": np.arange(account.size)})
        joined = pairs.merge(log, on="account")
        inside = (joined["month"] < joined["end_month"]) & (joined["month"] >= joined["end_month"] - 6)
        treated[joined.loc[inside, "row"].unique()] = True
    annual = term >= 12
    if (treated & annual).sum() >= 10 and (~treated & annual).sum() >= 10:
        checks["treated_share"] = float(treated[annual].mean())
        checks["naive_renewal_gap"] = float(
            renewed[treated & annual].mean() - renewed[~treated & annual].mean()
        )
    if inter["effect"].size:
        checks["mean_true_effect_applied"] = float(inter["effect"].mean())
        h_treated = hist.health[inter["account"], np.maximum(inter["month"] - 1, 0)]
        h_all = hist.health[:, cal.start_month : cal.end_month]
        checks["health_gap_treated"] = float(np.nanmean(h_treated) - np.nanmean(h_all))

    # signals move before churn: health falls in the months before a non-renewal
    idx = np.arange(account.size)
    def window(lo: int, hi: int) -> np.ndarray:  # noqa: E306
        cols = end_month[:, None] - np.arange(lo, hi)[None, :]
        vals = hist.health[account[:, None], np.clip(cols, 0, cal.months - 1)]
        return np.nanmean(np.where(cols >= 0, vals, np.nan), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # accounts younger than the window
        drift = window(1, 4) - window(6, 10)
    del idx
    checks["health_drift_before_churn"] = float(np.nanmean(drift[~renewed]))
    checks["health_drift_before_renewal"] = float(np.nanmean(drift[renewed]))

    known = snapshots[snapshots["as_of"] < snapshots["end_date"]]
    known = known[known["end_date"] < cal.end]
    if known["renewed"].nunique() == 2:
        from sklearn.metrics import brier_score_loss, roc_auc_score

        checks["oracle_auc"] = float(roc_auc_score(known["renewed"], known["p_renew"]))
        checks["oracle_brier"] = float(brier_score_loss(known["renewed"], known["p_renew"]))
        checks["oracle_mean_p"] = float(known["p_renew"].mean())
        checks["label_rate"] = float(known["renewed"].mean())
    by_kind = effects.groupby("intervention")["effect"]
    for kind, mean in by_kind.mean().items():
        checks[f"effect_mean_{kind}"] = float(mean)
    for kind, share in (by_kind.apply(lambda e: (e < 0).mean())).items():
        checks[f"effect_harm_share_{kind}"] = float(share)
    return checks


def _write_oracle(
    truth: Path,
    ctx: _Context,
    snapshots: pd.DataFrame,
    effects: pd.DataFrame,
    summary: WorldSummary,
) -> None:
    snapshots = snapshots.assign(
        as_of=snapshots["as_of"].astype("datetime64[s]"),
        end_date=snapshots["end_date"].astype("datetime64[s]"),
        outcome=outcome_class(
            snapshots["renewed"].to_numpy(dtype=bool),
            snapshots["arr"].to_numpy(dtype=float),
            np.nan_to_num(snapshots["renewal_arr"].to_numpy(dtype=float)),
        ),
    )
    snapshots.to_parquet(truth / "snapshots.parquet", index=False)
    effects.assign(as_of=effects["as_of"].astype("datetime64[s]")).to_parquet(
        truth / "effects.parquet", index=False
    )
    inter = ctx.hist.interventions
    pd.DataFrame(
        {
            "account_id": ctx.account_ids[inter["account"]],
            "month": ctx.cal.month_start(inter["month"]).astype("datetime64[s]"),
            "intervention": np.array(INTERVENTIONS)[inter["kind"]],
            "effect_health": inter["effect"],
        }
    ).to_parquet(truth / "applied.parquet", index=False)
    a, m = np.nonzero(ctx.hist.alive)
    pd.DataFrame(
        {
            "account_id": ctx.account_ids[a],
            "month": ctx.cal.month_start(m).astype("datetime64[s]"),
            "health": ctx.hist.health[a, m],
            "budget_stress": ctx.hist.budget[a, m],
            "champion_missing": ctx.hist.champion_gone[a, m] >= 0,
        }
    ).to_parquet(truth / "health.parquet", index=False)
    world = {
        "seed": ctx.cfg.seed,
        "accounts": summary.accounts,
        "data_start": str(ctx.cal.start),
        "data_end": str(ctx.cal.end),
        "dynamics": {
            "rho": RHO, "sigma": SIGMA, "beta": BETA, "gamma_adoption": GAMMA_ADOPTION,
            "champion_hazard": CHAMPION_HAZARD, "champion_shock": CHAMPION_SHOCK,
            "budget_hazard": BUDGET_HAZARD, "budget_shock": BUDGET_SHOCK,
            "effect_lag_months": EFFECT_LAG,
        },  # fmt: skip
        "interventions": list(INTERVENTIONS),
        "key_event_types": list(KEY_EVENT_TYPES),
        "rows": summary.rows,
        "checks": summary.checks,
    }
    (truth / "world.json").write_text(json.dumps(world, indent=2, sort_keys=True) + "\n")
