"""`healthscore plan`, `plan-eval` and `evaluate-plays` end to end on a small world."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.base import spoken
from models.config import PlanConfig, Play
from models.interventions.portfolio import catalog_options, exclusions
from pipeline import stages
from pipeline.cli import EXIT_DATA, app
from pipeline.config import load_params
from pipeline.io import catalog
from pipeline.lab import oracle
from pipeline.stages import plan as plan_stage
from pipeline.stages.plan import PlanError, evaluate_plan
from tests.pipeline.test_train import small

partition = catalog.PLANS.path

ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND = date(2026, 8, 1), date(2026, 10, 1)
CSM_HOURS = 40.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    params = load_params(
        ROOT / "params.yaml", small(tmp, f"plan.capacity.csm_hours={CSM_HOURS}", "plan.epsilon=0.2")
    )
    stages.run_data(params, quiet=True)
    stages.run_features(params, quiet=True)
    trained = stages.run_train(params, judge=oracle.judge(params))
    for day in (FIRST, SECOND):
        stages.run_score(params, day)
        stages.run_plan(params, day)
    return params, trained


def kept_share(params, labels):
    """What each plan (by its label) leaves of the renewal: Π (1 − arr_share) of its plays."""
    share = {kind: play.arr_share for kind, play in params.plan.catalog.items()}
    return np.array([
        np.prod([1 - share[play.split(" ")[0]] for play in label.split(" + ")])
        if label != "business as usual" else 1.0
        for label in labels
    ])  # fmt: skip


def read(params, day, name="plans.parquet"):
    return pd.read_parquet(partition(params.output_dir, day) / name)


def test_training_logs_effects_beside_the_oracle(planned):
    params, trained = planned
    metrics = MlflowClient(params.mlflow.tracking_uri).get_run(trained.run_id).data.metrics
    kinds = {k.removeprefix("effect_").removesuffix("_ate") for k in metrics
             if k.startswith("effect_") and k.endswith("_ate")}  # fmt: skip
    assert kinds, "no average effect logged"
    for kind in kinds:
        assert metrics[f"effect_{kind}_lo"] <= metrics[f"effect_{kind}_ate"]
        assert metrics[f"effect_{kind}_ate"] <= metrics[f"effect_{kind}_hi"]
        assert 0 <= metrics[f"effect_{kind}_share_outside_overlap"] <= 1
        assert f"oracle_effect_{kind}_error" in metrics


def test_every_scored_account_gets_a_plan_worth_its_cost_or_none(planned):
    params, _ = planned
    plans = read(params, SECOND)
    scores = pd.read_parquet(params.output_dir / f"scores/as_of={SECOND}/scores.parquet")
    assert sorted(plans["account_id"]) == sorted(scores["account_id"])
    acting = plans["best_plan"] != "business as usual"
    assert acting.any()
    assert (plans.loc[acting, "net_value"] > 0).all()
    assert (plans.loc[~acting, ["arr_saved", "cost"]] == 0).all().all()
    # ARR saved nets out what a plan gives away of the renewal (a discount's arr_share)
    p0, arr = plans["win_probability"], plans["arr"]
    keep = kept_share(params, plans["best_plan"])
    np.testing.assert_allclose(
        plans["arr_saved"], arr * ((p0 + plans["lift"]) * keep - p0), rtol=1e-9, atol=1e-6
    )
    np.testing.assert_allclose(
        plans["arr_given_away"], arr * (p0 + plans["lift"]) * (1 - keep), rtol=1e-9, atol=1e-6
    )
    # and the funded plan's lift is its win probability's, its saved ARR net the same way
    funded = plans[plans["funded"]]
    keep = kept_share(params, funded["recommended"])
    lift, p0, arr = funded["recommended_lift"], funded["win_probability"], funded["arr"]
    np.testing.assert_allclose(
        funded["recommended_arr_saved"], arr * ((p0 + lift) * keep - p0), rtol=1e-9, atol=1e-6
    )
    same = funded["recommended"] == funded["best_plan"]
    np.testing.assert_allclose(funded.loc[same, "recommended_lift"], funded.loc[same, "lift"])
    assert (plans["lift_low"] <= plans["lift"] + 1e-12).all()
    assert (plans["lift"] <= plans["lift_high"] + 1e-12).all()
    effects = read(params, SECOND, "effects.parquet")
    assert len(effects) == len(plans) * effects["kind"].nunique()
    assert effects["propensity"].between(0, 1).all()


def test_funded_plans_stay_within_capacity(planned):
    params, _ = planned
    plans = read(params, SECOND)
    allocation = json.loads((partition(params.output_dir, SECOND) / "allocation.json").read_text())
    funded = plans[plans["funded"]]
    assert funded["recommended_csm_hours"].sum() <= CSM_HOURS + 1e-9
    assert allocation["used"]["csm_hours"] == pytest.approx(funded["recommended_csm_hours"].sum())
    assert allocation["used"]["budget"] == pytest.approx(funded["recommended_cost"].sum())
    assert (plans.loc[~plans["funded"], "recommended"] == "business as usual").all()
    wanted = plans.loc[plans["best_plan"] != "business as usual", "csm_hours"].sum()
    if wanted > CSM_HOURS:  # capacity binds: one more hour is worth something
        assert allocation["shadow_prices"]["csm_hours"] > 0


def test_the_holdout_logs_the_propensity_of_what_runs(planned):
    params, _ = planned
    plans = read(params, SECOND)
    assert set(plans["arm"]) <= {"plan", "holdout_bau", "holdout_random", "ineligible"}
    eligible = plans["arm"] != "ineligible"
    assert (eligible == plans["funded"]).all()  # the experiment runs among the funded accounts
    assert plans["propensity"].between(0, 1).all() and (plans["propensity"] > 0).all()
    held = plans["arm"].isin(["holdout_bau", "holdout_random"])
    assert held[eligible].mean() < 0.6  # plan.epsilon = 0.2 of a few dozen funded accounts
    follows = plans["arm"] == "plan"
    # exact propensities: following the plan has 1 − ε plus the random arm's share of it
    assert (plans.loc[follows, "propensity"] >= 1 - 0.2 - 1e-12).all()
    assert (plans.loc[~eligible, "propensity"] == 1).all()
    bau = plans["arm"] == "holdout_bau"
    assert (plans.loc[bau, "action"] == "business as usual").all()
    # a random play stands in for the funded plan without needing more of any resource
    randomised = plans[
        (plans["arm"] == "holdout_random") & (plans["action"] != plans["recommended"])
    ]
    for row in randomised.itertuples():
        play = params.plan.catalog[row.action]
        assert play.csm_hours <= row.recommended_csm_hours
        assert play.exec_hours <= row.recommended_exec_hours
        # nor gives more of the renewal away (a random discount for a funded training would)
        assert play.arr_share <= 1 - kept_share(params, [row.recommended])[0] + 1e-9
        assert play.cost <= row.recommended_cost
    assert (plans.loc[follows, "action"] == plans.loc[follows, "recommended"]).all()
    # one arm per contract: the same contract keeps its arm from one run to the next
    first = read(params, FIRST)[["contract_id", "arm"]]
    both = first.merge(plans[["contract_id", "arm"]], on="contract_id", suffixes=("_1", "_2"))
    kept = both[(both["arm_1"] != "ineligible") & (both["arm_2"] != "ineligible")]
    held_1 = kept["arm_1"].str.startswith("holdout")
    held_2 = kept["arm_2"].str.startswith("holdout")
    assert (held_1 == held_2).all()


def test_exclusions_between_kinds_the_model_did_not_estimate_are_dropped(planned):
    params, _ = planned
    options = catalog_options(params.plan, ["exec_call", "training"]).options
    assert params.plan.exclusions == [("csm_change", "exec_call")]
    assert exclusions(params.plan, options) == []  # csm_change cannot be in a plan anyway


def test_the_stage_logs_kinds_one_side_lacks_and_refuses_an_empty_catalog(caplog):
    # given a catalog with a kind the effect model did not estimate, and one it did not list
    cfg = PlanConfig(catalog={"call": Play(cost=10), "webinar": Play(cost=5)})
    # when the stage takes the options, then it names both in the log
    with caplog.at_level("INFO", logger="healthscore"):
        options = plan_stage.catalog_options(cfg, ["call", "letter"])
    assert [o.kind for o in options] == ["call"]
    assert "no estimate for (never recommended): webinar" in caplog.text
    assert "logged kinds not in plan.catalog (not recommended): letter" in caplog.text
    # and a catalog of no estimated kind is a PlanError (the CLI exits 3), naming the kinds
    with pytest.raises(PlanError, match=r"lists no kind .* \(estimated: letter\)"):
        plan_stage.catalog_options(cfg, ["letter"])


def test_rerun_replaces_the_partition_with_identical_files(planned):
    params, _ = planned
    before = read(params, SECOND)
    stages.run_plan(params, SECOND)
    pd.testing.assert_frame_equal(before, read(params, SECOND))


def test_plan_needs_the_scores_of_its_date(planned):
    params, _ = planned
    with pytest.raises(PlanError, match="run `healthscore score --as-of 2026-09-01` first"):
        stages.run_plan(params, date(2026, 9, 1))
    result = CliRunner().invoke(
        app, ["plan", "--params", str(ROOT / "params.yaml"), "--as-of", "2026-09-01",
              *(f"--set={s}" for s in small(params.output_dir.parent))],
    )  # fmt: skip
    assert result.exit_code == EXIT_DATA


def test_explain_shows_the_recommended_plays(planned):
    params, _ = planned
    plans = read(params, SECOND)
    account = plans.loc[plans["best_plan"] != "business as usual", "account_id"].iloc[0]
    args = ["explain", account, "--params", str(ROOT / "params.yaml"), "--as-of", str(SECOND),
            *(f"--set={s}" for s in small(params.output_dir.parent))]  # fmt: skip
    page = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert page["plays"]["best_plan"] == plans.set_index("account_id").loc[account, "best_plan"]
    assert len(page["plays"]["effects"]) >= 1
    text = CliRunner().invoke(app, args).stdout
    # the plan in words, as every page names it ("exec call", not "exec_call")
    assert "Best plan" in text and spoken(page["plays"]["best_plan"]) in text
    assert "_" not in text.split("Best plan")[1], "no raw kind anywhere after it"


def test_plan_eval_reads_renewals_known_since(planned):
    params, _ = planned
    try:
        result = evaluate_plan(params, FIRST)
    except PlanError as exc:  # too few renewals in a tiny world: the message says so
        assert "renewals known so far" in str(exc)
        return
    assert result["renewals_known"] > 0
    assert {"uplift", "uplift_ci_low", "qini_coefficient", "ips_value"} <= set(result)


def test_evaluate_plays_prints_the_policy_table(planned):
    params, _ = planned
    args = ["evaluate-plays", "--params", str(ROOT / "params.yaml"), "--as-of", str(SECOND),
            *(f"--set={s}" for s in small(params.output_dir.parent))]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in ("oracle_capacity", "naive_reprediction", "same_play_for_all", "true ATE",
                 "exact_averages", "with exact averages",
                 "95 % intervals over accounts"):  # fmt: skip
        assert text in result.stdout


def test_play_history_of_a_decision_counts_only_plays_before_it(planned):
    # given the decision rows the effect model learns from
    from models.interventions.uplift import decision_table
    from pipeline import io
    from pipeline.io.catalog import load_training_set
    from pipeline.shared.effects import HISTORY_FAMILY, history_at_decision, read_plays

    params, _ = planned
    data = load_training_set(params.output_dir)
    history = data.catalog.loc[data.catalog["family"] == HISTORY_FAMILY, "name"].tolist()
    labelled = data.table[data.table["renewed"].notna()].reset_index(drop=True)
    plays = read_plays(params)
    decisions = decision_table(labelled, plays, params.features.frequency, history=[])
    # when the history columns are rebuilt as of each decision
    with io.read_raw(params.data) as raw:
        rebuilt = history_at_decision(raw, params, data.catalog, decisions, history)
    # then every row has them (none missing for want of an earlier snapshot) ...
    assert rebuilt["interventions_365d"].notna().all()
    # ... and they count exactly the logged plays of the year strictly before decided_at, so the
    # play being judged is never among its own inputs
    ts = pd.to_datetime(plays["ts"])
    log = plays.assign(ts=ts.dt.tz_convert(None) if ts.dt.tz is not None else ts)
    sample = rebuilt[rebuilt["treatment"] != "none"].head(40)
    assert len(sample) > 10
    for row in sample.itertuples():
        decided = pd.Timestamp(row.decided_at)
        mine = log[log["account_id"] == row.account_id]
        year = mine[(mine["ts"] < decided) & (mine["ts"] >= decided - pd.Timedelta(days=365))]
        assert row.interventions_365d == len(year)
    # while the snapshot's own columns, at the end of the period, mostly count the play too
    treated = decisions["treatment"] != "none"
    differs = (
        decisions.loc[treated, "interventions_365d"] != rebuilt.loc[treated, "interventions_365d"]
    )
    assert differs.mean() > 0.5


def test_a_full_reprediction_weight_plans_with_the_win_model_rescored(planned):
    # given the plan of SECOND re-run with the estimates moved all the way to the win model
    # re-scored with one more play of each kind
    from pipeline.io import registry
    from pipeline.lab.evaluate_plays import naive_lifts
    from pipeline.shared.asof import features_as_of

    params, _ = planned
    fitted = read(params, SECOND, "effects.parquet")
    full = params.model_copy(
        update={"plan": params.plan.model_copy(update={"reprediction_weight": 1.0})}
    )
    try:
        stages.run_plan(full, SECOND)
        moved = read(params, SECOND, "effects.parquet")
        weights = catalog.PLAN_SUMMARY.read(params.output_dir, SECOND)["reprediction_weights"]
    finally:
        stages.run_plan(params, SECOND)  # the module's other tests read the default plan
    # then every estimate is the re-prediction, and differs from the effect model's
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, _ = registry.load_champion(params.mlflow.model_name, params.mlflow.alias, None)
    snapshot, _ = features_as_of(params.data, params.features, model, SECOND)
    kinds = list(model.effects.kinds_)
    ids = moved["account_id"].drop_duplicates()
    snapshot = snapshot.set_index("account_id").reindex(ids).reset_index()
    expected = pd.DataFrame(naive_lifts(model, snapshot, kinds), index=ids, columns=kinds)
    got = moved.pivot(index="account_id", columns="kind", values="effect").loc[ids, kinds]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
    assert not np.allclose(fitted["effect"], moved["effect"])
    assert weights == dict.fromkeys(kinds, 1.0)  # the summary says how far each kind moved
    assert (moved["effect_high"] - moved["effect_low"] >= fitted["effect_high"]
            - fitted["effect_low"] - 1e-12).all(), "moving widens, never narrows"  # fmt: skip
