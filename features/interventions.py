"""Interventions, as history only: how often each kind (discovered from the log) was tried and
how long ago. The decision context for causal estimates is the interventions stage's concern."""

from __future__ import annotations

import pandas as pd

from features.base import (
    Engine,
    FamilyResult,
    days_between,
    discover,
    feature_maker,
    slug,
    spoken,
    sql_literal,
)
from features.config import FeaturesConfig

FAMILY = "interventions"
TABLE = "interventions"
ALL_90D, ALL_365D = "interventions_90d", "interventions_365d"  # every kind's plays, counted


_f = feature_maker(FAMILY, "interventions")


def interventions_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the interventions family on ``spine`` and ``interventions``."""
    kinds = discover(engine, TABLE, "type", "ts", vocabulary=cfg.vocabulary)
    parts = []
    features = [
        _f(ALL_90D, "{value} intervention{s} in the last 90 days"),
        _f(ALL_365D, "{value} intervention{s} in the last year"),
    ]
    for kind in kinds:
        is_kind = f"i.type = {sql_literal(kind)}"
        col, said = slug(kind), spoken(kind)
        parts.append(f"count(*) FILTER (WHERE {is_kind} AND i.ts >= s.since_365d) AS {col}_365d")
        parts.append(
            f"{days_between(f'max(i.ts) FILTER (WHERE {is_kind})', 's.as_of')} AS days_since_{col}"
        )
        features.append(_f(f"{col}_365d", f"{{value}} × {said} in the last year"))
        features.append(
            _f(f"days_since_{col}", f"{{value:.0f}} day{{s}} since the last {said}", None,
               blank=f"no {said} yet")
        )  # fmt: skip
    frame = engine.query(
        f"""
        SELECT s.account_id, s.as_of,
          count(*) FILTER (WHERE i.ts >= s.since_90d) AS {ALL_90D},
          count(*) FILTER (WHERE i.ts >= s.since_365d) AS {ALL_365D}
          {"," + ", ".join(parts) if parts else ""}
        FROM spine s JOIN {TABLE} i ON i.account_id = s.account_id AND i.ts < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    return FamilyResult(FAMILY, frame, tuple(features), {f"{TABLE}.type": kinds})


def one_more_play(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``frame``'s play-history features as if one more play of ``kind`` had run on its as-of
    date: the kind's and all plays' counts up by one, the days since the kind 0. Columns the
    frame does not hold are left out (a kind the log never had has no columns of its own)."""
    col = slug(kind)
    changed = {
        name: frame[name].fillna(0) + 1
        for name in (f"{col}_365d", ALL_90D, ALL_365D)
        if name in frame.columns
    }
    if f"days_since_{col}" in frame.columns:
        changed[f"days_since_{col}"] = pd.Series(0.0, index=frame.index)
    return frame.assign(**changed)
