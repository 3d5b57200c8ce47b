"""``healthscore features``: the point-in-time training set and its catalog of features."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import features
from features.config import PrebuiltTable
from pipeline import io
from pipeline.config import DataConfig, FeaturesConfig, Params
from pipeline.io.catalog import FEATURE_CATALOG, FEATURES, TRAINING_SET, publish
from pipeline.io.engines import make_engine
from pipeline.logs import progress_bar

log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class FeaturesResult:
    """Where the training set went, and its size, label rate and unlabelled rows."""

    path: Path
    catalog_path: Path
    rows: int
    features: int
    label_rate: float
    censored: int


def run_features(params: Params, quiet: bool = False) -> FeaturesResult:
    """Build the point-in-time training set and its catalog into ``output_dir/features``.

    With ``data.source: table`` the prebuilt snapshot table is typed and written in the same
    shape instead, so every later stage runs unchanged.
    """
    started = time.perf_counter()
    if params.data.source == "table":
        table, catalog, source = _prebuilt_features(params.data.prebuilt)
    else:
        with io.read_raw(params.data) as raw:
            table, catalog, source = _build_features(raw, params.data, params.features, quiet)
    return _write_training_set(params.output_dir, table, catalog, started, source)


def _prebuilt_features(spec: PrebuiltTable) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    assert spec.path is not None  # the config requires it for source "table"
    built = features.prebuilt_training_set(io.read_prebuilt(spec.path), spec)
    for column, reason in built.skipped.items():
        log.info("features: column %r left out: %s", column, reason)
    return built.table, built.catalog, f"table {spec.path}"


def _build_features(
    raw: io.RawData, data: DataConfig, cfg: FeaturesConfig, quiet: bool
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    end = io.known_until(raw, data.cutoff)
    first = io.data_start(raw).normalize() + pd.Timedelta(days=cfg.warmup_days)
    grid = features.as_of_grid(first, end, cfg.frequency)
    spine = features.make_training_spine(
        raw.frame("contracts"), grid, cfg.horizon_days, cfg.grace_days, end
    )
    log.info(
        "features: %s snapshots on %d %s as-of dates (%s → %s), data end %s, engine %s",
        f"{len(spine):,}", len(grid), cfg.frequency, grid[0].date(), grid[-1].date(), end,
        cfg.engine,
    )  # fmt: skip
    families = features.families_for(raw.present)
    with progress_bar(quiet) as bar, tempfile.TemporaryDirectory(prefix="healthscore-") as tmp:
        task = bar.add_task("feature families", total=len(families))
        table, catalog = features.build_feature_table(
            make_engine(cfg.engine, raw, Path(tmp)), spine, cfg, raw.present,
            on_family=lambda name: bar.update(task, advance=1, description=name),
        )  # fmt: skip
    return table, catalog, f"{len(families)} families"


def _write_training_set(
    output_dir: Path, table: pd.DataFrame, catalog: pd.DataFrame, started: float, source: str
) -> FeaturesResult:
    known = table["renewed"].notna()
    with publish(FEATURES, output_dir) as tmp:
        TRAINING_SET.write(tmp, table)
        FEATURE_CATALOG.write(tmp, catalog)
    result = FeaturesResult(
        path=TRAINING_SET.path(output_dir),
        catalog_path=FEATURE_CATALOG.path(output_dir),
        rows=len(table),
        features=len(catalog),
        label_rate=float(table.loc[known, "renewed"].mean()) if known.any() else float("nan"),
        censored=int((~known).sum()),
    )
    log.info(
        "features: %s rows × %d features from %s in %.1f s; renewal rate %.1f%% "
        "(%s unlabelled, kept for scoring) → %s",
        f"{result.rows:,}", result.features, source, time.perf_counter() - started,
        100 * result.label_rate, f"{result.censored:,}", result.path,
    )  # fmt: skip
    return result
