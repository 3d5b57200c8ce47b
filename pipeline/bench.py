"""Benchmarks that print figures: world generation speed and peak memory, validation speed.

Each size runs in a fresh child process so its peak RSS is its own. Figures, not assertions:
``make bench`` (default 3,000 accounts) or ``healthscore bench --accounts 100000``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline import io, synthetic
from pipeline.config import Params


def measure_world(params: Params) -> dict[str, object]:
    """Generate and validate one world in this process; return timings, rows and peak RSS."""
    started = time.perf_counter()
    summary = synthetic.write_world(
        params.synthetic, params.features, params.data.raw_dir, params.data.oracle_dir
    )
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    with io.read_raw(params.data):
        validate_s = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "accounts": summary.accounts,
        "rows": summary.total_rows,
        "rows_by_table": summary.rows,
        "generate_s": round(generate_s, 2),
        "rows_per_s": round(summary.total_rows / generate_s),
        "validate_s": round(validate_s, 2),
        "validate_rows_per_s": round(summary.total_rows / validate_s),
        "peak_rss_mb": round(peak_kib / 1024),
    }


def run_bench(params: Params, sizes: list[int]) -> list[dict[str, object]]:
    """Measure each world size in a child process (its own peak memory) and return the figures."""
    results = []
    for accounts in sizes:
        with tempfile.TemporaryDirectory(prefix="healthscore-bench-") as tmp:
            overrides = {
                "synthetic": {**params.synthetic.model_dump(mode="json"), "accounts": accounts},
                "data": {
                    **params.data.model_dump(mode="json"),
                    "raw_dir": f"{tmp}/raw",
                    "oracle_dir": f"{tmp}/oracle",
                    "source": "auto",
                },
            }
            child = Params.model_validate({**params.model_dump(mode="json"), **overrides})
            spec = Path(tmp) / "params.json"
            spec.write_text(child.model_dump_json())
            out = subprocess.run(
                [sys.executable, "-m", "pipeline.bench", str(spec)],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def run_usage_bench(events: Path, reference_out: Path | None = None) -> dict[str, object]:
    """:func:`measure_usage_reference` in a child process, so its peak memory is its own."""
    args = [sys.executable, "-m", "pipeline.bench", "usage", str(events)]
    if reference_out is not None:
        args.append(str(reference_out))
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_usage_reference(events: Path, reference_out: Path | None = None) -> dict[str, object]:
    """The usage family on the shared reference log (``usage_reference.py gen``), in this process.

    The spine is every account × the reference's 24 month starts. With ``reference_out`` (the
    reference build's output), the features both compute are compared: per type and window
    counts and quantity sums, days since last, and the 30-vs-90 trend.
    """
    import duckdb
    import pandas as pd

    from features.build import window_days, with_window_bounds
    from features.config import FeaturesConfig
    from features.usage import usage_features
    from pipeline.engines import DuckDBEngine

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(
        "CREATE VIEW usage_events AS SELECT CAST(account_id AS VARCHAR) AS account_id, ts, "
        f"event_type, CAST(NULL AS VARCHAR) AS user_id, quantity FROM read_parquet('{events}')"
    )
    cfg = FeaturesConfig(usage={"key_event_types": ["login"]})
    snaps = pd.date_range("2023-02-01", "2025-01-01", freq="MS")
    accounts = con.execute("SELECT DISTINCT account_id FROM usage_events").df()["account_id"]
    spine = pd.DataFrame(
        {"account_id": accounts.repeat(len(snaps)).to_numpy(), "as_of": list(snaps) * len(accounts)}
    ).assign(seats=None)
    engine = DuckDBEngine(con)
    engine.register("spine", with_window_bounds(spine, window_days(cfg)))
    started = time.perf_counter()
    result = usage_features(engine, cfg)
    seconds = time.perf_counter() - started
    figures: dict[str, object] = {
        "rows": len(result.frame),
        "features": len(result.features),
        "usage_s": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if reference_out is not None:
        figures["max_abs_diff"] = _compare_with_reference(result.frame, reference_out)
    return figures


def _compare_with_reference(ours: pd.DataFrame, reference_out: Path) -> float:
    import numpy as np
    import pandas as pd

    from features.base import slug

    ref = pd.read_parquet(reference_out)
    ref = ref.assign(account_id=ref["account_id"].astype(str))
    merged = ref.merge(ours, on=["account_id", "as_of"], how="left")
    worst = 0.0
    for column in ref.columns:
        if "__" not in column:
            continue
        etype, feature = column.split("__")
        col = slug(etype)
        if feature.startswith("cnt_"):
            mine = merged[f"{col}_{feature.removeprefix('cnt_')}"].fillna(0)
        elif feature.startswith("sum_"):
            mine = merged[f"{col}_qty_{feature.removeprefix('sum_')}"].fillna(0)
        elif feature == "days_since_last":
            mine = merged[f"days_since_{col}"]
        elif feature == "trend_30_90":
            n30, n90 = merged[f"{col}_30d"], merged[f"{col}_90d"]
            mine = (n30 / 30) / (n90 / 90).where(n90 > 0)
        else:
            continue
        diff = np.nanmax(np.abs(mine.to_numpy(float) - merged[column].to_numpy(float)), initial=0)
        both_nan = merged[column].isna() == mine.isna()
        if not both_nan.all():
            return float("inf")
        worst = max(worst, float(diff))
    return worst


if __name__ == "__main__":
    if sys.argv[1] == "usage":
        out = Path(sys.argv[3]) if len(sys.argv) > 3 else None
        print(json.dumps(measure_usage_reference(Path(sys.argv[2]), out)))
    else:
        print(json.dumps(measure_world(Params.model_validate_json(Path(sys.argv[1]).read_text()))))
