"""Features of every account as of a date, from one read of the data: what scoring, planning
and the lab's evaluation build on, with the model's vocabulary pinned and its columns checked."""

from __future__ import annotations

import logging
import tempfile
from contextlib import nullcontext
from datetime import date
from pathlib import Path

import pandas as pd

import features
from pipeline import io
from pipeline.config import DataConfig, FeaturesConfig
from pipeline.errors import InputError
from pipeline.io.engines import make_engine
from pipeline.io.registry import HealthModel
from pipeline.io.schema import EVENT_LOGS, TABLES

log = logging.getLogger("healthscore")

ACCOUNT_COLUMNS = ("name", "segment", "csm_id", "csm_name")


def features_as_of(
    data: DataConfig,
    features_cfg: FeaturesConfig,
    model: HealthModel,
    as_of: date,
    input_path: Path | None = None,
    raw: io.RawData | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Features of every account to score (key, ARR and account columns beside them), and the
    outcomes of every contract known so far (for the backtest; None for a prebuilt table), from
    one read of the data (``raw``, when the caller has read it already; it stays open)."""
    if data.source == "table":
        spec = data.prebuilt
        path = input_path or spec.score_path or spec.path
        assert path is not None  # the config requires a path for source "table"
        table = features.prebuilt_scoring_set(io.read_prebuilt(path), spec, model.catalog)
        latest = features.latest_snapshots(table, pd.Timestamp(as_of))
        return latest.assign(as_of=pd.Timestamp(as_of)), None
    opened = nullcontext(raw) if raw is not None else io.read_raw(data)
    with opened as raw, tempfile.TemporaryDirectory() as tmp:
        end = io.known_until(raw, data.cutoff)
        if as_of > io.first_fresh_day(end):
            log.warning(
                "score: as of %s is after the data's end (%s): nothing after it is seen",
                as_of, end.date(),
            )  # fmt: skip
        contracts = raw.frame("contracts")
        outcomes = features.contract_outcomes(contracts, features_cfg.grace_days, end)
        spine = features.make_scoring_spine(contracts, pd.Timestamp(as_of))
        if spine.empty:
            raise InputError(f"no account has a contract in force on {as_of}")
        cfg = pinned_features(features_cfg, model.catalog)
        check_vocabulary(raw, features.catalog_vocabulary(model.catalog), as_of, features_cfg)
        table, _ = features.build_feature_table(
            make_engine(cfg.engine, raw, Path(tmp)), spine, cfg, raw.present
        )
        accounts = raw.frame("accounts")
        accounts = accounts[["account_id", *(c for c in ACCOUNT_COLUMNS if c in accounts)]]
    check_schema(table, model)
    extra = ["account_id", *(c for c in ACCOUNT_COLUMNS if c in accounts and c not in table)]
    scored = table.merge(accounts[extra], on="account_id", how="left", validate="many_to_one")
    return scored, outcomes


def pinned_features(cfg: FeaturesConfig, catalog: pd.DataFrame) -> FeaturesConfig:
    """The features settings with the vocabulary the model was trained on pinned, so the same
    columns are built whatever new event types, personas or kinds appeared since."""
    vocabulary = features.catalog_vocabulary(catalog)
    return cfg.model_copy(update={"vocabulary": {**cfg.vocabulary, **vocabulary}})


def check_vocabulary(
    raw: io.RawData, vocabulary: dict[str, list[str]], as_of: date, cfg: FeaturesConfig
) -> None:
    """Refuse when an event log's recent values are mostly not the ones the model was trained on.

    Renamed event types (a product's tracking plan changed) would otherwise score every account
    on columns of zeros. Per pinned ``table.column`` of an event log with at least three values:
    of those values, fewer than ``cfg.min_vocabulary_share`` seen in the longest feature window
    before ``as_of`` is refused. A log with no rows in the window is left to the drift monitor.

    Raises:
        DataContractError: naming the table, the column, the values missing and the new ones.
    """
    window = max(cfg.windows)
    for key, values in vocabulary.items():
        table, _, column = key.partition(".")
        if table not in EVENT_LOGS or not raw.has(table) or len(values) < 3:
            continue
        spec = TABLES[table]
        kinds = {c.name: c.kind for c in spec.columns}
        if kinds.get(column) != "string" or spec.time_column is None:
            continue
        start = pd.Timestamp(as_of) - pd.Timedelta(days=window)
        rows = raw.connection.execute(
            f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{spec.time_column}" < ? '
            f'AND "{spec.time_column}" >= ? AND "{column}" IS NOT NULL',
            [pd.Timestamp(as_of).to_pydatetime(), start.to_pydatetime()],
        ).fetchall()
        seen = {str(r[0]) for r in rows}
        if not seen:
            continue
        known = [v for v in values if v in seen]
        if len(known) < cfg.min_vocabulary_share * len(values):
            missing = [v for v in values if v not in seen]
            new = sorted(seen - set(values))
            raise io.DataContractError(
                table, column,
                f"only {len(known)} of the {len(values)} values the model was trained on appear "
                f"in the {window} days before {as_of} (missing: {', '.join(missing[:8])}"
                f"{' …' if len(missing) > 8 else ''}; new: {', '.join(new[:8]) or 'none'}"
                f"{' …' if len(new) > 8 else ''})",
                "the model's values: map renamed ones back in the export, or retrain "
                f"(features.min_vocabulary_share is {cfg.min_vocabulary_share:g})",
            )  # fmt: skip


def check_schema(table: pd.DataFrame, model: HealthModel) -> None:
    """Refuse, naming the columns, when the features built are not the model's."""
    names = model.features
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise InputError(
            f"the features built today lack {len(missing)} of the model's {len(names)} columns "
            f"({', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}): the data no longer "
            "has what the model was trained on (a table or column missing); retrain or restore it"
        )
    catalog = model.catalog.set_index("name")
    wrong = [
        n
        for n in names
        if bool(catalog.loc[n, "categorical"]) != isinstance(table[n].dtype, pd.CategoricalDtype)
    ]
    if wrong:
        raise InputError(f"features whose type differs from the model's: {wrong[:8]}")
