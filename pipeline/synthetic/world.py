"""The synthetic B2B SaaS world: the raw tables of the data contract, plus its oracle.

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
DISCOUNT_MONTHS = 6  # a discount played within this many months of the end applies to the renewal
# The resize at renewal: u = health + RESIZE_ADOPTION·adoption − RESIZE_BUDGET·budget +
# N(0, RESIZE_NOISE); a resized contract (probability min(term / 12, 1)) expands when
# u > EXPAND_ABOVE and contracts when u < CONTRACT_BELOW; else it renews flat.
RESIZE_ADOPTION, RESIZE_BUDGET, RESIZE_NOISE = 0.35, 1.2, 0.45
EXPAND_ABOVE, CONTRACT_BELOW = 0.95, -0.35
EXPANSION_LOG = (0.22, 0.12)  # expansion = exp(N(mean, sd))
CONTRACTION_LOG = (0.2, 0.1)  # contraction = exp(−|N(mean, sd)|)
FLAT_WIDTH = 0.025  # flat = 1 + U(0, width)
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
# the CSMs' names, from their number alone (no draw: every other column is unchanged)
CSM_FIRST = (
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemi",
    "Lars",
    "Mei",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
)
CSM_LAST = ("Alvarez", "Brennan", "Costa", "Dubois", "Eriksen", "Fischer", "Gupta", "Haddad",
            "Ito", "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov",
            "Quist", "Rossi", "Schmidt", "Tanaka")  # fmt: skip


def csm_name(number: int) -> str:
    """CSM ``number``'s name: 400 distinct before they repeat."""
    first = CSM_FIRST[number % len(CSM_FIRST)]
    return f"{first} {CSM_LAST[number // len(CSM_FIRST) % len(CSM_LAST)]}"


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
    """Latent paths and logs from the month-by-month simulation (``simulation.World``)."""

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
    assignments: dict[str, np.ndarray] = field(default_factory=dict)  # external, with controls


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
