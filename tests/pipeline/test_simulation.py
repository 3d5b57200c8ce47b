"""The stepped world: replayable, external plays replace the CSM's own, the same luck per policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_params
from pipeline.synthetic.simulation import CONTROL, Actions, World, simulate
from pipeline.synthetic.world import INTERVENTIONS, make_accounts, make_calendar

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "synthetic.accounts=400",
    "synthetic.history_months=24",
    "synthetic.prehistory_months=12",
]


def new_world(*extra: str) -> World:
    params = load_params(ROOT / "params.yaml", [*SMALL, *extra])
    cal = make_calendar(params.synthetic, params.features)
    acc = make_accounts(params.synthetic, cal, np.random.default_rng([params.synthetic.seed, 1]))
    return World(params.synthetic, cal, acc)


def engine_plays(world: World, share: float, seed: int) -> Actions:
    """A random exploration: ``share`` of eligible accounts, each arm (and control) alike."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(world.eligible())
    picked = pool[rng.random(pool.size) < share]
    kind = rng.integers(CONTROL, len(INTERVENTIONS), picked.size)
    arms = len(INTERVENTIONS) + 1
    return Actions(picked, kind, np.full(picked.size, share / arms), np.full(picked.size, 2))


def run_policy(share: float, months: int = 30) -> World:
    """The world to month 20 as the CSMs run it, then ``share`` explored each month."""
    world = new_world().run(until=20)
    for m in range(20, months):
        world.step(engine_plays(world, share, seed=m))
    return world


def same_history(a: World, b: World) -> bool:
    ha, hb = a.history(), b.history()
    arrays = [
        (ha.health, hb.health), (ha.alive, hb.alive), (ha.pending, hb.pending),
        (ha.budget, hb.budget), (ha.csm_final, hb.csm_final),
    ]  # fmt: skip
    arrays += [(ha.interventions[k], hb.interventions[k]) for k in ha.interventions]
    arrays += [(ha.contracts[k], hb.contracts[k]) for k in ha.contracts]
    return all(np.array_equal(x, y, equal_nan=True) for x, y in arrays)


def test_the_world_replays_byte_identically_under_the_same_actions():
    assert same_history(run_policy(0.2), run_policy(0.2))
    assert not same_history(run_policy(0.2), run_policy(0.0))


def test_simulate_is_the_world_stepped_to_its_end_with_no_external_plays():
    world = new_world()
    stepped = World(world.cfg, world.cal, world.acc)
    for _ in range(world.cal.months):
        stepped.step(Actions.empty())
    whole = simulate(world.cfg, world.cal, world.acc)
    assert np.array_equal(stepped.history().health, whole.health, equal_nan=True)
    assert np.array_equal(stepped.history().interventions["kind"], whole.interventions["kind"])


def test_engine_plays_replace_the_csms_own_and_use_their_capacity():
    # given a CSM with every slot of the month taken by engine plays on their accounts
    world = new_world("synthetic.csm_capacity_per_month=3").run(until=20)
    eligible = np.flatnonzero(world.eligible())
    owner = world.csm[eligible]
    busiest = np.bincount(owner).argmax()
    mine = eligible[owner == busiest][:3]
    actions = Actions(mine, np.array([0, 1, 2]), np.array([0.5, 0.25, 0.125]), np.full(3, 1))
    # when the month is stepped
    world.step(actions)
    log = world.history().interventions
    this_month = log["month"] == 20
    # then the CSM ran exactly the engine's three plays, logged with source and propensity
    theirs = this_month & (log["csm"] == busiest)
    assert sorted(log["account"][theirs]) == sorted(mine)
    assert set(log["source"][theirs]) == {1}
    by_account = dict(zip(log["account"][theirs], log["propensity"][theirs], strict=True))
    assert [by_account[a] for a in mine] == [0.5, 0.25, 0.125]
    # and the CSMs' own plays carry no propensity
    own = this_month & (log["source"] == 0)
    assert own.any() and np.isnan(log["propensity"][own]).all()


def test_controls_hold_accounts_out_of_the_csms_own_plays_and_are_logged():
    base = new_world().run(until=20)
    base.step()
    log = base.history().interventions
    acted = log["account"][(log["month"] == 20) & (log["source"] == 0)]
    world = new_world().run(until=20)
    world.step(Actions(acted, np.full(acted.size, CONTROL), np.full(acted.size, 0.1),
                       np.full(acted.size, 2)))  # fmt: skip
    after = world.history()
    assert not np.isin(after.interventions["account"][after.interventions["month"] == 20],
                       acted).any()  # fmt: skip
    assert np.array_equal(after.assignments["account"], acted)
    assert (after.assignments["kind"] == CONTROL).all()


def test_two_policies_meet_the_same_luck_on_accounts_neither_touches():
    # given one policy that plays on some of CSM 0's accounts for three months, one that does not
    a, b = new_world().run(until=20), new_world().run(until=20)
    for _ in range(3):
        pool = np.flatnonzero(a.eligible() & (a.csm == 0))[:2]
        a.step(Actions(pool, np.array([0, 2])[: pool.size], np.full(pool.size, 0.5),
                       np.full(pool.size, 1)))  # fmt: skip
        b.step()
    ha, hb = a.history(), b.history()
    # then every account outside CSM 0's book follows the same path under both, month by month
    spared = (a.csm != 0) & (b.csm != 0) & (a.acc.csm != 0)
    assert 200 < spared.sum() < a.acc.n
    assert np.array_equal(ha.health[spared], hb.health[spared], equal_nan=True)
    assert not np.array_equal(ha.health[~spared], hb.health[~spared], equal_nan=True)


def test_an_engine_play_moves_health_by_its_true_effect_the_month_after():
    base = new_world().run(until=20)
    control = new_world().run(until=20)
    pool = np.flatnonzero(base.eligible())
    control.step()
    log = control.history().interventions
    untouched = pool[~np.isin(pool, log["account"][log["month"] == 20])][:5]
    kind = np.array([0, 1, 2, 3, 4])
    base.step(Actions(untouched, kind, np.full(5, 1.0), np.full(5, 1)))
    played = base.history().interventions
    this_month = (played["month"] == 20) & np.isin(played["account"], untouched)
    effect = dict(zip(played["account"][this_month], played["effect"][this_month], strict=True))
    assert effect[untouched[0]] != 0
    base.step()
    control.step()
    moved = base.history().health[untouched, 21] - control.history().health[untouched, 21]
    still = ~np.isnan(moved)
    assert still.sum() >= 3
    assert moved[still] == pytest.approx([effect[a] for a in untouched[still]], abs=1e-12)


def test_actions_are_checked():
    world = new_world().run(until=20)
    gone = np.flatnonzero(~world.eligible())[:1]
    with pytest.raises(ValueError, match="not customers since before it"):
        world.step(Actions(gone, np.array([0]), np.array([0.5]), np.array([1])))
    with pytest.raises(ValueError, match="propensity"):
        Actions(np.array([1]), np.array([0]), np.array([0.0]), np.array([1]))
    with pytest.raises(ValueError, match="twice"):
        Actions(np.array([1, 1]), np.array([0, 1]), np.array([0.5, 0.5]), np.array([1, 1]))


def test_a_loop_world_starts_from_the_plain_worlds_state_whatever_its_length():
    from pipeline.synthetic import loop_world, simulate_world

    params = load_params(ROOT / "params.yaml", SMALL)
    short = loop_world(params.synthetic, params.features, 2)
    long = loop_world(params.synthetic, params.features, 6)
    assert short.month == long.month
    for name in ("health", "alive", "arr", "csm", "champion_gone", "pending"):
        assert np.array_equal(getattr(short, name), getattr(long, name)), name
    # and it is the plain world up to its end date
    plain = simulate_world(params.synthetic, params.features)
    months = short.month
    np.testing.assert_array_equal(short.history().health[:, :months], plain.hist.health[:, :months])
