"""Benchmarks that print figures: world generation speed and peak memory, validation speed,
and the usage family against the shared reference build on its 20-million-event log.

Each measurement runs in a fresh child process so its peak RSS is its own. Figures, not
assertions: ``make bench`` (default 3,000 accounts), ``healthscore bench --accounts 100000``,
``healthscore bench --usage-log EVENTS [--spark [--spark-accounts N]]``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import io, synthetic
from pipeline.config import Params
from pipeline.errors import MissingInput
from pipeline.lab.bench_featuretools import DEFAULT_REFERENCE as REFERENCE_SCRIPT


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
                [sys.executable, "-m", "pipeline.lab.bench", str(spec)],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def run_usage_bench(
    events: Path,
    reference_out: Path | None = None,
    spark: bool = False,
    spark_accounts: int | None = None,
    rounds: int = 1,
    reference_script: Path = REFERENCE_SCRIPT,
) -> list[dict[str, object]]:
    """The reference build and the usage family on the same log, back to back, each in a child.

    Each build runs in its own process, so its peak RSS is its own; the reference runs first and
    its output is what the family's values are checked against. With ``spark``, the family also
    runs on Spark in local mode (on the first ``spark_accounts`` accounts when given), once.

    Args:
        events: The log from ``usage_reference.py gen``.
        reference_out: Where to keep the reference's output; a temporary file when None.
        spark: Also time the family on Spark (local mode, 2 cores).
        spark_accounts: Run Spark on this many accounts only (a slice of the log).
        rounds: How many times to run the reference and the family, alternately.
        reference_script: ``usage_reference.py``.

    Returns:
        One row per build: what ran, events and accounts, seconds, peak RSS, and for the family
        the largest difference and the ratio to the reference's time in the same round (for
        Spark, to the last round's, and only on the whole log).

    Raises:
        FileNotFoundError: the log or the reference script is missing (says how to get them).
    """
    if not reference_script.is_file():
        raise MissingInput(f"reference script {reference_script} not found")
    if not events.is_file():
        raise MissingInput(
            f"usage log {events} not found; generate it (about 10 s, 215 MB) with: "
            f"python {reference_script} gen {events}"
        )
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="healthscore-usage-bench-") as tmp:
        out = reference_out or Path(tmp) / "reference.parquet"
        spec = {"events": str(events), "reference_out": str(out)}
        logged = {"events": _count_events(events)}
        for round_ in range(1, rounds + 1):
            reference = _child("usage-reference", {**spec, "script": str(reference_script)})
            ours = _child("usage", {**spec, "engine": "duckdb", "accounts": None})
            ours["ratio"] = round(float(ours["seconds"]) / float(reference["seconds"]), 2)
            rows += [{"round": round_, **logged, **reference}, {"round": round_, **logged, **ours}]
        if spark:
            scaled = _child("usage", {**spec, "engine": "spark", "accounts": spark_accounts})
            if spark_accounts is None:  # the whole log: comparable with the last reference
                scaled["ratio"] = round(float(scaled["seconds"]) / float(reference["seconds"]), 2)
            rows.append({"round": rounds, **scaled})
    return rows


def _child(kind: str, spec: dict[str, object]) -> dict[str, object]:
    """Run one measurement in a fresh interpreter and return its figures (its last JSON line)."""
    args = [sys.executable, "-m", "pipeline.lab.bench", kind, json.dumps(spec)]
    done = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_reference_build(events: Path, out: Path, script: Path) -> dict[str, object]:
    """The reference's own ``build`` (DuckDB, 2 threads) in this process: seconds, peak RSS.

    Its time covers reading the log and writing its output, as the script's own figure does.
    """
    from pipeline.lab.bench_featuretools import load_reference

    reference = load_reference(script)
    started = time.perf_counter()
    rows = reference.build(str(events), str(out), threads=2)
    seconds = time.perf_counter() - started
    return {
        "build": "reference",
        "accounts": rows // len(reference.SNAPS),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def measure_usage_reference(
    events: Path,
    reference_out: Path | None = None,
    engine: str = "duckdb",
    accounts: int | None = None,
) -> dict[str, object]:
    """The usage family on the shared reference log (``usage_reference.py gen``), in this process.

    The spine is every account (or the first ``accounts`` by id) x the reference's 24 month
    starts. The time covers building the spine and the family, the log read where it lies; the
    peak RSS is taken before the comparison. On Spark it adds the JVM's own peak, and the
    session's start is reported apart. With ``reference_out`` (the reference build's output),
    the features both compute are compared: per type and window counts and quantity sums, days
    since last, and the 30-vs-90 trend.
    """
    import numpy as np
    import pandas as pd

    from features.build import window_days, with_window_bounds
    from features.config import FeaturesConfig
    from features.usage import usage_features

    cfg = FeaturesConfig(usage={"key_event_types": ["login"]})
    snaps = pd.date_range("2023-02-01", "2025-01-01", freq="MS")
    started = time.perf_counter()
    handle, figures = _usage_engine(engine, events, accounts)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    ids = handle.query("SELECT DISTINCT account_id FROM usage_events ORDER BY account_id")
    spine = pd.DataFrame(
        {
            "account_id": ids["account_id"].repeat(len(snaps)).to_numpy(),
            "as_of": list(snaps) * len(ids),
        }
    ).assign(seats=np.nan)
    handle.register("spine", with_window_bounds(spine, window_days(cfg)))
    result = usage_features(handle, cfg)
    seconds = time.perf_counter() - started
    figures |= {
        "accounts": len(ids),
        "rows": len(result.frame),
        "features": len(result.features),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if engine == "spark":
        figures["driver_rss_mb"] = figures["peak_rss_mb"]
        figures["jvm_rss_mb"] = _jvm_peak_mb(handle)
        figures["peak_rss_mb"] = int(figures["driver_rss_mb"]) + int(figures["jvm_rss_mb"] or 0)
        figures["startup_s"] = round(startup, 1)
    if reference_out is not None:
        figures["max_abs_diff"] = _compare_with_reference(result.frame, reference_out)
    return figures


def _usage_engine(engine: str, events: Path, accounts: int | None) -> tuple[Any, dict[str, object]]:
    """An engine holding the log as ``usage_events`` (account ids as strings, no users)."""
    columns = (
        "CAST(account_id AS VARCHAR) AS account_id, ts, event_type, "
        "CAST(NULL AS VARCHAR) AS user_id, quantity"
    )
    if engine == "duckdb":
        import duckdb

        from pipeline.io.engines import DuckDBEngine

        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(f"CREATE VIEW usage_events AS SELECT {columns} FROM read_parquet('{events}')")
        if accounts is not None:
            raise ValueError("a slice of accounts is for the Spark run only")
        return DuckDBEngine(con), {"build": "family, DuckDB"}
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}: expected 'duckdb' or 'spark'")
    # local mode runs everything in the driver's JVM: give it room (before the JVM starts)
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 6g pyspark-shell")
    from pipeline.io.engines import SparkEngine

    handle = SparkEngine.local(cores=2)
    log = handle.spark.read.parquet(str(events))
    if accounts is not None:
        first = log.select("account_id").distinct().orderBy("account_id").limit(accounts)
        log = log.join(first, "account_id", "left_semi")
    log.createOrReplaceTempView("usage_log")
    handle.spark.sql(
        "SELECT CAST(account_id AS STRING) AS account_id, CAST(ts AS TIMESTAMP) AS ts, "
        "event_type, CAST(NULL AS STRING) AS user_id, quantity FROM usage_log"
    ).createOrReplaceTempView("usage_events")
    kept = handle.spark.table("usage_events").count()
    name = "family, Spark"
    return handle, {"build": name, "events": kept}


def _jvm_peak_mb(engine: Any) -> int | None:
    """The Spark JVM's peak RSS (Linux ``VmHWM``), or None where it cannot be read."""
    try:
        pid = engine.spark.sparkContext._gateway.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
    except (AttributeError, OSError):
        return None
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), None)
    return None if kib is None else round(int(kib) / 1024)


def _count_events(events: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(events).metadata.num_rows


def _compare_with_reference(ours: pd.DataFrame, reference_out: Path) -> float:
    """Largest absolute difference over the features both builds compute (inf on a null mismatch).

    Only the reference's rows for the accounts ``ours`` has are compared (a Spark slice).
    """
    import numpy as np
    import pandas as pd

    from features.base import slug

    ref = pd.read_parquet(reference_out)
    ref = ref.assign(account_id=ref["account_id"].astype(str))
    ref = ref[ref["account_id"].isin(set(ours["account_id"]))]
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


def _main(argv: list[str]) -> None:
    if argv[0] == "usage":
        spec = json.loads(argv[1])
        out = Path(spec["reference_out"]) if spec.get("reference_out") else None
        figures = measure_usage_reference(
            Path(spec["events"]), out, spec.get("engine", "duckdb"), spec.get("accounts")
        )
    elif argv[0] == "usage-reference":
        spec = json.loads(argv[1])
        figures = measure_reference_build(
            Path(spec["events"]), Path(spec["reference_out"]), Path(spec["script"])
        )
    else:
        figures = measure_world(Params.model_validate_json(Path(argv[0]).read_text()))
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    _main(sys.argv[1:])
