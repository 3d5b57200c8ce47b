"""One place sets every thread pool from ``train.n_jobs``, and OpenMP threads wait passively."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import lightgbm  # noqa: F401  (its OpenMP runtime is one of the pools under test)
import numba
import pytest
import sklearn  # noqa: F401
from joblib.parallel import get_active_backend
from lightgbm.basic import _LIB
from threadpoolctl import threadpool_info

from pipeline.config import load_params
from pipeline.stages import plan, score, train
from pipeline.threads import WAIT_POLICY, thread_limits

ROOT = Path(__file__).resolve().parents[2]


def pools() -> dict[str, object]:
    """Every pool's size as the process sees it now."""
    limit = ctypes.c_int(0)
    _LIB.LGBM_GetMaxThreads(ctypes.byref(limit))
    return {
        **{f"{p['internal_api']} {p['filepath']}": p["num_threads"] for p in threadpool_info()},
        "lightgbm max": limit.value,
        "joblib n_jobs": get_active_backend()[1],
        "numba": numba.get_num_threads(),
    }


def test_inside_the_limits_every_pool_follows_n_jobs_and_is_restored_after():
    # given the pools as the process starts them
    before = pools()
    assert any(k.startswith("openblas") for k in before) and any("openmp" in k for k in before)
    # when a stage runs inside the limits
    with thread_limits(1):
        inside = pools()
    # then BLAS, OpenMP (LightGBM's and scikit-learn's), LightGBM, joblib and numba use one
    assert inside == dict.fromkeys(before, 1), inside
    # and everything is as before afterwards
    assert pools() == before


@pytest.mark.parametrize(
    ("stage", "run", "work"),
    [(train, "run_train", "_train"), (score, "run_score", "_score"), (plan, "run_plan", "_plan")],
)
def test_training_scoring_and_planning_run_inside_the_limits_of_train_n_jobs(
    monkeypatch, stage, run, work
):
    # given params asking for one thread, and a stage whose work reports the pools it sees
    params = load_params(ROOT / "params.yaml", ["train.n_jobs=1"])
    seen = {}
    monkeypatch.setattr(stage, work, lambda *args: seen.update(pools()))
    # when the stage runs
    getattr(stage, run)(params, *([None] if stage is plan else []))
    # then every pool was held to train.n_jobs
    assert seen and set(seen.values()) == {1}, seen


@pytest.mark.parametrize(("environment", "expected"), [(None, "PASSIVE"), ("active", "active")])
def test_importing_pipeline_makes_openmp_threads_wait_passively_unless_told(environment, expected):
    env = {k: v for k, v in os.environ.items() if k != WAIT_POLICY}
    if environment is not None:
        env[WAIT_POLICY] = environment
    # when a fresh process imports the package, then loads LightGBM
    code = "import os, pipeline, lightgbm; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # then OpenMP found the policy set before it loaded (unless the environment chose one)
    assert out.stdout.strip() == expected
