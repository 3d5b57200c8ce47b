"""Features of every account as of a date, from one read of the data: what scoring, planning
and the lab's evaluation build on, with the model's vocabulary pinned and its columns checked."""

from __future__ import annotations

import logging
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd

import features
from pipeline import io
from pipeline.config import DataConfig, FeaturesConfig
from pipeline.io.engines import make_engine
from pipeline.io.registry import HealthModel

log = logging.getLogger("healthscore")

ACCOUNT_COLUMNS = ("name", "segment", "csm_id")


def features_as_of(
    data: DataConfig,
    features_cfg: FeaturesConfig,
    model: HealthModel,
    as_of: date,
    input_path: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Features of every account to score (key, ARR and account columns beside them), and the
    outcomes of every contract known so far (for the backtest; None for a prebuilt table), from
    one read of the data."""
    if data.source == "table":
        spec = data.prebuilt
        path = input_path or spec.score_path or spec.path
        assert path is not None  # the config requires a path for source "table"
        table = features.prebuilt_scoring_set(io.read_prebuilt(path), spec, model.catalog)
        latest = features.latest_snapshots(table, pd.Timestamp(as_of))
        return latest.assign(as_of=pd.Timestamp(as_of)), None
    with io.read_raw(data) as raw, tempfile.TemporaryDirectory() as tmp:
        end = pd.Timestamp(data.cutoff) if data.cutoff else io.data_end(raw)
        if pd.Timestamp(as_of) > end + pd.Timedelta(days=1):
            log.warning(
                "score: as of %s is after the data's end (%s): nothing after it is seen",
                as_of, end.date(),
            )  # fmt: skip
        contracts = raw.frame("contracts")
        outcomes = features.contract_outcomes(contracts, features_cfg.grace_days, end)
        spine = features.make_scoring_spine(contracts, pd.Timestamp(as_of))
        if spine.empty:
            raise ValueError(f"no account has a contract in force on {as_of}")
        cfg = pinned_features(features_cfg, model.catalog)
        table, _ = features.build_feature_table(
            make_engine(cfg.engine, raw, Path(tmp)), spine, cfg, raw.present
        )
        accounts = raw.frame("accounts")[["account_id", *ACCOUNT_COLUMNS]]
    check_schema(table, model)
    extra = ["account_id", *(c for c in ACCOUNT_COLUMNS if c not in table.columns)]
    scored = table.merge(accounts[extra], on="account_id", how="left", validate="many_to_one")
    return scored, outcomes


def pinned_features(cfg: FeaturesConfig, catalog: pd.DataFrame) -> FeaturesConfig:
    """The features settings with the vocabulary the model was trained on pinned, so the same
    columns are built whatever new event types, personas or kinds appeared since."""
    vocabulary = features.catalog_vocabulary(catalog)
    return cfg.model_copy(update={"vocabulary": {**cfg.vocabulary, **vocabulary}})


def check_schema(table: pd.DataFrame, model: HealthModel) -> None:
    """Refuse, naming the columns, when the features built are not the model's."""
    names = model.features
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(
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
        raise ValueError(f"features whose type differs from the model's: {wrong[:8]}")
