"""Interventions, as history only: how often each kind (discovered from the log) was tried and
how long ago. The decision context for causal estimates is the interventions stage's concern."""

from __future__ import annotations

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


_f = feature_maker(FAMILY, "interventions")


def interventions_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the interventions family on ``spine`` and ``interventions``."""
    kinds = discover(engine, TABLE, "type", "ts", vocabulary=cfg.vocabulary)
    parts = []
    features = [
        _f("interventions_90d", "{value} intervention{s} in the last 90 days"),
        _f("interventions_365d", "{value} intervention{s} in the last year"),
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
          count(*) FILTER (WHERE i.ts >= s.since_90d) AS interventions_90d,
          count(*) FILTER (WHERE i.ts >= s.since_365d) AS interventions_365d
          {"," + ", ".join(parts) if parts else ""}
        FROM spine s JOIN {TABLE} i ON i.account_id = s.account_id AND i.ts < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    return FamilyResult(FAMILY, frame, tuple(features), {f"{TABLE}.type": kinds})
