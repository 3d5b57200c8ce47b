"""One planning run on frames built in code: options from the catalog, funding within capacity,
the plan tables and the learning loop's holdout."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.config import Capacity, PlanConfig, Play
from models.interventions.plans import count_plans, search_plans
from models.interventions.portfolio import (
    AccountEffects,
    CatalogOptions,
    Grounding,
    PlanTables,
    blend_reprediction,
    catalog_options,
    exclusions,
    experiment_weights,
    fund,
    make_plans,
    reprediction_lifts,
)

AS_OF = date(2026, 10, 1)
CATALOG = {
    "call": Play(cost=100, csm_hours=2, min_days=0, max_days=365),
    "discount": Play(arr_share=0.1, csm_hours=1, min_days=0, max_days=365),
    "training": Play(cost=300, csm_hours=4, min_days=60, max_days=365),
    "webinar": Play(cost=50),  # the effect model has no estimate for it
}


class _Effects:
    """A fitted effect model's interface with a fixed effect per kind (no modifiers)."""

    modifier_columns_: list[str] = []  # noqa: RUF012
    overlap = (0.02, 0.98)

    def __init__(self, lift: dict[str, float]) -> None:
        self.kinds_ = list(lift)
        self.lift = np.array(list(lift.values()))

    def effects(self, p0, segment, modifiers):
        point = np.tile(self.lift, (len(p0), 1))
        return point, point - 0.02, point + 0.02

    def propensity(self, context, p0, segment, modifiers):
        k = len(self.kinds_)
        out = np.full((len(p0), 1 + k), 1 / (1 + k))
        out[:5, 1] = 0.01  # the first accounts are outside the overlap for the first kind
        return out

    def extrapolated(self, propensity):
        lo, hi = self.overlap
        return (propensity[:, 1:] < lo) | (propensity[:, 1:] > hi)


def _scores(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "account_id": [f"A{i:03d}" for i in range(n)],
            "contract_id": [f"A{i:03d}-1" for i in range(n)],
            "segment": rng.choice(["smb", "ent"], n),
            "arr": rng.integers(5, 100, n) * 1000.0,
            "days_to_renewal": rng.integers(20, 300, n).astype(float),
            "win_probability": rng.uniform(0.3, 0.8, n),
        }
    )


def _kept(label: str) -> float:
    """What a plan (by its label) leaves of the renewal: Π (1 − arr_share) of its plays."""
    if label == "business as usual":
        return 1.0
    return float(np.prod([1 - CATALOG[play].arr_share for play in label.split(" + ")]))


def test_catalog_options_are_the_estimated_kinds_and_name_the_others():
    # given a catalog with a kind the model did not estimate, and a model kind it does not list
    cfg = PlanConfig(catalog={**CATALOG, "call": Play(cost=100, offsets=[30, 0, 30])})
    # when the options are made
    offer = catalog_options(cfg, ["training", "call", "letter"])
    # then one option per listed, estimated kind and timing slot, in catalog order
    assert isinstance(offer, CatalogOptions)
    assert [o.label for o in offer.options] == ["call", "call +30d", "training"]
    assert offer.options[0].cost == 100 and offer.options[2].csm_hours == 4
    assert offer.unknown == ("discount", "webinar")
    assert offer.unlisted == ("letter",)


def test_a_catalog_with_no_estimated_kind_is_refused_naming_the_estimated_ones():
    cfg = PlanConfig(catalog={"webinar": Play(cost=50)})
    with pytest.raises(ValueError, match=r"lists no kind .* \(estimated: call, letter\)"):
        catalog_options(cfg, ["call", "letter"])
    with pytest.raises(ValueError, match=r"\(estimated: none\)"):
        catalog_options(cfg, [])


def test_exclusions_keep_only_pairs_of_usable_kinds():
    cfg = PlanConfig(catalog=CATALOG, exclusions=[("call", "discount"), ("call", "exec_call")])
    options = catalog_options(cfg, ["call", "discount"]).options
    assert exclusions(cfg, options) == [("call", "discount")]
    assert exclusions(cfg, catalog_options(cfg, ["call"]).options) == []


def test_fund_picks_the_best_plans_within_capacity():
    # given three accounts that each gain from one call (2 CSM hours), the middle one most
    cfg = PlanConfig(catalog=CATALOG)
    options = catalog_options(cfg, ["call"]).options
    p0 = np.array([0.5, 0.5, 0.5])
    lift = np.array([[0.1], [0.2], [0.05]])
    arr = np.array([10_000.0, 10_000.0, 10_000.0])
    days = np.array([90.0, 90.0, 90.0])
    search = search_plans(p0, lift, lift, lift, arr, days, options, max_plays=1)
    # when funded with hours for one call
    funding = fund(search, {"csm_hours": 2.0, "exec_hours": None, "budget": None})
    # then only the account the call saves most for gets it, with that plan's ARR saved
    assert funding.plan.tolist() == [0, 1, 0]
    np.testing.assert_allclose(funding.saved, [0.0, 2000.0, 0.0])
    # among business as usual for each and the three calls
    assert funding.candidates == 6 and funding.allocation is not None
    assert funding.allocation.used["csm_hours"] == 2.0
    # and with no account at all there is nothing to allocate
    empty = np.empty((0, 1))
    none = fund(search_plans(p0[:0], empty, empty, empty, arr[:0], days[:0], options,
                             max_plays=1), {"csm_hours": None})  # fmt: skip
    assert none.allocation is None and none.candidates == 0
    assert none.plan.shape == (0,) and none.saved.shape == (0,)


def test_one_account_plan_by_hand():
    # given one account at 50 % with 10,000 ARR and a call that adds 10 points for 100
    cfg = PlanConfig(catalog={"call": CATALOG["call"]}, epsilon=0.0, exploration={"share": 0})
    scores = _scores(1).assign(win_probability=0.5, arr=10_000.0, days_to_renewal=90.0)
    effects = _Effects({"call": 0.1})
    # when planned
    out = make_plans(cfg, effects, scores, scores, AS_OF)  # type: ignore[arg-type]
    # then the call saves 10,000 × (0.6 − 0.5) and nets 900; it is funded and followed
    row = out.plans.iloc[0]
    assert row["best_plan"] == "call" and row["recommended"] == "call" and row["funded"]
    assert row["lift"] == pytest.approx(0.1)
    assert row["arr_saved"] == pytest.approx(1000.0)
    assert row["net_value"] == pytest.approx(900.0)
    assert row["arm"] == "plan" and row["action"] == "call" and row["propensity"] == 1.0
    assert out.plan_space == 2 and out.exact


def test_plan_tables_have_one_row_per_account_and_per_account_and_kind():
    # given 200 scored accounts and an effect model of three kinds (one the catalog lacks)
    scores = _scores(200)
    untouched = scores.copy()
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=150), epsilon=0.5,
                     random_share=1.0)  # fmt: skip
    effects = _Effects({"call": 0.05, "discount": 0.08, "letter": 0.01, "training": 0.06})
    # when planned
    out = make_plans(cfg, effects, scores, scores, AS_OF)  # type: ignore[arg-type]
    # then typed tables: plans in the order of the scores, effects per (account, kind)
    assert isinstance(out, PlanTables)
    plans = out.plans
    assert plans["account_id"].tolist() == scores["account_id"].tolist()
    assert plans.columns[:7].tolist() == [
        "account_id", "contract_id", "segment", "arr", "days_to_renewal", "win_probability",
        "best_plan",
    ]  # fmt: skip
    assert plans.columns[-1] == "as_of" and (plans["as_of"] == pd.Timestamp(AS_OF)).all()
    assert out.effects.shape == (200 * 4, 7)
    assert out.effects["kind"].tolist()[:4] == ["call", "discount", "letter", "training"]
    assert out.effects["extrapolated"].sum() == 5, "the first five accounts, first kind"
    options = catalog_options(cfg, effects.kinds_).options
    assert out.exact and out.plan_space == count_plans(options, cfg.max_plays) == 7
    assert "letter" not in set(plans["best_plan"])
    # and the allocation stays within capacity, its frontier laid out
    funded = plans[plans["funded"]]
    assert len(funded) > 0 and funded["recommended_csm_hours"].sum() <= 150 + 1e-9
    assert out.allocation["used"]["csm_hours"] == pytest.approx(
        funded["recommended_csm_hours"].sum()
    )
    assert out.allocation["capacity"] == {"csm_hours": 150, "exec_hours": None, "budget": None}
    assert out.frontier.columns.tolist() == ["budget", "arr_saved", "cost", "net", "optimal"]
    assert not plans.loc[~plans["funded"], "recommended"].ne("business as usual").any()
    pd.testing.assert_frame_equal(scores, untouched, obj="the scores are not mutated")


def test_a_random_holdout_play_never_needs_more_than_the_funded_plan():
    # given a holdout that gives every held-out account a random allowed play
    scores = _scores(400, seed=3)
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=300), epsilon=0.5,
                     random_share=1.0)  # fmt: skip
    effects = _Effects({"call": 0.05, "discount": 0.08, "training": 0.06})
    # when planned
    plans = make_plans(cfg, effects, scores, scores, AS_OF).plans  # type: ignore[arg-type]
    # then the experiment runs among the funded accounts only
    assert ((plans["arm"] != "ineligible") == plans["funded"]).all()
    # and a random play needs no more of any resource, nor gives more of the renewal away
    random_arm = (plans["arm"] == "holdout_random") & (plans["action"] != plans["recommended"])
    randomised = plans[random_arm]
    assert len(randomised) > 0, "the case exercises the random arm"
    for row in randomised.itertuples():
        play = CATALOG[row.action]
        assert play.cost <= row.recommended_cost
        assert play.csm_hours <= row.recommended_csm_hours
        assert play.exec_hours <= row.recommended_exec_hours
        assert play.arr_share <= 1 - _kept(row.recommended) + 1e-9
    # a discount never stands in for a funded plan that gives nothing away
    gives_nothing = plans["recommended"].map(_kept) == 1.0
    assert not (plans.loc[gives_nothing & (plans["arm"] == "holdout_random"), "action"]
                == "discount").any()  # fmt: skip


def test_options_of_a_kind_without_an_estimate_are_refused_by_name():
    cfg = PlanConfig(catalog=CATALOG)
    options = catalog_options(cfg, ["call", "webinar"]).options
    effects = _Effects({"call": 0.1})
    with pytest.raises(ValueError, match="did not estimate: \\['webinar'\\]"):
        make_plans(cfg, effects, _scores(3), _scores(3), AS_OF, options)  # type: ignore[arg-type]


def test_nothing_worth_its_cost_funds_nothing_and_holds_nobody_out():
    # given plays that lift nothing (and no exploration)
    cfg = PlanConfig(catalog=CATALOG, exploration={"share": 0})
    effects = _Effects({"call": 0.0, "discount": 0.0, "training": 0.0})
    # when planned
    out = make_plans(cfg, effects, _scores(20), _scores(20), AS_OF)  # type: ignore[arg-type]
    # then every account keeps business as usual, outside the experiment
    assert (out.plans["best_plan"] == "business as usual").all()
    assert not out.plans["funded"].any() and (out.plans["arm"] == "ineligible").all()
    assert out.allocation["candidates"] == 20, "business as usual for each"
    assert out.allocation["objective"] == 0.0
    assert out.allocation["used"] == {"csm_hours": 0.0, "exec_hours": 0.0, "budget": 0.0}


def test_exploration_spends_a_share_of_capacity_across_every_kind_and_logs_each_arm():
    # given 600 accounts, capacity for about 75 plays, and a fifth of it for exploration
    scores = _scores(600, seed=5)
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=150), epsilon=0.0,
                     exploration={"share": 0.2})  # fmt: skip
    effects = _Effects({"call": 0.05, "discount": 0.08, "training": 0.06})
    # when planned
    out = make_plans(cfg, effects, scores, scores, AS_OF)  # type: ignore[arg-type]
    plans, given = out.plans, out.assignments
    explored = plans["explore_arm"] != ""
    # then the explored accounts are funded nothing, and every kind (and the control) is drawn
    assert explored.sum() == out.explored > 0
    assert not plans.loc[explored, "funded"].any()
    assert set(plans.loc[explored, "explore_arm"]) == {"call", "discount", "training", "none"}
    # the exploration's plays and the funded plans together stay within capacity
    hours = {k: CATALOG[k].csm_hours for k in ("call", "discount", "training")}
    spent = plans.loc[explored, "explore_arm"].map(hours).fillna(0).sum()
    assert spent + plans["recommended_csm_hours"].sum() <= 150 + 1e-9
    assert spent > 0
    # and every arm is exported in the contract's assignments shape with its propensity
    randomised = given[given["source"] == "randomised"].set_index("account_id")
    ids = plans.loc[explored, "account_id"]
    assert randomised.loc[ids, "arm"].tolist() == plans.loc[explored, "explore_arm"].tolist()
    assert np.allclose(randomised.loc[ids, "propensity"], plans.loc[explored, "explore_propensity"])
    recommended = given[given["source"] == "recommended"]
    assert set(recommended["account_id"]) == set(plans.loc[plans["funded"], "account_id"])
    assert (given["ts"] == pd.Timestamp(AS_OF, tz="UTC")).all()


def test_no_exploration_when_its_share_is_zero():
    scores = _scores(200)
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=150), exploration={"share": 0})
    effects = _Effects({"call": 0.05, "discount": 0.08})
    out = make_plans(cfg, effects, scores, scores, AS_OF)  # type: ignore[arg-type]
    assert out.explored == 0 and (out.plans["explore_arm"] == "").all()
    assert (out.assignments["source"] == "randomised").sum() == (
        out.plans["arm"] == "holdout_random"
    ).sum()


def _grounded(mode: str) -> tuple[PlanTables, pd.DataFrame]:
    """Per kind, the mean planned effect and interval after grounding: call read out with a
    bias of -0.07 sure to 0.01, discount not read out (se 0)."""
    scores = _scores(100)
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=150), exploration={"share": 0})
    effects = _Effects({"call": 0.05, "discount": 0.08})
    grounding = Grounding(
        shift=pd.Series({"call": -0.07, "discount": 0.0}),
        se=pd.Series({"call": 0.01, "discount": 0.0}),
        mode=mode,
    )
    out = make_plans(cfg, effects, scores, scores, AS_OF, grounding=grounding)  # type: ignore[arg-type]
    return out, out.effects.groupby("kind")[["effect", "effect_low", "effect_high"]].mean()


def test_grounding_moves_one_kinds_effects_and_widens_their_interval():
    out, table = _grounded("shift")
    assert table.loc["call", "effect"] == pytest.approx(-0.02)
    width = table.loc["call", "effect_high"] - table.loc["call", "effect_low"]
    assert width == pytest.approx(2 * 1.959963984540054 * np.hypot(0.02 / 1.959963984540054, 0.01))
    assert table.loc["discount", "effect"] == pytest.approx(0.08)
    assert "call" not in set(out.plans["best_plan"]), "a play that hurts is never recommended"


def test_shrunk_grounding_leaves_a_kind_read_out_alone_as_fitted():
    assert Grounding(shift=pd.Series(dtype=float), se=pd.Series(dtype=float)).mode == "shrink"
    # call read out alone (discount's se 0: not read out): no other kind's bias says how far
    # the effect model's estimates stray, so its own gap, however sure, does not move it
    _, table = _grounded("shrink")
    assert table.loc["call", "effect"] == pytest.approx(0.05)
    assert table.loc["discount", "effect"] == pytest.approx(0.08)


@pytest.mark.parametrize(
    ("csm_hours", "team", "expected"),
    [
        (3000, 100.0, 10.0),  # 1,286 plays' worth of hours: the team's 100 plays a period bind
        (300, 1000.0, 0.1 * 300 / (7 / 3)),  # 129 plays' worth: the plan's capacity binds
    ],
)
def test_exploration_takes_its_share_of_the_team_or_of_the_capacity_whichever_is_less(
    csm_hours: float, team: float, expected: float
):
    # given a tenth explored; a play drawn uniformly over call, discount and training needs
    # (2 + 1 + 4) / 3 CSM hours
    scores = _scores(1500, seed=9).assign(arr=lambda f: f["arr"].clip(upper=50_000.0))
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=csm_hours), epsilon=0.0,
                     exploration={"share": 0.1, "controls_per_play": 2.0})  # fmt: skip
    effects = _Effects({"call": 0.05, "discount": 0.08, "training": 0.06})
    out = make_plans(cfg, effects, scores, scores, AS_OF, team_plays=team)  # type: ignore[arg-type]
    arms = out.plans["explore_arm"]
    plays = arms.isin(["call", "discount", "training"]).sum()
    assert abs(plays - expected) <= 3 * np.sqrt(expected)
    assert abs((arms == "none").sum() - 2 * expected) <= 3 * np.sqrt(2 * expected)
    assert out.allocation["exploration"]["capacity_left"]["csm_hours"] >= 0.85 * csm_hours


def test_blending_the_reprediction_moves_the_estimate_and_widens_its_interval():
    # given an estimate of +0.02 within ±0.03, and a re-prediction of −0.02
    point = np.array([[0.02]])
    estimated = AccountEffects(point, point - 0.03, point + 0.03, np.array([[0.5, 0.5]]))
    blended = blend_reprediction(estimated, np.array([[-0.02]]), 0.25)
    # then a quarter of the way there, each side widened by the 0.01 moved
    assert blended.point[0, 0] == pytest.approx(0.01)
    assert blended.low[0, 0] == pytest.approx(0.01 - np.hypot(0.03, 0.01))
    assert blended.high[0, 0] == pytest.approx(0.01 + np.hypot(0.03, 0.01))
    assert blend_reprediction(estimated, np.array([[-0.02]]), 0.0) is estimated


class _HistoryModel:
    """A win model that reads the play history: +0.1 per call in the year, −0.05 per
    intervention in 90 days (a blank count reads 0)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 0.5 + 0.1 * X["call_365d"].fillna(0) - 0.05 * X["interventions_90d"]
        return np.column_stack([1 - p, p])


def test_reprediction_lifts_rescore_the_history_with_one_more_play_of_each_kind():
    X = pd.DataFrame({"call_365d": [0.0, np.nan], "interventions_90d": [1, 0],
                      "interventions_365d": [2, 0], "days_since_call": [40.0, np.nan]})  # fmt: skip
    lifts = reprediction_lifts(_HistoryModel(), X, ["call", "webinar"])
    # a call: +0.1 for the call, −0.05 for one more intervention; a webinar (no column of
    # its own): only the intervention counts move
    np.testing.assert_allclose(lifts, [[0.05, -0.05], [0.05, -0.05]])


def test_plans_blend_the_reprediction_by_its_weight():
    scores = _scores(50)
    effects = _Effects({"call": 0.05, "discount": 0.08, "training": 0.06})
    reprediction = np.tile([0.01, 0.0, 0.10], (50, 1))
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=150), epsilon=0.0,
                     reprediction_weight=0.5)  # fmt: skip
    out = make_plans(cfg, effects, scores, scores, AS_OF, reprediction=reprediction)  # type: ignore[arg-type]
    table = out.effects.groupby("kind")["effect"].mean()
    assert table.to_dict() == pytest.approx({"call": 0.03, "discount": 0.04, "training": 0.08})
    off = make_plans(cfg.model_copy(update={"reprediction_weight": 0.0}), effects, scores,
                     scores, AS_OF, reprediction=reprediction)  # type: ignore[arg-type]  # fmt: skip
    assert off.effects.groupby("kind")["effect"].mean()["call"] == pytest.approx(0.05)


def test_experiment_weights_follow_the_read_out_and_shrink_with_its_noise():
    # the re-prediction says +0.02 above the effect model on both kinds
    estimated = np.tile([0.00, 0.01], (4, 1))
    naive = estimated + 0.02
    sure = pd.DataFrame({"shift": [0.02, -0.01], "se": [0.0, 0.001]}, index=["a", "b"])
    weights = experiment_weights(estimated, naive, ["a", "b", "c"], sure)
    # a read-out as far as the re-prediction: all the way; one pointing away: none; unread: none
    np.testing.assert_allclose(weights, [1.0, 0.0, 0.0])
    halfway = pd.DataFrame({"shift": [0.01], "se": [0.0]}, index=["a"])
    assert experiment_weights(estimated, naive, ["a", "b"], halfway)[0] == pytest.approx(0.5)
    # noise as large as the gap halves the weight; no read-out, no weight
    noisy = pd.DataFrame({"shift": [0.02], "se": [0.02]}, index=["a"])
    assert experiment_weights(estimated, naive, ["a", "b"], noisy)[0] == pytest.approx(0.5)
    assert not experiment_weights(estimated, naive, ["a", "b"], None).any()


def test_plans_take_each_kinds_weight_from_the_experiment():
    # given a re-prediction 0.04 below the effect model on calls and 0.04 above on training
    scores = _scores(50)
    effects = _Effects({"call": 0.05, "discount": 0.08, "training": 0.06})
    reprediction = np.tile([0.01, 0.08, 0.10], (50, 1))
    cfg = PlanConfig(catalog=CATALOG, capacity=Capacity(csm_hours=150), epsilon=0.0,
                     reprediction_weight="experiment")  # fmt: skip
    # and an experiment sure that calls are 0.04 too high, and training 0.04 too high as well
    readout = pd.DataFrame(
        {"shift": [-0.04, -0.04], "se": [0.0, 0.0]}, index=pd.Index(["call", "training"])
    )
    out = make_plans(cfg, effects, scores, scores, AS_OF, reprediction=reprediction,  # type: ignore[arg-type]
                     readout=readout)  # fmt: skip
    # then calls move all the way to the re-prediction, training (it points the other way) and
    # discounts (not read) stay as the effect model has them
    assert out.reprediction_weights == {"call": 1.0, "discount": 0.0, "training": 0.0}
    table = out.effects.groupby("kind")["effect"].mean()
    assert table.to_dict() == pytest.approx({"call": 0.01, "discount": 0.08, "training": 0.06})
    # and without a read-out nothing moves
    unread = make_plans(cfg, effects, scores, scores, AS_OF, reprediction=reprediction)  # type: ignore[arg-type]
    assert set(unread.reprediction_weights.values()) == {0.0}
