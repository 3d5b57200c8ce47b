"""The learning loop in the synthetic world, small: it runs, measures and logs what it assigned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_params
from pipeline.io import catalog
from pipeline.lab.loop import LoopSettings, paired_gain, run_loop, summarise

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_small_loop_plans_explores_applies_and_measures(tmp_path):
    # given a 1,500-account world, two periods, a fifth of capacity explored
    params = load_params(
        ROOT / "params.yaml",
        [
            "train.tuning.trials=0",
            "synthetic.history_months=30",
            "train.n_jobs=2",
            # read the experiment out after four weeks, from two rows an arm
            "plan.exploration.surrogate_days=28",
            "plan.exploration.min_rows=2",
        ],
    )
    settings = LoopSettings(seeds=(7,), periods=2, epsilons=(0.2,), accounts=1500)
    # when the loop runs
    result = run_loop(params, settings, tmp_path)
    # then each period is measured against the world's truth
    rows = result["periods"]
    assert [r["period"] for r in rows] == [0, 1]
    assert json.loads((tmp_path / "loop.json").read_text()) == json.loads(
        json.dumps(result, default=float)
    )
    assert (tmp_path / "loop.png").stat().st_size > 10_000
    for row in rows:
        assert row["value_capacity_oracle"] > 0
        assert row["policy_vs_capacity_oracle"] <= 1.0 + 1e-6
        assert row["explored"] > 0
        assert 0 <= row["harmful_share"] <= 1
        # every comparison policy is valued against the same oracle
        for name in ("naive", "exact_averages", "exact_shift"):
            assert row[f"{name}_vs_capacity_oracle"] <= 1.0 + 1e-6
        assert all(0 <= k["chosen_weight"] <= 1 for k in row["kinds"].values())
        for kind in ("exec_call", "training", "csm_change"):
            entry = row["kinds"][kind]
            assert entry["low"] <= entry["estimate"] <= entry["high"]
            assert np.isfinite(entry["truth"])
    # the blends are valued beside a plan on the effect model alone (no read-out yet) …
    assert rows[0]["chosen_blend_vs_capacity_oracle"] <= 1.0 + 1e-6
    assert rows[0]["blend_vs_capacity_oracle"] <= 1.0 + 1e-6
    # … and once the read-out moved the plan's estimates (the default weight), the plan's
    # own weights are reported and the blends are not valued again
    moved = {kind: k["chosen_weight"] for kind, k in rows[1]["kinds"].items()}
    assert any(moved.values())
    assert rows[1]["chosen_blend_vs_capacity_oracle"] is None
    assert rows[1]["blend_vs_capacity_oracle"] is None
    # and the experiment's read-out is reported beside the plan that used it
    assert any("experiment" in k for k in rows[1]["kinds"].values())
    # and the world logged every randomised play with the propensity the plan gave it
    world = tmp_path / "worlds" / "seed_7_eps_0.2"
    loop_params = params.model_copy(update={"output_dir": world / "outputs"})
    as_of = pd.Timestamp(rows[0]["as_of"]).date()
    plan = catalog.PLANNED.read(loop_params.output_dir, as_of)
    explored = plan[plan["explore_arm"].isin(["exec_call", "strategic_review", "training",
                                                 "csm_change", "discount"])]  # fmt: skip
    log = pd.read_parquet(world / "raw" / "interventions.parquet")
    randomised = log[log["source"] == "randomised"].set_index("account_id")
    first_month = randomised[pd.to_datetime(randomised["ts"]).dt.month == as_of.month]
    shared = explored["account_id"][explored["account_id"].isin(first_month.index)]
    assert len(shared) > 0
    planned = explored.set_index("account_id").loc[shared]
    assert np.allclose(first_month.loc[shared, "propensity"], planned["explore_propensity"])
    assert (first_month.loc[shared, "type"] == planned["explore_arm"]).all()
    # and the controls are exported with theirs
    given = pd.read_parquet(world / "raw" / "assignments.parquet")
    assert {"none"} <= set(given["arm"]) and given["propensity"].between(0, 1).all()
    # and the next plan read the experiment out, beside what the effect model said
    second = pd.Timestamp(rows[1]["as_of"]).date()
    readout = catalog.EXPERIMENT.read(loop_params.output_dir, second).set_index("kind")
    assert readout["control_rows"].iloc[0] > 0 and readout["rows"].sum() > 0
    assert readout["observational"].notna().all()
    summary = catalog.PLAN_SUMMARY.read(loop_params.output_dir, second)
    assert summary["experiment_rows"] == readout["control_rows"].iloc[0] + readout["rows"].sum()


def _result(values: dict[tuple[int, float], list[float]]) -> dict:
    kinds = {"training": {"truth": 0.01, "estimate": 0.02, "low": 0.0, "high": 0.03,
                          "sign_right": True, "covered": True}}  # fmt: skip
    rows = [
        {"seed": seed, "epsilon": eps, "period": t, "policy_vs_capacity_oracle": v,
         "naive_vs_capacity_oracle": 0.5, "exact_averages_vs_capacity_oracle": 0.7,
         "exact_shift_vs_capacity_oracle": 0.8, "exploration_cost": 0.0, "harmful_share": 0.0,
         "kinds": kinds}
        for (seed, eps), series in values.items()
        for t, v in enumerate(series)
    ]  # fmt: skip
    return {"settings": {"periods": 4}, "periods": rows}


def test_paired_gain_and_summary_read_the_loop_figures():
    result = _result({(1, 0.0): [0.5, 0.5, 0.6, 0.6], (1, 0.1): [0.5, 0.6, 0.8, 0.9],
                      (2, 0.0): [0.4, 0.4, 0.5, 0.5], (2, 0.1): [0.4, 0.5, 0.7, 0.7]})  # fmt: skip
    gain = paired_gain(
        result, "policy_vs_capacity_oracle@0.1", "policy_vs_capacity_oracle@0.0", range(2, 4)
    )
    assert gain["pairs"] == 4 and gain["mean"] == pytest.approx(0.225)
    assert gain["low"] < 0.225 < gain["high"]
    table = summarise(result).set_index(["seed", "epsilon"])
    assert table.loc[(1, 0.1), "policy (second half)"] == pytest.approx(0.85)
    assert table.loc[(2, 0.0), "policy (first half)"] == pytest.approx(0.4)
    assert table.loc[(1, 0.1), "signs right (last)"] == "1/1"
