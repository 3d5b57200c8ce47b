"""The world, month by month: a state that steps forward and takes plays decided outside it.

:class:`World` holds every account's hidden state and the logs so far; :meth:`World.step`
advances one month: health moves, champions leave, budgets are cut, the CSMs and any external
plays (:class:`Actions`, e.g. a recommendation engine's or an experiment's) act, contracts end and
renew. :func:`simulate` is the world run to its end with no external plays.

Luck is drawn per month from two streams of its own, each the same size every month whatever
happened before: the world's shocks (``[seed, 2, month]``: health innovations, champions, budget
cuts, renewal noise) and the CSMs' choices (``[seed, 20, month]``). So two policies run from the
same state meet the same luck, account by account and month by month, and a world replays
byte-identically under the same actions.

An external play replaces the CSM's own choice for that account in that month and uses the
owning CSM's capacity; an external *control* (kind :data:`CONTROL`) holds the account out of the
CSM's own plays for that month, so an experiment's arms are compared cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config import SyntheticConfig
from pipeline.synthetic.world import (
    BETA,
    BUDGET_DECAY,
    BUDGET_HAZARD,
    BUDGET_SHOCK,
    CHAMPION_HAZARD,
    CHAMPION_SHOCK,
    CONTRACT_BELOW,
    CONTRACTION_LOG,
    DISCOUNT_MONTHS,
    DISCOUNT_SHARE,
    EXPAND_ABOVE,
    EXPANSION_LOG,
    FLAT_WIDTH,
    GAMMA_ADOPTION,
    INTERVENTIONS,
    KIND_GIVEN_REASON,
    RECENT_MONTHS,
    RESIZE_ADOPTION,
    RESIZE_BUDGET,
    RESIZE_NOISE,
    RHO,
    SIGMA,
    TERM_OFFSET,
    Accounts,
    Calendar,
    History,
    add_months,
    intervention_effects,
)

SOURCES = ("csm", "recommended", "randomised")  # who chose a play: the log's ``source``
CONTROL = -1  # an external assignment of no play (an experiment's control arm)
SHOCKS, CHOICES = 2, 20  # the two random streams: ``[seed, stream, month]``


@dataclass(frozen=True)
class Actions:
    """Plays (or no-play controls) decided outside the world for one month.

    Attributes:
        account: account index per assignment (each account at most once).
        kind: index into ``INTERVENTIONS``, or :data:`CONTROL` for no play.
        propensity: the probability the deciding policy gave this arm for this account.
        source: index into :data:`SOURCES` (1 = recommended, 2 = randomised).
    """

    account: np.ndarray
    kind: np.ndarray
    propensity: np.ndarray
    source: np.ndarray

    @classmethod
    def empty(cls) -> Actions:
        """No external assignment this month."""
        return cls(np.array([], int), np.array([], int), np.array([]), np.array([], int))

    def __post_init__(self) -> None:
        sizes = {len(self.account), len(self.kind), len(self.propensity), len(self.source)}
        if len(sizes) != 1:
            raise ValueError(f"actions: columns of different lengths {sorted(sizes)}")
        if len(np.unique(self.account)) != len(self.account):
            raise ValueError("actions: an account is assigned twice in one month")
        if np.any((self.kind < CONTROL) | (self.kind >= len(INTERVENTIONS))):
            raise ValueError(f"actions: kind must be -1 (control) or 0..{len(INTERVENTIONS) - 1}")
        if np.any((self.source < 1) | (self.source >= len(SOURCES))):
            raise ValueError("actions: source must be 1 (recommended) or 2 (randomised)")
        p = np.asarray(self.propensity, dtype=float)
        if np.any(~np.isfinite(p) | (p <= 0) | (p > 1)):
            raise ValueError("actions: every propensity must lie in (0, 1]")


@dataclass
class _Luck:
    """One month's draws of the world's shocks, one value per account."""

    champion: np.ndarray
    cut: np.ndarray
    eta: np.ndarray
    fresh: np.ndarray  # the health of an account created this month (standardised)
    recorded: np.ndarray
    back: np.ndarray
    day: np.ndarray
    aware: np.ndarray
    renewal: np.ndarray
    resize_noise: np.ndarray
    expansion: np.ndarray
    contraction: np.ndarray
    flat: np.ndarray
    resized: np.ndarray
    gap_late: np.ndarray
    gap_days: np.ndarray
    switch: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _Luck:
        return cls(
            champion=rng.random(n),
            cut=rng.random(n),
            eta=rng.normal(0, SIGMA, n),
            fresh=rng.normal(0, 1, n),
            recorded=rng.random(n),
            back=rng.integers(3, 9, n),
            day=rng.integers(0, 28, n),
            aware=rng.random(n),
            renewal=rng.normal(0, 1, n),
            resize_noise=rng.normal(0, RESIZE_NOISE, n),
            expansion=np.exp(rng.normal(*EXPANSION_LOG, n)),
            contraction=np.exp(-np.abs(rng.normal(*CONTRACTION_LOG, n))),
            flat=1 + rng.uniform(0, FLAT_WIDTH, n),
            resized=rng.random(n),
            gap_late=rng.random(n),
            gap_days=rng.integers(1, 15, n),
            switch=rng.random(n),
        )


@dataclass
class _Choices:
    """One month's draws of the CSMs' perception and choices, one value per account."""

    perception: np.ndarray
    hears_budget: np.ndarray
    proactive: np.ndarray
    kind: np.ndarray
    new_csm: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, n_csm: int) -> _Choices:
        return cls(
            perception=rng.normal(0, 0.45, n),
            hears_budget=rng.random(n),
            proactive=rng.random(n),
            kind=rng.random(n),
            new_csm=rng.integers(0, max(n_csm - 1, 1), n),
        )


@dataclass
class _Plays:
    """The plays started in one month (the CSMs' own and external ones)."""

    account: np.ndarray
    kind: np.ndarray
    reason: np.ndarray
    flag: np.ndarray
    effect: np.ndarray
    csm: np.ndarray
    source: np.ndarray
    propensity: np.ndarray


@dataclass
class _Log:
    """What the months so far recorded: plays, assignments, champions, contracts."""

    plays: list[tuple[int, _Plays]] = field(default_factory=list)
    assignments: list[tuple[int, Actions]] = field(default_factory=list)
    champions: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {k: [] for k in ("account", "day", "recorded", "back")}
    )
    contracts: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {
            k: [] for k in ("account", "start", "end", "arr", "seats", "renewed", "renewal_arr")
        }
    )


class World:
    """The synthetic world's hidden state, stepped one month at a time.

    Args:
        cfg: the world's settings (segments, CSM capacity, seed).
        cal: the monthly grid.
        acc: the accounts' fixed traits.
    """

    def __init__(self, cfg: SyntheticConfig, cal: Calendar, acc: Accounts) -> None:
        self.cfg, self.cal, self.acc = cfg, cal, acc
        n, months = acc.n, cal.months
        self.month = 0  # the next month to simulate
        self.n_csm = int(acc.csm.max()) + 1
        self.base = np.array([s.renewal_base for s in cfg.segments.values()])[acc.segment]
        # paths, one column per month
        self.health_path = np.full((n, months), np.nan)
        self.budget_path = np.zeros((n, months))
        self.alive_path = np.zeros((n, months), dtype=bool)
        self.seats_path = np.zeros((n, months), dtype=np.int32)
        self.gone_path = np.full((n, months), -1, dtype=np.int16)
        self.pending_path = np.zeros((n, months))
        # the state now
        self.alive = np.zeros(n, dtype=bool)
        self.last_day = np.full(n, cal.month_start(months), dtype="datetime64[D]")
        self.health = np.zeros(n)
        self.budget = np.zeros(n)
        self.pending = np.zeros(n)
        self.champion_gone = np.full(n, -1)  # month the champion left; -1 while one is in place
        self.champion_back = np.full(n, -1)
        self.champion_aware = np.zeros(n, dtype=bool)
        self.last_kind = np.full((n, len(INTERVENTIONS)), -999)
        self.last_any = np.full(n, -999)
        self.last_discount = np.full(n, -999)
        self.csm = acc.csm.copy()
        # the contract in force
        self.start = acc.created_day.copy()
        self.term = acc.term0.copy()
        self.arr = acc.arr0.copy()
        self.seats = np.maximum(1, np.round(self.arr / acc.seat_price)).astype(np.int32)
        self.end = add_months(self.start, self.term)
        self.end_month = cal.month_of(self.end)
        self._log = _Log()

    # ---- reading the state -------------------------------------------------------------------

    def eligible(self) -> np.ndarray:
        """Accounts a play can start on in the coming month (customers since before it)."""
        return self.alive & (self.acc.created_month < self.month)

    def recent_champion_loss(self) -> np.ndarray:
        """Accounts whose champion left in the last ``RECENT_MONTHS`` months (by the coming one)."""
        gone = self.champion_gone
        return (gone >= 0) & (self.month - gone <= RECENT_MONTHS)

    def true_effects(self, accounts: np.ndarray) -> np.ndarray:
        """True effect on health of starting each kind on ``accounts`` in the coming month."""
        recent = self.month - self.last_kind[accounts] <= 3
        return intervention_effects(
            self.health[accounts],
            self.acc.size[accounts],
            self.acc.adoption[accounts],
            self.recent_champion_loss()[accounts].astype(float),
            self.budget[accounts],
            recent[:, 0],
            recent[:, 1],
        )

    # ---- stepping ----------------------------------------------------------------------------

    def step(self, actions: Actions | None = None) -> None:
        """Simulate the coming month, with ``actions`` decided outside the world for it.

        Raises:
            ValueError: an action names an account that is not a customer since before the month,
                or the world has reached the calendar's end.
        """
        m = self.month
        if m >= self.cal.months:
            raise ValueError(f"the world has reached its last month ({self.cal.months})")
        actions = actions if actions is not None else Actions.empty()
        n, acc = self.acc.n, self.acc
        luck = _Luck.draw(np.random.default_rng([self.cfg.seed, SHOCKS, m]), n)
        choices = _Choices.draw(np.random.default_rng([self.cfg.seed, CHOICES, m]), n, self.n_csm)

        new = acc.created_month == m
        old = self.alive.copy()
        has_champion = self.champion_gone < 0
        champ = old & has_champion & (luck.champion < CHAMPION_HAZARD)
        cut = old & (luck.cut < BUDGET_HAZARD)
        step = (
            acc.mu + RHO * (self.health - acc.mu) + luck.eta
            - CHAMPION_SHOCK * champ - BUDGET_SHOCK * cut
        )  # fmt: skip
        self.health = np.where(old, step + self.pending, self.health)
        self.budget = np.where(old, BUDGET_DECAY * self.budget + cut, self.budget)
        sd_stationary = SIGMA / np.sqrt(1 - RHO**2)
        self.health = np.where(new, acc.mu + sd_stationary * luck.fresh, self.health)
        self.alive = self.alive | new
        self.pending = np.zeros(n)
        self._champions(m, champ, luck)

        eligible = old & (acc.created_month < m)
        bad = actions.account[~eligible[actions.account]]
        if bad.size:
            raise ValueError(
                f"actions in month {m}: {bad.size} account(s) not customers since before it "
                f"(first: index {int(bad[0])})"
            )
        plays = self._plays(m, eligible, actions, choices)
        if plays is not None:
            self._log.plays.append((m, plays))
            np.add.at(self.pending, plays.account, plays.effect)
            self.last_kind[plays.account, plays.kind] = m
            self.last_any[plays.account] = m
            is_discount = plays.kind == INTERVENTIONS.index("discount")
            self.last_discount[plays.account[is_discount]] = m
            moved = plays.account[plays.kind == INTERVENTIONS.index("csm_change")]
            self.csm[moved] = (self.csm[moved] + 1 + choices.new_csm[moved]) % self.n_csm
        if actions.account.size:
            self._log.assignments.append((m, actions))

        self.health_path[:, m] = np.where(self.alive, self.health, np.nan)
        self.budget_path[:, m] = self.budget
        self.alive_path[:, m] = self.alive
        self.seats_path[:, m] = np.where(self.alive, self.seats, 0)
        self.gone_path[:, m] = self.champion_gone
        self.pending_path[:, m] = self.pending
        self._renewals(m, luck)
        self.month = m + 1

    def run(self, until: int | None = None) -> World:
        """Step with no external plays up to month ``until`` (default: the calendar's end)."""
        stop = self.cal.months if until is None else until
        while self.month < stop:
            self.step()
        return self

    def _champions(self, m: int, champ: np.ndarray, luck: _Luck) -> None:
        """Champions who leave (recorded in the CRM 60 % of the time, heard of 75 %) and return."""
        if champ.any():
            idx = np.flatnonzero(champ)
            recorded = luck.recorded[idx] < 0.6
            back = m + luck.back[idx]
            log = self._log.champions
            log["account"].append(idx)
            log["day"].append(self.cal.month_start(m) + luck.day[idx])
            log["recorded"].append(recorded)
            log["back"].append(back)
            self.champion_gone[idx] = m
            self.champion_back[idx] = back
            self.champion_aware[idx] = recorded | (luck.aware[idx] < 0.4)
        returned = (self.champion_gone >= 0) & (self.champion_back <= m)
        self.champion_gone = np.where(returned, -1, self.champion_gone)

    def _plays(
        self, m: int, eligible: np.ndarray, actions: Actions, choices: _Choices
    ) -> _Plays | None:
        """The month's plays: the external ones, then the CSMs' own up to what capacity is left.

        CSMs act on their *perception* of trouble: the source of confounding.
        """
        n, acc, capacity = self.acc.n, self.acc, self.cfg.csm_capacity_per_month
        champion_recent = self.recent_champion_loss()
        knows_champion = champion_recent & self.champion_aware
        knows_budget = (self.budget > 0.3) & (choices.hears_budget < 0.5)
        months_to_end = self.end_month - m
        renewal_soon = (months_to_end >= 0) & (months_to_end <= 4)
        perceived = (
            -(self.health + choices.perception)
            + 1.3 * knows_champion + 0.9 * knows_budget + 0.35 * renewal_soon
        )  # fmt: skip
        flag_of = np.where(perceived > 1.4, 2, np.where(perceived > 0.9, 1, 0))

        external = actions.kind != CONTROL
        ext_account = actions.account[external]
        held = np.zeros(n, dtype=bool)
        held[actions.account] = True
        used = np.bincount(self.csm[ext_account], minlength=self.n_csm)
        cooldown = m - self.last_any <= 2
        act = eligible & ~held & ~cooldown & (perceived > 0.9)
        proactive = eligible & ~held & ~cooldown & ~act & renewal_soon & (choices.proactive < 0.015)
        chosen = np.array([], dtype=int)
        candidates = np.flatnonzero(act | proactive) if capacity > 0 else np.array([], dtype=int)
        if candidates.size:
            urgency = np.where(act[candidates], perceived[candidates], -10.0)
            cand = candidates[np.lexsort((-urgency, self.csm[candidates]))]
            owner = self.csm[cand]
            rank = np.arange(cand.size) - np.searchsorted(owner, owner)
            chosen = cand[rank < capacity - used[owner]]
        if chosen.size == 0 and ext_account.size == 0:
            return None

        adopt_level = acc.adoption[chosen] + 0.5 * self.health[chosen]
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
        kind = (choices.kind[chosen][:, None] > probs.cumsum(axis=1)).sum(axis=1)
        kind = np.minimum(kind, len(INTERVENTIONS) - 1)
        repeat = m - self.last_kind[chosen, kind] <= 3
        kind = np.where(repeat, probs.argsort(axis=1, kind="stable")[:, -2], kind)

        account = np.concatenate([chosen, ext_account])
        kind = np.concatenate([kind, actions.kind[external]])
        effects = self.true_effects(account)
        own = chosen.size
        return _Plays(
            account=account,
            kind=kind,
            reason=np.concatenate([reason, np.full(ext_account.size, -1)]),
            flag=np.concatenate([np.where(~act[chosen], 0, flag_of[chosen]), flag_of[ext_account]]),
            effect=effects[np.arange(account.size), kind],
            csm=self.csm[account],
            source=np.concatenate([np.zeros(own, dtype=int), actions.source[external]]),
            propensity=np.concatenate([np.full(own, np.nan), actions.propensity[external]]),
        )

    def _renewals(self, m: int, luck: _Luck) -> None:
        """Contracts ending this month renew (probit in health) or churn, with the renewal ARR."""
        i = np.flatnonzero(self.alive & (self.end_month == m))
        if i.size == 0:
            return
        term_offset = np.array([TERM_OFFSET.get(int(t), 0.0) for t in self.term[i]])
        z = (
            self.base[i] + term_offset + BETA * self.health[i]
            + GAMMA_ADOPTION * self.acc.adoption[i] + luck.renewal[i]
        )  # fmt: skip
        renewed = z > 0
        discounted = m - self.last_discount[i] <= DISCOUNT_MONTHS
        mult = _renewal_multiplier(
            self.health[i], self.acc.adoption[i], self.budget[i], discounted, renewed,
            self.term[i], luck, i,
        )  # fmt: skip
        renewal_arr = np.round(self.arr[i] * mult, -1)
        self._record(i, renewed, renewal_arr)
        stay = i[renewed]
        gap = np.where(luck.gap_late[stay] < 0.8, 0, luck.gap_days[stay])
        nxt = self.end[stay] + gap
        # keep start days on 1–28 so month arithmetic stays exact: day 29+ moves to the 1st
        month_start = nxt.astype("datetime64[M]")
        late = (nxt - month_start.astype("datetime64[D]")).astype(int) > 27
        nxt = np.where(late, (month_start + 1).astype("datetime64[D]"), nxt)
        switch = (self.term[stay] == 1) & (luck.switch[stay] < 0.03)
        self.term[stay] = np.where(switch, 12, self.term[stay])
        self.start[stay] = nxt
        self.arr[stay] = renewal_arr[renewed]
        self.seats[stay] = np.maximum(1, np.round(self.arr[stay] / self.acc.seat_price[stay]))
        self.end[stay] = add_months(nxt, self.term[stay])
        self.end_month[stay] = self.cal.month_of(self.end[stay])
        gone = i[~renewed]
        self.alive[gone] = False
        self.last_day[gone] = self.end[gone]

    def _record(self, i: np.ndarray, renewed: np.ndarray, renewal_arr: np.ndarray) -> None:
        """Log the contracts in force for accounts ``i`` with their outcome."""
        rows = self._log.contracts
        for key, values in (
            ("account", i),
            ("start", self.start[i]),
            ("end", self.end[i]),
            ("arr", self.arr[i]),
            ("seats", self.seats[i]),
            ("renewed", renewed),
            ("renewal_arr", renewal_arr),
        ):
            rows[key].append(values.copy())

    # ---- the history so far ------------------------------------------------------------------

    def history(self) -> History:
        """The paths and logs of the months simulated so far (the world is left as it is).

        Contracts still running are listed with an undecided outcome.
        """
        rows = self._log.contracts
        running = np.flatnonzero(self.alive)
        decided_count = sum(a.size for a in rows["account"])
        tail = {
            "account": running,
            "start": self.start[running],
            "end": self.end[running],
            "arr": self.arr[running],
            "seats": self.seats[running],
            "renewed": np.zeros(running.size, dtype=bool),
            "renewal_arr": np.full(running.size, np.nan),
        }
        contracts = {k: np.concatenate([*v, tail[k]]) for k, v in rows.items()}
        contracts["decided"] = np.arange(contracts["account"].size) < decided_count
        interventions = _columns(
            self._log.plays,
            account="int64", kind="int64", reason="int64", flag="int64", effect="float64",
            csm="int64", source="int64", propensity="float64",
        )  # fmt: skip
        assignments = _columns(
            self._log.assignments,
            account="int64", kind="int64", propensity="float64", source="int64",
        )  # fmt: skip
        champions = self._log.champions
        return History(
            health=self.health_path.copy(),
            budget=self.budget_path.copy(),
            alive=self.alive_path.copy(),
            seats=self.seats_path.copy(),
            champion_gone=self.gone_path.copy(),
            pending=self.pending_path.copy(),
            last_day=self.last_day.copy(),
            csm_final=self.csm.copy(),
            champion_events={
                "account": _cat(champions["account"], "int64"),
                "day": _cat(champions["day"], "datetime64[D]"),
                "recorded": _cat(champions["recorded"], "bool"),
                "back": _cat(champions["back"], "int64"),
            },
            contracts=contracts,
            interventions=interventions,
            assignments=assignments,
        )


def simulate(cfg: SyntheticConfig, cal: Calendar, acc: Accounts) -> History:
    """Run the world to the calendar's end with the CSMs' own plays only.

    Returns:
        The latent paths, the contracts with their outcomes and the log of plays.
    """
    return World(cfg, cal, acc).run().history()


def _columns(log: list[tuple[int, Any]], **dtypes: str) -> dict[str, np.ndarray]:
    """A month-by-month log as one array per field, with the month of each row."""
    out = {name: _cat([getattr(x, name) for _, x in log], dtype) for name, dtype in dtypes.items()}
    out["month"] = _cat([np.full(x.account.size, m) for m, x in log], "int64")
    return out


def _cat(parts: list[np.ndarray], dtype: str) -> np.ndarray:
    return np.concatenate(parts) if parts else np.array([], dtype=dtype)


def _renewal_multiplier(
    health: np.ndarray,
    adoption: np.ndarray,
    budget: np.ndarray,
    discounted: np.ndarray,
    renewed: np.ndarray,
    term: np.ndarray,
    luck: _Luck,
    i: np.ndarray,
) -> np.ndarray:
    """Renewal ARR over ARR: 0 on churn; contraction, flat or expansion for the renewed.

    Short terms change size as often per year as annual ones, not at every renewal.
    """
    u = health + RESIZE_ADOPTION * adoption - RESIZE_BUDGET * budget + luck.resize_noise[i]
    resized = luck.resized[i] < np.minimum(term / 12, 1.0)
    mult = np.where(
        resized & (u > EXPAND_ABOVE),
        luck.expansion[i],
        np.where(resized & (u < CONTRACT_BELOW), luck.contraction[i], luck.flat[i]),
    )
    mult = mult * np.where(discounted, 1 - DISCOUNT_SHARE, 1.0)
    return np.where(renewed, mult, 0.0)
