"""Run the feature families on a spine and assemble one point-in-time feature table."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd

from features.base import Engine, FamilyResult, Feature
from features.billing import billing_features
from features.config import FeaturesConfig
from features.contract import contract_features
from features.engagement import engagement_features
from features.interventions import interventions_features
from features.opportunities import opportunities_features
from features.relationships import relationships_features
from features.sentiment import sentiment_features
from features.support import support_features
from features.surveys import surveys_features
from features.usage import usage_features

KEY = ["account_id", "as_of"]
FamilyBuilder = Callable[[Engine, FeaturesConfig], FamilyResult]
# family name -> (the optional table it needs, or None, and its builder)
FAMILIES: dict[str, tuple[str | None, FamilyBuilder]] = {
    "contract": (None, contract_features),
    "usage": ("usage_events", usage_features),
    "engagement": ("activities", engagement_features),
    "support": ("support_tickets", support_features),
    "surveys": ("surveys", surveys_features),
    "sentiment": ("sentiment", sentiment_features),
    "relationships": ("contacts", relationships_features),
    "billing": ("invoices", billing_features),
    "opportunities": ("opportunities", opportunities_features),
    "interventions": ("interventions", interventions_features),
}
FIXED_DAYS = (7, 30, 60, 90, 180, 365)


def window_days(cfg: FeaturesConfig) -> list[int]:
    """Every day offset a family compares timestamps against (bounds kept in the spine)."""
    lag = cfg.engagement.answer_lag_days
    return sorted({*FIXED_DAYS, *cfg.windows, lag, 90 + lag, 180 + lag} - {0})


def with_window_bounds(spine: pd.DataFrame, days: list[int]) -> pd.DataFrame:
    """The spine with ``since_<d>d`` = as_of − d days for every offset, plus ``since_0d``."""
    bounds = {f"since_{d}d": spine["as_of"] - pd.Timedelta(days=d) for d in days}
    return spine.assign(since_0d=spine["as_of"], **bounds)


def families_for(present: tuple[str, ...] | list[str]) -> list[str]:
    """The families whose table is present (a missing optional table yields no columns)."""
    return [name for name, (table, _) in FAMILIES.items() if table is None or table in present]


def build_feature_table(
    engine: Engine,
    spine: pd.DataFrame,
    cfg: FeaturesConfig,
    present: tuple[str, ...] | list[str],
    on_family: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features for every spine row (none dropped), and the catalog describing them.

    Args:
        engine: runs the families' SQL; holds the contract tables as relations.
        spine: one row per (account_id, as_of) with ``contract_id`` and ``days_to_renewal``.
        cfg: the ``features`` section of params.
        present: the contract tables found in the data.
        on_family: called with each family's name once it is built (progress).

    Returns:
        The spine's columns followed by the features, and a catalog with one row per feature
        (name, family, component, dtype, description, categorical).

    Raises:
        ValueError: the spine has duplicate (account_id, as_of) keys.
    """
    if spine.duplicated(KEY).any():
        raise ValueError("spine has duplicate (account_id, as_of) rows")
    keys = with_window_bounds(spine[[*KEY, "contract_id", "days_to_renewal"]], window_days(cfg))
    engine.register("spine_keys", keys)
    engine.register(
        "spine",
        engine.query(
            "SELECT k.*, c.seats, a.segment FROM spine_keys k "
            "LEFT JOIN contracts c ON c.contract_id = k.contract_id "
            "LEFT JOIN accounts a ON a.account_id = k.account_id"
        ),
    )
    table = spine.drop(columns="days_to_renewal")  # the contract family reports it as a feature
    catalog: list[Feature] = []
    vocabulary: dict[str, str] = {}
    for name in families_for(present):
        result = FAMILIES[name][1](engine, cfg)
        table = _attach(table, result)
        catalog.extend(result.features)
        vocabulary |= dict.fromkeys((f.name for f in result.features), json.dumps(
            result.vocabulary, sort_keys=True))  # fmt: skip
        if on_family is not None:
            on_family(name)
    made = make_catalog(table, catalog)
    return table, made.assign(vocabulary=made["name"].map(vocabulary))


def catalog_vocabulary(catalog: pd.DataFrame) -> dict[str, list[str]]:
    """The values the families discovered when the catalog was built (``table.column`` →
    values), to pin them when the same features are built again (scoring)."""
    if "vocabulary" not in catalog:
        return {}
    merged: dict[str, list[str]] = {}
    for text in catalog["vocabulary"].dropna().unique():
        merged |= json.loads(text)
    return merged


def _attach(table: pd.DataFrame, result: FamilyResult) -> pd.DataFrame:
    """Left-join one family; snapshots it has no rows for get each feature's fill value."""
    columns = [f.name for f in result.features]
    missing = [c for c in columns if c not in result.frame]
    if missing:
        raise ValueError(f"family {result.family} did not build {missing}")
    frame = result.frame[[*KEY, *columns]].assign(_seen=True)
    merged = table.merge(frame, on=KEY, how="left", validate="one_to_one")
    unseen = merged["_seen"].isna()
    fills = {
        f.name: merged[f.name].mask(unseen, f.fill) for f in result.features if f.fill is not None
    }
    categories = {
        f.name: merged[f.name].astype("category") for f in result.features if f.categorical
    }
    # the family's columns as one frame beside the table's (a category column as merged, not
    # filled): assigning them one by one would leave a block per column, over a hundred once
    # every family is in, and pandas slow and warning on each later insert
    replaced = {**fills, **categories}
    family = pd.DataFrame({c: replaced.get(c, merged[c]) for c in columns}, index=merged.index)
    return pd.concat([merged.iloc[:, : len(table.columns)], family], axis=1)


def make_catalog(table: pd.DataFrame, features: list[Feature]) -> pd.DataFrame:
    """One row per feature: what it is, where it belongs, how to say it in plain words."""
    return pd.DataFrame(
        {
            "name": [f.name for f in features],
            "family": [f.family for f in features],
            "component": [f.component for f in features],
            "dtype": [str(table[f.name].dtype) for f in features],
            "categorical": [f.categorical for f in features],
            "description": [f.description for f in features],
            "source_column": [f.source_column for f in features],
            "blank": [f.blank for f in features],
        }
    )
