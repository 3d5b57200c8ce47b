"""The synthetic B2B SaaS world: eleven raw tables in the data contract, plus its oracle.

A latent monthly health process per account drives everything the tables show. Hidden
troubles (a champion leaving, a budget cut) hit health and are only partly visible in the data;
simulated CSMs with limited capacity act on what *they* perceive (confounding), log their
decision context, and each intervention kind has a heterogeneous true effect.

Renewal is a probit in the health at the contract's end month::

    renewed  ⇔  base[segment] + term_offset[term] + β·h[end] + γ·adoption + ε > 0,   ε ~ N(0, 1)
    h[m+1] = μ + ρ·(h[m] − μ) + η − δ_champ·champion_left − δ_budget·budget_cut + τ(plays)

so the oracle's renewal probability at a snapshot is exact for the Gaussian part of the future
and moment-matched for future shocks, given the hidden state at ``as_of`` and no new
interventions. Nothing outside evaluation code may read ``data.oracle_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from pipeline.config import FeaturesConfig, SyntheticConfig

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
NAME_HEAD = tuple(
    "North Star Acme Blue Harbor Iron Cedar Summit Pioneer Bright Silver Granite Maple Orbit "
    "Falcon Vertex Lumen Atlas Nimbus Quartz Redwood Sterling Harbor Beacon Cobalt Evergreen "
    "Helix Juniper Keystone Meridian Nova Oakridge Polar Riverstone Sage Tidewater Union "
    "Vantage Willow Zenith Aurora Bluebird Crescent Delta Ember Frontier Golden".split()
)
NAME_TAIL = tuple(
    "Analytics Logistics Health Systems Foods Robotics Labs Capital Energy Media Partners "
    "Retail Software Networks Bank Insurance Outfitters Studios Holdings Dynamics Works "
    "Biotech Freight Learning Pharma Clinics Supply Motors Security".split()
)
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

    @property
    def total_rows(self) -> int:
        """Rows written over all tables."""
        return sum(self.rows.values())


@dataclass
class Calendar:
    """Monthly grid of the simulation: prehistory, history up to the data's end, and beyond."""

    first_month: np.datetime64  # datetime64[M]
    months: int
    end_month: int  # index of the data's end month (end_date lies in it)
    start_month: int  # first month with event history
    end: np.datetime64  # datetime64[D], the data's end (exclusive)
    start: np.datetime64  # datetime64[D], first day with events

    def month_start(self, m: np.ndarray | int) -> np.ndarray:
        """First day of month index ``m`` (datetime64[D])."""
        return (self.first_month + np.asarray(m)).astype("datetime64[D]")

    def month_days(self, m: np.ndarray | int) -> np.ndarray:
        """Number of days in month index ``m``."""
        return (self.month_start(np.asarray(m) + 1) - self.month_start(m)).astype(int)

    def month_of(self, days: np.ndarray) -> np.ndarray:
        """Month index of each day in ``days``."""
        return (days.astype("datetime64[M]") - self.first_month).astype(int)


def make_calendar(cfg: SyntheticConfig, features: FeaturesConfig) -> Calendar:
    """The monthly grid: prehistory and history up to ``end_date``, and enough months beyond it
    to settle the outcomes of contracts still running at the end (the prediction horizon)."""
    end = np.datetime64(cfg.end_date, "D")
    end_m = end.astype("datetime64[M]")
    beyond = int(np.ceil(features.horizon_days / 28)) + 2  # outcomes of censored contracts
    first = end_m - (cfg.history_months + cfg.prehistory_months)
    months = cfg.history_months + cfg.prehistory_months + beyond + 1
    start = (end_m - cfg.history_months).astype("datetime64[D]")
    return Calendar(
        first_month=first,
        months=months,
        end_month=int(end_m - first),
        start_month=int(end_m - first) - cfg.history_months,
        end=end,
        start=start,
    )


@dataclass
class Accounts:
    """Each account's fixed traits: segment and size, creation, mean health, adoption, first
    contract (ARR, seat price, term), CSM, industry, region and name."""

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
class History:
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


def make_accounts(cfg: SyntheticConfig, cal: Calendar, rng: np.random.Generator) -> Accounts:
    """Draw the accounts from the segments in params: about a third predate the event history, the
    rest arrive over it; first-contract ARR is log-normal around the segment's median."""
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
    return Accounts(
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


def add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """``days`` moved ``months`` calendar months on, keeping the day of the month (a 31st can
    spill into the next month)."""
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


def simulate(
    cfg: SyntheticConfig, cal: Calendar, acc: Accounts, rng: np.random.Generator
) -> History:
    """Run the world month by month: health, champion departures, budget cuts, the CSMs' plays
    and their true effects, and renewals at each contract's end.

    Returns:
        The latent paths, the contracts with their outcomes and the log of plays.
    """
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
    c_end = add_months(c_start, c_term)
    c_end_month = cal.month_of(c_end)
    contract_rows: dict[str, list[np.ndarray]] = {
        k: [] for k in ("account", "start", "end", "arr", "seats", "renewed", "renewal_arr")
    }
    decisions: list[tuple[int, _Decision]] = []

    def record(i: np.ndarray, renewed: np.ndarray, renewal_arr: np.ndarray) -> None:
        """Log the contracts in force for accounts ``i`` with their outcome."""
        for key, values in (
            ("account", i),
            ("start", c_start[i]),
            ("end", c_end[i]),
            ("arr", c_arr[i]),
            ("seats", c_seats[i]),
            ("renewed", renewed),
            ("renewal_arr", renewal_arr),
        ):
            contract_rows[key].append(values.copy())

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
        mult = _renewal_multiplier(
            h[i], acc.adoption[i], budget[i], discounted, renewed, c_term[i], rng
        )
        renewal_arr = np.round(c_arr[i] * mult, -1)
        record(i, renewed, renewal_arr)
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
        c_end[stay] = add_months(nxt, c_term[stay])
        c_end_month[stay] = cal.month_of(c_end[stay])
        gone = i[~renewed]
        alive[gone] = False
        last_day[gone] = c_end[gone]

    running = np.flatnonzero(alive)
    decided_count = sum(a.size for a in contract_rows["account"])
    record(running, np.zeros(running.size, dtype=bool), np.full(running.size, np.nan))
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
    return History(
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
    term: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Renewal ARR over ARR: 0 on churn; contraction, flat or expansion for the renewed.

    Short terms change size as often per year as annual ones, not at every renewal.
    """
    u = health + 0.35 * adoption - 1.2 * budget + rng.normal(0, 0.45, health.size)
    expansion = np.exp(rng.normal(0.22, 0.12, health.size))
    contraction = np.exp(-np.abs(rng.normal(0.2, 0.1, health.size)))
    flat = 1 + rng.uniform(0, 0.025, health.size)
    resized = rng.random(health.size) < np.minimum(term / 12, 1.0)
    mult = np.where(
        resized & (u > 0.95), expansion, np.where(resized & (u < -0.35), contraction, flat)
    )
    mult = mult * np.where(discounted, 1 - DISCOUNT_SHARE, 1.0)
    return np.where(renewed, mult, 0.0)


def _decide(
    m: int,
    eligible: np.ndarray,
    h: np.ndarray,
    budget: np.ndarray,
    acc: Accounts,
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
        -(h + rng.normal(0, 0.45, n))
        + 1.3 * knows_champion
        + 0.9 * knows_budget
        + 0.35 * renewal_soon
    )
    cooldown = m - last_any <= 2
    act = eligible & ~cooldown & (perceived > 0.9)
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
