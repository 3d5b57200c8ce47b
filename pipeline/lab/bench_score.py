"""Scoring at scale: accounts per second with and without reasons, peak memory, the SHAP floor.

Takes the champion model and the training set of ``output_dir/features`` (run ``make train``
first), draws N feature rows from it (resampled with replacement: the model's real input
distribution), then, chunk by chunk of ``score.chunk_rows`` as the score stage does:

- ``score``: win probability and interval only;
- ``score + reasons``: exact contributions over the ensemble (``shap``, timed apart), points of
  health, components and the top drivers in plain words — everything the score stage computes
  per account;
- ``floor``: LightGBM's native ``pred_contrib`` alone on the same rows with the deployed
  model's tree members (the full LightGBM and the stumps, whichever the stack kept): the cost
  of exact TreeSHAP by LightGBM itself for this model. The ensemble's own TreeSHAP
  (:mod:`models.explain.treeshap`, :mod:`models.win.stumps`) gives the same values faster.

The jitted kernels are compiled (or loaded from numba's cache) on a few rows before timing.

Runs in a child process per size so each peak RSS is its own. Figures, not assertions:
``make bench-score ARGS="1000000"`` or ``healthscore bench --score-accounts 1000000``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.explain import drivers as explain
from models.scoring import health as scoring
from models.win.ensemble import TreeMember
from pipeline.config import Params, load_params
from pipeline.io import registry
from pipeline.io.catalog import load_training_set


def measure(params: Params, accounts: int) -> dict[str, float]:
    """Score ``accounts`` resampled rows in this process; return the figures."""
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    names = model.features
    table = load_training_set(params.output_dir).table[names]
    rows = np.random.default_rng(0).integers(0, len(table), accounts)
    ensemble = model.ensemble
    catalog = model.catalog.set_index("name")
    components = catalog["component"].to_dict()
    descriptions = catalog["description"].to_dict()
    chunk = params.score.chunk_rows
    timings = {"score_s": 0.0, "shap_s": 0.0, "reasons_s": 0.0, "floor_s": 0.0}
    trees = [m for m in ensemble.members_ if isinstance(m, TreeMember)]
    ensemble.contributions(table.head(10))  # compile (or load) the jitted kernels untimed
    for start in range(0, accounts, chunk):
        X = table.iloc[rows[start : start + chunk]].reset_index(drop=True)
        began = time.perf_counter()
        p = ensemble.predict_proba(X)[:, 1]
        ensemble.predict_interval(X)
        timings["score_s"] += time.perf_counter() - began
        began = time.perf_counter()
        contributions = ensemble.contributions(X)
        timings["shap_s"] += time.perf_counter() - began
        log_odds = contributions.sum(axis=1).to_numpy()
        p = ensemble.calibrator_.predict(log_odds)
        ensemble.calibrator_.interval(log_odds)
        base = float(ensemble.calibrator_.predict(contributions["_base"].to_numpy()[:1])[0])
        points = explain.health_points(contributions, p, base)
        explain.component_points(points, components)
        explain.top_drivers(points, X, descriptions, components, params.score.top_drivers)
        scoring.health_band(scoring.health_score(p), params.score)
        timings["reasons_s"] += time.perf_counter() - began
        aligned = ensemble.align(X)
        began = time.perf_counter()
        for tree in trees:
            tree.model_.booster_.predict(aligned, pred_contrib=True)
        timings["floor_s"] += time.perf_counter() - began
    counts = {n: m.model_.booster_.num_trees() for n, m in zip(ensemble.member_names_,
              ensemble.members_, strict=True) if isinstance(m, TreeMember)}  # fmt: skip
    tables = [getattr(m, "shap_tables_", None) for m in trees]
    return {
        "accounts": accounts,
        "shap_tables_mb": round(sum(t.nbytes for t in tables if t is not None) / 2**20, 1),
        "features": len(names),
        "model_version": int(version),
        "trees": counts,
        "score_s": round(timings["score_s"], 1),
        "score_accounts_per_s": round(accounts / timings["score_s"]),
        "reasons_s": round(timings["reasons_s"], 1),
        "reasons_accounts_per_s": round(accounts / timings["reasons_s"]),
        "shap_s": round(timings["shap_s"], 1),
        "shap_vs_floor": round(timings["shap_s"] / timings["floor_s"], 2),
        "floor_pred_contrib_s": round(timings["floor_s"], 1),
        "reasons_vs_floor": round(timings["reasons_s"] / timings["floor_s"], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(sizes: list[int], params: Params) -> None:
    """Each size in its own process (the effective params handed over); print a table and one
    JSON line per size."""
    from rich.console import Console
    from rich.table import Table

    results = []
    with tempfile.TemporaryDirectory(prefix="healthscore-bench-") as tmp:
        spec = Path(tmp) / "params.json"
        spec.write_text(params.model_dump_json())
        for accounts in sizes:
            command = [sys.executable, "-m", "pipeline.lab.bench_score", "--child", str(accounts)]
            out = subprocess.run([*command, str(spec)], check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(title="healthscore bench: batch scoring with exact reasons (2 cores)")
    columns = {
        "accounts": "accounts", "score_accounts_per_s": "score /s",
        "reasons_accounts_per_s": "with reasons /s", "shap_s": "exact SHAP s",
        "floor_pred_contrib_s": "pred_contrib s (floor)", "shap_vs_floor": "SHAP ÷ floor",
        "reasons_vs_floor": "reasons ÷ floor", "peak_rss_mb": "peak MB",
    }  # fmt: skip
    for header in columns.values():
        table.add_column(header, justify="right")
    for row in results:
        table.add_row(*(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c])
                        for c in columns))  # fmt: skip
    Console(width=max(120, Console().width)).print(table)
    for row in results:
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    if sys.argv[1:2] == ["--child"]:
        spec = Params.model_validate_json(Path(sys.argv[3]).read_text())
        sys.stdout.write(json.dumps(measure(spec, int(sys.argv[2]))) + "\n")
    else:
        main([int(a) for a in sys.argv[1:]] or [100_000], load_params("params.yaml"))
