"""Scoring at scale: accounts per second with and without reasons, peak memory, the SHAP floor.

Takes the champion model and the training set of ``output_dir/features`` (run ``make train``
first), draws N feature rows from it (resampled with replacement: the model's real input
distribution), then, chunk by chunk of ``score.chunk_rows`` as the score stage does:

- ``score``: every number the score stage writes without the reasons: the win probability and
  its interval (the members' log-odds once) and, when the model has one, the renewal size's
  outlook (what the expected renewal ARR is computed from);
- ``score + reasons``: the score stage's own chunk (:func:`models.scoring.accounts` ``_score_chunk``
  and, when the model has one, the renewal-size part with its growth reasons, ``size`` timed
  apart): exact contributions, points of health, components, the top drivers in plain words
  among what the team can change and, apart, what the account is — everything the score stage
  computes per account. ``shap`` (the contributions) and ``drivers`` (the words) are timed
  again on their own, for the breakdown;
- ``floor``: LightGBM's native ``pred_contrib`` alone on the same rows with the deployed
  model's tree members (the full LightGBM and the stumps, whichever the stack kept): the cost
  of exact TreeSHAP by LightGBM itself for this model. The ensemble's own TreeSHAP
  (:mod:`models.explain.treeshap`, :mod:`models.win.stumps`) gives the same values faster.

Both kinds of champion are measured, since which one training deploys depends on the data: one
with a LightGBM member and one without (boosted stumps and the linear member). The registered
champion is one of them; the other is its twin: without its LightGBM member (the other
members' weights kept), or with one fitted on the labelled training rows with the champion's
own LightGBM settings and given ``LIGHTGBM_SHARE`` of the stacking weight (the rest scaled
down). A twin serves timing only: its scores are not a trained model's. The ratios to read
are ``reasons ÷ floor`` with a LightGBM member and ``reasons ÷ score`` without one.

The jitted kernels are compiled (or loaded from numba's cache) on a few rows before timing.

The chunks run inside :func:`pipeline.memory.reuse_memory`, as in the score stage (its large
arrays reuse the heap). Each measure is the fastest of ``REPEATS`` runs per chunk (the first run
of a chunk also pays for the memory the process had not touched yet, and slower ones for
whatever else the machine did).
Runs in a child process per size and champion so each peak RSS is its own. Figures, not
assertions: ``make bench-score ARGS="1000000"`` or ``healthscore bench --score-accounts 1000000``.
"""

from __future__ import annotations

import copy
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from models.renewal.size import RenewalSize
from models.scoring import accounts as scoring
from models.win.ensemble import HealthEnsemble, TreeMember
from pipeline.config import Params, load_params
from pipeline.io import registry
from pipeline.io.catalog import load_training_set
from pipeline.memory import reuse_memory

CHAMPIONS = ("with_lightgbm", "without_lightgbm")
# a twin's LightGBM member's stacking weight (3–4.5 % in the champions that kept one)
LIGHTGBM_SHARE = 0.05
REPEATS = 3  # runs of each measure per chunk, the fastest kept


def best_of(work: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``work``, in seconds (as ``timeit`` advises: the
    slower runs measure what else the machine was doing, and the first one the memory the
    process had not touched yet)."""
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        runs.append(time.perf_counter() - began)
    return min(runs)


def measure(
    params: Params,
    accounts: int,
    champion: str,
    lightgbm: Path | None = None,
    repeats: int = REPEATS,
) -> dict[str, object]:
    """Score ``accounts`` resampled rows in this process with one kind of ``champion``
    (:data:`CHAMPIONS`; ``lightgbm``: a pickled LightGBM member for a twin that needs one);
    return the figures, each the sum over chunks of the best of ``repeats`` runs."""
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    names = model.features
    key = ["account_id", "contract_id", "arr", "days_to_renewal"]
    table = load_training_set(params.output_dir).table[list(dict.fromkeys([*key, *names]))]
    rows = np.random.default_rng(0).integers(0, len(table), accounts)
    registered = has_lightgbm(model.ensemble) == (champion == "with_lightgbm")
    if registered:
        ensemble = model.ensemble
    elif champion == "without_lightgbm":
        ensemble = without_lightgbm(model.ensemble)
    else:
        if lightgbm is None:
            raise ValueError("a champion with LightGBM from one without needs its member")
        ensemble = with_lightgbm(model.ensemble, pickle.loads(lightgbm.read_bytes()))
    cfg = params.score
    words = scoring.Words.of(model.catalog, names, cfg.context_components)
    chunk = cfg.chunk_rows
    timings = dict.fromkeys(
        ["score_s", "shap_s", "drivers_s", "reasons_s", "size_s", "floor_s"], 0.0
    )
    trees = [m for m in ensemble.members_ if isinstance(m, TreeMember)]
    ensemble.contributions(table[names].head(10))  # compile (or load) the jitted kernels untimed
    with reuse_memory() as reused:  # as the score stage runs
        for start in range(0, accounts, chunk):
            part = table.iloc[rows[start : start + chunk]].reset_index(drop=True)
            chunk_seconds = _time_chunk(part, ensemble, model.size, names, words, params, repeats)
            for name, seconds in chunk_seconds.items():
                timings[name] += seconds
    counts = {n: m.model_.booster_.num_trees() for n, m in zip(ensemble.member_names_,
              ensemble.members_, strict=True) if isinstance(m, TreeMember)}  # fmt: skip
    tables = [getattr(m, "shap_tables_", None) for m in trees]
    return {
        "accounts": accounts,
        "champion": champion,
        "repeats": repeats,
        "heap_reused": reused,
        "registered": registered,
        "shap_tables_mb": round(sum(t.nbytes for t in tables if t is not None) / 2**20, 1),
        "features": len(names),
        "model_version": int(version),
        "trees": counts,
        "score_s": round(timings["score_s"], 2),
        "score_accounts_per_s": round(accounts / timings["score_s"]),
        "reasons_s": round(timings["reasons_s"], 2),
        "reasons_accounts_per_s": round(accounts / timings["reasons_s"]),
        "shap_s": round(timings["shap_s"], 2),
        "drivers_s": round(timings["drivers_s"], 2),
        "size_s": round(timings["size_s"], 2),  # in reasons_s: the renewal in dollars
        "shap_vs_floor": round(timings["shap_s"] / timings["floor_s"], 2),
        "floor_pred_contrib_s": round(timings["floor_s"], 2),
        "reasons_vs_floor": round(timings["reasons_s"] / timings["floor_s"], 2),
        "reasons_vs_score": round(timings["reasons_s"] / timings["score_s"], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _time_chunk(
    part: pd.DataFrame,
    ensemble: HealthEnsemble,
    size: RenewalSize | None,
    names: list[str],
    words: scoring.Words,
    params: Params,
    repeats: int,
) -> dict[str, float]:
    """One chunk's seconds per measure, each the best of ``repeats`` runs."""
    cfg, horizon = params.score, params.features.horizon_days
    X = part[names]
    aligned = ensemble.align(X)
    trees = [m for m in ensemble.members_ if isinstance(m, TreeMember)]
    _, _, points = scoring._score_chunk(part, ensemble, names, words, cfg, horizon, ())

    def score() -> None:  # every number the score stage writes, without the reasons
        log_odds = ensemble.decision_function(X)
        ensemble.calibrator_.predict(log_odds)
        ensemble.calibrator_.interval(log_odds)
        if size is not None:
            size.predict(X)

    def reasons() -> float:  # what the score stage does per chunk; returns the size's part
        frame, _, _ = scoring._score_chunk(part, ensemble, names, words, cfg, horizon, ())
        began = time.perf_counter()
        if size is not None:
            scoring._renewal_columns(size, X, frame, words, cfg)
        return time.perf_counter() - began

    def drivers() -> None:
        words.top(points[words.acting(points.columns)], X, cfg.top_drivers)
        words.top(points[words.about(points.columns)], X, cfg.top_drivers)

    def floor() -> None:
        for tree in trees:
            tree.model_.booster_.predict(aligned, pred_contrib=True)

    size_runs: list[float] = []
    out = {
        "score_s": best_of(score, repeats),
        "reasons_s": best_of(lambda: size_runs.append(reasons()), repeats),
        "shap_s": best_of(lambda: ensemble.contributions(X), repeats),
        "drivers_s": best_of(drivers, repeats),
        "floor_s": best_of(floor, repeats),
    }
    out["size_s"] = min(size_runs)  # the renewal size within the page, timed apart
    return out


def has_lightgbm(ensemble: HealthEnsemble) -> bool:
    """Whether the stack kept its LightGBM member."""
    return "lightgbm" in ensemble.member_names_


def without_lightgbm(ensemble: HealthEnsemble) -> HealthEnsemble:
    """A copy of the ensemble without its LightGBM member, the other members' weights kept."""
    kept = [k for k, name in enumerate(ensemble.member_names_) if name != "lightgbm"]
    twin = copy.copy(ensemble)
    twin.member_names_ = tuple(ensemble.member_names_[k] for k in kept)
    twin.members_ = [ensemble.members_[k] for k in kept]
    twin.weights_ = np.asarray(ensemble.weights_)[kept]
    return twin


def with_lightgbm(ensemble: HealthEnsemble, member: TreeMember) -> HealthEnsemble:
    """A copy of the ensemble with a fitted LightGBM ``member`` at :data:`LIGHTGBM_SHARE` of
    the stacking weight, the other members' weights scaled down to make room."""
    weights = np.asarray(ensemble.weights_, dtype=float)
    twin = copy.copy(ensemble)
    twin.member_names_ = ("lightgbm", *ensemble.member_names_)
    twin.members_ = [member, *ensemble.members_]
    twin.weights_ = np.concatenate(
        [[LIGHTGBM_SHARE * weights.sum()], (1 - LIGHTGBM_SHARE) * weights]
    )
    return twin


def fit_lightgbm(params: Params, folder: Path) -> Path | None:
    """When the champion has no LightGBM member, fit one for its twin (:func:`lightgbm_member`)
    and pickle it into ``folder``; None when it has one."""
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, _ = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    if has_lightgbm(model.ensemble):
        return None
    table = load_training_set(params.output_dir).table
    member = lightgbm_member(model.ensemble, table, model.features, params.train.n_jobs)
    path = folder / "lightgbm.pkl"
    path.write_bytes(pickle.dumps(member))
    return path


def lightgbm_member(
    ensemble: HealthEnsemble, table: pd.DataFrame, features: list[str], n_jobs: int
) -> TreeMember:
    """A LightGBM member fitted on the labelled rows of the training ``table`` with the
    ensemble's own LightGBM settings (as tuned)."""
    labelled = table[table["renewed"].notna()]
    member = TreeMember(dict(ensemble.lightgbm or {}), ensemble.seed, n_jobs=n_jobs)
    return member.fit(ensemble.align(labelled[features]), labelled["renewed"].to_numpy(int))


def main(sizes: list[int], params: Params) -> None:
    """Each size and champion in its own process (the effective params handed over); print a
    table and one JSON line per size and champion."""
    from rich.console import Console
    from rich.table import Table

    results = []
    with tempfile.TemporaryDirectory(prefix="healthscore-bench-") as tmp:
        spec = Path(tmp) / "params.json"
        spec.write_text(params.model_dump_json())
        lightgbm = fit_lightgbm(params, Path(tmp))
        for accounts in sizes:
            for champion in CHAMPIONS:
                command = [sys.executable, "-m", "pipeline.lab.bench_score", "--child"]
                command += [
                    str(accounts),
                    str(spec),
                    champion,
                    *([str(lightgbm)] if lightgbm else []),
                ]
                out = subprocess.run(command, check=True, capture_output=True, text=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(title="healthscore bench: batch scoring with exact reasons (2 cores)")
    columns = {
        "accounts": "accounts", "champion": "champion", "registered": "registered",
        "score_accounts_per_s": "score /s", "reasons_accounts_per_s": "with reasons /s",
        "shap_s": "exact SHAP s", "drivers_s": "drivers in words s",
        "size_s": "renewal size s",
        "floor_pred_contrib_s": "pred_contrib s (floor)", "shap_vs_floor": "SHAP ÷ floor",
        "reasons_vs_floor": "reasons ÷ floor", "reasons_vs_score": "reasons ÷ score",
        "peak_rss_mb": "peak MB",
    }  # fmt: skip
    for header in columns.values():
        table.add_column(header, justify="right", no_wrap=header == "champion")
    for row in results:
        table.add_row(*(f"{row[c]:,}" if type(row[c]) is int else str(row[c])
                        for c in columns))  # fmt: skip
    Console(width=max(180, Console().width)).print(table)
    for row in results:
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    if sys.argv[1:2] == ["--child"]:
        spec = Params.model_validate_json(Path(sys.argv[3]).read_text())
        member = Path(sys.argv[5]) if len(sys.argv) > 5 else None
        figures = measure(spec, int(sys.argv[2]), sys.argv[4], member)
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        main([int(a) for a in sys.argv[1:]] or [100_000], load_params("params.yaml"))
