r"""Time featuretools' deep feature synthesis (DFS) on a slice of the shared usage log.

The common alternative to hand-written windowed aggregates. The reference (``usage_reference.py``)
builds, per account x 24 month-start as-of dates x 20 event types, count and sum of quantity over
the trailing 7 / 30 / 90 days, days since the last event and the 30-vs-90 trend, from events
strictly before ``as_of``. Here featuretools computes the same features on a seeded random slice
of accounts, the time is extrapolated to all 20,000 accounts, and the reference is timed on the
same slice and its output compared cell by cell.

featuretools 1.31 (May 2024, the latest) predates pandas 3 and numpy 2, which the project venv
has, so it runs in a venv of its own, ``.venv-featuretools/`` with the pins in ``REQUIREMENTS``.
``make bench-featuretools-env`` creates it (and re-creates it when the pins change); this module
installs nothing and stops with that advice when the venv is missing or stale. It is both
halves: ``main`` runs in the project venv (slice, reference timing on the slice, comparison) and
re-runs this file inside that venv for the featuretools part (``child``). Its top level imports
only the standard library.

How DFS is asked for the reference's features (``--mode``):

- ``dfs`` (default, the idiomatic way): one ``ft.dfs(features_only=True)`` with ``event_type``'s 20
  values as interesting values and ``count``, ``sum``, ``time_since_last`` as where-primitives gives
  ``COUNT(events WHERE event_type = t)``, ``SUM(events.quantity WHERE event_type = t)`` and
  ``TIME_SINCE_LAST(events.ts WHERE event_type = t)``; then ``ft.calculate_feature_matrix`` runs
  four times on the (account, as_of) cutoff frame: counts and sums with ``training_window`` 7, 30
  and 90 days, and time since last with no window. DFS has no feature spanning two training
  windows, so the trend is computed afterwards in pandas from the 30- and 90-day counts (timed).
- ``use-previous``: the same where-features rebuilt by hand as ``ft.Feature(..., use_previous=...)``
  plus the trend as DFS arithmetic (``3 x count_30d / count_90d``), in one
  ``calculate_feature_matrix`` call.

Both use ``include_cutoff_time=False``, so a window is ``as_of - d <= ts < as_of`` exactly as in the
reference, and ``TimeSinceLast(unit="days")``. DFS runs in one process (``n_jobs=1``; more needs
dask); the reference runs DuckDB on 2 threads. DFS's time covers building the EntitySet, the
synthesis and the calculation, not reading the slice; the reference's time is its ``build`` on
the slice file, reading and writing parquet included. Usage:

    .venv/bin/python -m pipeline.lab.bench_featuretools --events /tmp/ref/events.parquet \
        [--accounts 300 [1000 ...]] [--reference-seconds 30.6] [--mode dfs|use-previous]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".venv-featuretools"
DEFAULT_REFERENCE = REPO.parent / "shared" / "bench" / "usage_reference.py"
FULL_ACCOUNTS = 20_000
# featuretools 1.31 declares no upper bounds; upstream has since restricted numpy < 2, and conda
# packages it with pandas < 3. Pinned: the last numpy 1.x and the last pandas 2.2. The one place
# these pins live: ``make bench-featuretools-env`` reads them from here.
REQUIREMENTS = (
    "featuretools==1.31.0",
    "woodwork==0.31.0",
    "pandas==2.2.3",
    "numpy==1.26.4",
    "pyarrow==17.0.0",
)
WINDOWS = (7, 30, 90)
ENV_TARGET = "bench-featuretools-env"

log = logging.getLogger("healthscore")


def load_reference(path: Path) -> ModuleType:
    """Import the shared reference script (standard library at import) for its dates, types, build.

    Args:
        path: ``usage_reference.py``.

    Returns:
        The module, with ``SNAPS``, ``TYPES``, ``FEATS`` and ``build``.
    """
    spec = importlib.util.spec_from_file_location("usage_reference", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import the reference script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_venv(venv: Path) -> None:
    """Check that the featuretools venv exists and was made with the pinned requirements.

    Nothing is installed here (the installed package never installs packages at run time):
    ``make bench-featuretools-env`` creates the venv and records the pins it was made with in
    its ``requirements.lock``.

    Args:
        venv: Where the venv lives (``.venv-featuretools/`` in the repo by default).

    Raises:
        FileNotFoundError: The venv is missing, or its lock does not list exactly
            ``REQUIREMENTS``; the message names the make target that creates it.
    """
    marker = venv / "requirements.lock"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if not (venv / "bin" / "python").is_file() or not marker.is_file():
        raise FileNotFoundError(
            f"featuretools venv {venv} not found; create it with `make {ENV_TARGET}` "
            f"(pins: {' '.join(REQUIREMENTS)})"
        )
    if marker.read_text() != wanted:
        raise FileNotFoundError(
            f"featuretools venv {venv} was made with other pins than {' '.join(REQUIREMENTS)}; "
            f"re-create it with `make {ENV_TARGET}`"
        )


def write_slice(events: Path, accounts: int, seed: int, out: Path) -> dict[str, int]:
    """Write the events of ``accounts`` accounts drawn at random (seeded) from the log to ``out``.

    Args:
        events: The full log from ``usage_reference.py gen``.
        accounts: How many accounts to keep.
        seed: Seed of the draw.
        out: Parquet file to write.

    Returns:
        Accounts and events in the log and in the slice.
    """
    import duckdb
    import numpy as np

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{events}')")
    ids = con.execute("SELECT DISTINCT account_id FROM ev ORDER BY 1").fetchnumpy()["account_id"]
    if not 0 < accounts <= len(ids):
        raise ValueError(f"--accounts {accounts} is not between 1 and the log's {len(ids)}")
    chosen = np.sort(np.random.default_rng(seed).choice(ids, size=accounts, replace=False))
    con.register("chosen", {"account_id": chosen})
    con.execute(
        f"COPY (SELECT e.* FROM ev e SEMI JOIN chosen c USING (account_id) ORDER BY ts) "
        f"TO '{out}' (FORMAT parquet)"
    )
    total = con.execute("SELECT count(*) FROM ev").fetchone()
    kept = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()
    con.close()
    assert total is not None and kept is not None
    return {
        "log_accounts": len(ids),
        "log_events": int(total[0]),
        "slice_accounts": accounts,
        "slice_events": int(kept[0]),
    }


def compare_with_reference(dfs_out: Path, reference_out: Path) -> dict[str, Any]:
    """Largest absolute difference per reference feature between DFS and the reference on the slice.

    Args:
        dfs_out: The child's feature matrix, columns named like the reference's.
        reference_out: ``build`` on the same slice.

    Returns:
        Rows compared, max abs difference per feature (over all types), columns the reference has
        that DFS did not compute, and how many cells are null on one side only.
    """
    import numpy as np
    import pandas as pd

    ref = pd.read_parquet(reference_out)
    ours = pd.read_parquet(dfs_out)
    merged = ref.merge(ours, on=["account_id", "as_of"], how="left", suffixes=("", "_dfs"))
    worst: dict[str, float] = {}
    missing, null_mismatch = [], 0
    for column in ref.columns:
        if "__" not in column:
            continue
        if column not in ours.columns:
            missing.append(column)
            continue
        feature = column.split("__")[1]
        theirs = merged[column].to_numpy(float)
        mine = merged[f"{column}_dfs"].to_numpy(float)
        null_mismatch += int((np.isnan(theirs) != np.isnan(mine)).sum())
        diff = float(np.nanmax(np.abs(mine - theirs), initial=0.0))
        worst[feature] = max(worst.get(feature, 0.0), diff)
    return {
        "rows_reference": len(ref),
        "rows_dfs": len(ours),
        "max_abs_diff": {k: float(f"{v:.3g}") for k, v in worst.items()},
        "null_mismatches": null_mismatch,
        "not_computed_by_dfs": missing,
    }


def measure_slice(
    events: Path,
    accounts: int,
    mode: str,
    seed: int,
    reference_script: Path,
    venv: Path,
    time_reference: bool,
) -> dict[str, Any]:
    """Slice the log, time DFS on it in the featuretools venv (and the reference), extrapolate.

    Args:
        events: The full log from ``usage_reference.py gen``.
        accounts: Accounts in the slice.
        mode: ``dfs`` or ``use-previous`` (see the module docstring).
        seed: Seed of the account draw.
        reference_script: ``usage_reference.py``.
        venv: The featuretools venv (already created).
        time_reference: Also time the reference build on the same slice and compare its output.

    Returns:
        The slice's figures.
    """
    figures: dict[str, Any] = {"mode": mode, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="healthscore-ft-") as tmp:
        slice_path, dfs_out, ref_out = (Path(tmp) / n for n in ("slice", "dfs", "ref"))
        figures |= write_slice(events, accounts, seed, slice_path)
        log.info("featuretools (%s) on %d accounts", mode, accounts)
        child = subprocess.run(
            [
                *(str(venv / "bin" / "python"), "-I", __file__, "child"),
                *(str(slice_path), str(dfs_out), str(reference_script), mode),
            ],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        dfs = json.loads(child.stdout.strip().splitlines()[-1])
        figures |= dfs
        figures["dfs_s_per_account"] = round(dfs["dfs_s"] / accounts, 4)
        figures["dfs_extrapolated_s"] = round(dfs["dfs_s"] * FULL_ACCOUNTS / accounts)
        figures["dfs_extrapolated_by_events_s"] = round(
            dfs["dfs_s"] * figures["log_events"] / figures["slice_events"]
        )
        if time_reference:
            reference = load_reference(reference_script)
            started = time.perf_counter()
            reference.build(str(slice_path), str(ref_out), threads=2)
            slice_ref_s = time.perf_counter() - started
            figures["reference_slice_s"] = round(slice_ref_s, 2)
            figures["ratio_on_slice"] = round(dfs["dfs_s"] / slice_ref_s, 1)
            figures["comparison"] = compare_with_reference(dfs_out, ref_out)
    return figures


def run_bench(
    events: Path,
    accounts: list[int],
    mode: str,
    seed: int = 42,
    reference_seconds: float | None = None,
    reference_script: Path = DEFAULT_REFERENCE,
    venv: Path = DEFAULT_VENV,
    time_reference: bool = True,
) -> dict[str, Any]:
    """Measure DFS on slices of the given sizes; report the largest, and a line fit over several.

    One slice extrapolated linearly carries DFS's fixed cost (per cutoff time and call) 20,000 /
    accounts times over; with two or more sizes, ``fit_*`` separates fixed and per-account cost.

    Args:
        events: The full log from ``usage_reference.py gen``.
        accounts: Slice sizes (accounts); the largest gives the headline figures.
        mode: ``dfs`` or ``use-previous`` (see the module docstring).
        seed: Seed of the account draws.
        reference_seconds: The reference build's time on the whole log, for the extrapolated ratio.
        reference_script: ``usage_reference.py``.
        venv: The featuretools venv (``make bench-featuretools-env``).
        time_reference: Also time the reference build on each slice and compare its output.

    Returns:
        The figures, ready to print as JSON.

    Raises:
        FileNotFoundError: The venv is missing or stale (see :func:`ensure_venv`).
    """
    ensure_venv(venv)
    runs = [
        measure_slice(events, n, mode, seed, reference_script, venv, time_reference)
        for n in sorted(set(accounts))
    ]
    figures = dict(runs[-1])
    if len(runs) > 1:
        sizes = [r["slice_accounts"] for r in runs]
        seconds = [r["dfs_s"] for r in runs]
        mean_n, mean_s = sum(sizes) / len(sizes), sum(seconds) / len(seconds)
        slope = sum((n - mean_n) * (t - mean_s) for n, t in zip(sizes, seconds, strict=True)) / sum(
            (n - mean_n) ** 2 for n in sizes
        )
        figures["scaling"] = [
            {k: r[k] for k in ("slice_accounts", "slice_events", "dfs_s")} for r in runs
        ]
        figures["fit_fixed_s"] = round(mean_s - slope * mean_n, 1)
        figures["fit_s_per_account"] = round(slope, 4)
        figures["fit_extrapolated_s"] = round(mean_s + slope * (FULL_ACCOUNTS - mean_n))
    if reference_seconds is not None:
        figures["reference_full_s"] = reference_seconds
        for key in ("dfs_extrapolated_s", "dfs_extrapolated_by_events_s", "fit_extrapolated_s"):
            if key in figures:
                ratio_key = "ratio_" + key.removeprefix("dfs_").removesuffix("_s")
                figures[ratio_key] = round(figures[key] / reference_seconds, 1)
    return figures


# ---- child: runs inside the featuretools venv (pandas 2.2, numpy 1.26); nothing from the project.


def _reference_name(feature: Any, window: int | None) -> str:
    """``login__cnt_30d`` and the like for a DFS where-feature."""
    etype = feature.where.primitive.value
    kind = {"count": "cnt", "sum": "sum", "time_since_last": "days_since_last"}
    prefix = kind[feature.primitive.name]
    return f"{etype}__{prefix}" if window is None else f"{etype}__{prefix}_{window}d"


def measure_dfs(slice_path: Path, out: Path, reference: ModuleType, mode: str) -> dict[str, Any]:
    """Build the EntitySet from the slice and compute the reference's features with featuretools.

    Args:
        slice_path: Events of the slice (account_id, ts, event_type, quantity).
        out: Where to write the feature matrix: one row per (account, as_of), reference names.
        reference: The reference module (``SNAPS``, ``TYPES``).
        mode: ``dfs`` or ``use-previous``.

    Returns:
        Versions, seconds (EntitySet build, feature calculation, total), features and rows.
    """
    import featuretools as ft
    import numpy as np
    import pandas as pd
    from featuretools.primitives import (
        Count,
        DivideNumeric,
        MultiplyNumericScalar,
        Sum,
        TimeSinceLast,
    )

    events = pd.read_parquet(slice_path).astype({"ts": "datetime64[ns]"})
    accounts = pd.DataFrame({"account_id": np.sort(events["account_id"].unique())})
    as_of = pd.DatetimeIndex(reference.SNAPS)
    cutoff = pd.DataFrame(
        {
            "account_id": np.repeat(accounts["account_id"].to_numpy(), len(as_of)),
            "time": np.tile(as_of.to_numpy(), len(accounts)),
        }
    )

    started = time.perf_counter()
    es = ft.EntitySet("usage")
    es.add_dataframe(dataframe_name="accounts", dataframe=accounts, index="account_id")
    es.add_dataframe(
        dataframe_name="events",
        dataframe=events,
        index="event_id",
        make_index=True,
        time_index="ts",
        logical_types={"event_type": "Categorical", "quantity": "Double"},
    )
    es.add_relationship("accounts", "account_id", "events", "account_id")
    es.add_interesting_values(dataframe_name="events", values={"event_type": list(reference.TYPES)})
    es.add_last_time_indexes()
    where_features = [
        f
        for f in ft.dfs(
            entityset=es,
            target_dataframe_name="accounts",
            agg_primitives=[Count, Sum, TimeSinceLast(unit="days")],
            where_primitives=[Count, Sum, TimeSinceLast(unit="days")],
            trans_primitives=[],
            max_depth=1,
            features_only=True,
        )
        if getattr(f, "where", None) is not None
    ]
    entityset_s = time.perf_counter() - started
    windowed = [f for f in where_features if f.primitive.name in ("count", "sum")]
    recency = [f for f in where_features if f.primitive.name == "time_since_last"]
    common = {
        "entityset": es,
        "cutoff_time": cutoff,
        "cutoff_time_in_index": True,
        "include_cutoff_time": False,
        "n_jobs": 1,
    }

    started = time.perf_counter()
    if mode == "dfs":
        parts = []
        for days in WINDOWS:
            matrix = ft.calculate_feature_matrix(windowed, training_window=f"{days} days", **common)
            parts.append(matrix.set_axis([_reference_name(f, days) for f in windowed], axis=1))
        matrix = ft.calculate_feature_matrix(recency, **common)
        parts.append(matrix.set_axis([_reference_name(f, None) for f in recency], axis=1))
        features = pd.concat(parts, axis=1)
        trend = {
            f"{t}__trend_30_90": (features[f"{t}__cnt_30d"] / 30)
            / (features[f"{t}__cnt_90d"] / 90).where(features[f"{t}__cnt_90d"] > 0)
            for t in reference.TYPES
        }
        features = pd.concat([features, pd.DataFrame(trend)], axis=1)
        calls = len(WINDOWS) + 1
        feature_defs = len(windowed) * len(WINDOWS) + len(recency)
    elif mode == "use-previous":
        defs, names = [], []
        counts: dict[tuple[str, int], Any] = {}
        for days in WINDOWS:
            for f in windowed:
                defs.append(
                    ft.Feature(
                        f.base_features,
                        parent_dataframe_name="accounts",
                        primitive=f.primitive,
                        where=f.where,
                        use_previous=f"{days} days",
                    )
                )
                names.append(_reference_name(f, days))
                if f.primitive.name == "count":
                    counts[(f.where.primitive.value, days)] = defs[-1]
        defs += recency
        names += [_reference_name(f, None) for f in recency]
        for t in reference.TYPES:
            ratio = ft.Feature([counts[(t, 30)], counts[(t, 90)]], primitive=DivideNumeric)
            defs.append(ft.Feature(ratio, primitive=MultiplyNumericScalar(value=3)))
            names.append(f"{t}__trend_30_90")
        features = ft.calculate_feature_matrix(defs, **common).set_axis(names, axis=1)
        calls, feature_defs = 1, len(defs)
    else:
        raise ValueError(f"unknown mode {mode!r}: expected 'dfs' or 'use-previous'")
    calculate_s = time.perf_counter() - started

    features = features.rename_axis(["account_id", "as_of"]).reset_index()
    features.astype({"account_id": "int64"}).to_parquet(out, index=False)
    return {
        "featuretools": ft.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "dfs_rows": len(features),
        "dfs_feature_definitions": feature_defs,
        "dfs_calls": calls,
        "dfs_entityset_s": round(entityset_s, 2),
        "dfs_calculate_s": round(calculate_s, 2),
        "dfs_s": round(entityset_s + calculate_s, 2),
        "dfs_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "example_feature_names": [f.get_name() for f in where_features[:1] + recency[:1]],
    }


def _child(argv: list[str]) -> None:
    slice_path, out, reference_script, mode = argv
    import warnings

    # featuretools and woodwork warn per call about dtypes they coerce; the figures are the output.
    warnings.simplefilter("ignore")
    result = measure_dfs(Path(slice_path), Path(out), load_reference(Path(reference_script)), mode)
    sys.stdout.write(json.dumps(result) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Command line: print the figures as one JSON object (progress goes to stderr).

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["child"]:
        _child(args[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.lab.bench_featuretools",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--events", type=Path, required=True, help="usage_reference.py gen output")
    parser.add_argument(
        "--accounts",
        type=int,
        nargs="+",
        default=[300],
        help="accounts in the slice; several sizes add a fixed + per-account line fit",
    )
    parser.add_argument("--mode", choices=["dfs", "use-previous"], default="dfs")
    parser.add_argument("--seed", type=int, default=42, help="seed of the account draw")
    parser.add_argument(
        "--reference-seconds",
        type=float,
        help="the reference build's seconds on the whole log, for the extrapolated ratio",
    )
    parser.add_argument("--reference-script", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument(
        "--no-reference-slice",
        action="store_true",
        help="skip timing the reference build on the slice and the comparison",
    )
    opts = parser.parse_args(args)
    from pipeline.logs import setup_logging

    setup_logging()
    try:
        figures = run_bench(
            opts.events,
            opts.accounts,
            opts.mode,
            seed=opts.seed,
            reference_seconds=opts.reference_seconds,
            reference_script=opts.reference_script,
            venv=opts.venv,
            time_reference=not opts.no_reference_slice,
        )
    except FileNotFoundError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
