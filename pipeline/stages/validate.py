"""``healthscore validate``: check the raw tables (or a prebuilt table) against the data
contract and write a profile of them."""

from __future__ import annotations

import logging

import pandas as pd

import features
from features.config import PrebuiltTable
from pipeline import io
from pipeline.config import Params
from pipeline.io import catalog

log = logging.getLogger("healthscore")


def run_validate(params: Params) -> pd.DataFrame:
    """Read every raw table, check it against the data contract, write a profile of it."""
    if params.data.source == "table":
        return _validate_prebuilt(params.data.prebuilt, params)
    with io.read_raw(params.data) as raw:
        return _write_profile(raw, params)


def _validate_prebuilt(spec: PrebuiltTable, params: Params) -> pd.DataFrame:
    """Type the prebuilt table as training would; profile each column's role and type."""
    assert spec.path is not None  # the config requires it for source "table"
    frame = io.read_prebuilt(spec.path)
    built = features.prebuilt_training_set(frame, spec)
    used = dict(zip(built.catalog["source_column"], built.catalog["dtype"], strict=True))
    roles = {spec.id_column: "id", spec.label_column: "label", spec.as_of_column: "as_of"}
    profile = pd.DataFrame(
        {
            "column": frame.columns,
            "role": [roles.get(c, "feature" if c in used else "left out") for c in frame.columns],
            "dtype": [used.get(c, str(frame[c].dtype)) for c in frame.columns],
            "distinct": [int(frame[c].nunique()) for c in frame.columns],
            "missing": [float(frame[c].isna().mean()) for c in frame.columns],
            "note": [built.skipped.get(c, "") for c in frame.columns],
        }
    )
    with catalog.publish(catalog.VALIDATION, params.output_dir) as tmp:
        catalog.PROFILE.write(tmp, profile)
    target = catalog.PROFILE.path(params.output_dir)
    log.info(
        "validate: table %s: %s rows, %d features, %d columns left out; label rate %.1f%%; "
        "profile → %s",
        spec.path, f"{len(frame):,}", len(built.catalog), len(built.skipped),
        100 * built.table["renewed"].mean(), target,
    )  # fmt: skip
    return profile


def _write_profile(raw: io.RawData, params: Params) -> pd.DataFrame:
    if raw.missing:
        log.info(
            "validate: optional tables not found (no features of theirs): %s",
            ", ".join(raw.missing),
        )
    profile = io.profile(raw)
    summary = {
        "tables": list(raw.present),
        "missing": list(raw.missing),
        "data_end": str(io.data_end(raw)),
        "rows": {r.table: int(r.rows) for r in profile.itertuples()},
    }
    with catalog.publish(catalog.VALIDATION, params.output_dir) as tmp:
        catalog.PROFILE.write(tmp, profile)
        catalog.VALIDATION_SUMMARY.write(tmp, summary)
    target = catalog.PROFILE.path(params.output_dir)
    log.info(
        "validate: %d tables, %s rows, data ends %s; profile → %s",
        len(raw.present), f"{int(profile['rows'].sum()):,}", io.data_end(raw).date(), target,
    )  # fmt: skip
    return profile
