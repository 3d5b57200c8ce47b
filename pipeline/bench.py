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
    raw = io.read_raw(params.data)
    validate_s = time.perf_counter() - started
    raw.connection.close()
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


if __name__ == "__main__":
    figures = measure_world(Params.model_validate_json(Path(sys.argv[1]).read_text()))
    print(json.dumps(figures))
