"""Opportunities: open expansion pipeline, expansion won, deals recently lost.

A deal's stage is only trusted once ``closed_at`` is before as_of; until then it is open.
"""

from __future__ import annotations

from features.base import Engine, FamilyResult, feature_maker, sql_list
from features.config import FeaturesConfig

FAMILY = "opportunities"
TABLE = "opportunities"


_f = feature_maker(FAMILY, "contract")


def opportunities_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the opportunities family on ``spine`` and ``opportunities``."""
    opp = cfg.opportunities
    expansion = f"lower(o.type) IN ({sql_list(opp.expansion_types)})"
    closed = "o.closed_at IS NOT NULL AND o.closed_at < s.as_of"
    won = f"{closed} AND lower(o.stage) IN ({sql_list(opp.won_stages)})"
    lost = f"{closed} AND lower(o.stage) IN ({sql_list(opp.lost_stages)})"
    frame = engine.query(
        f"""
        SELECT s.account_id, s.as_of,
          coalesce(sum(o.amount) FILTER (WHERE {expansion} AND NOT ({closed})), 0)
            AS open_expansion_usd,
          coalesce(sum(o.amount) FILTER (
              WHERE {expansion} AND {won} AND o.closed_at >= s.since_365d), 0)
            AS expansion_won_365d_usd,
          count(*) FILTER (WHERE {lost} AND o.closed_at >= s.since_180d) AS deals_lost_180d
        FROM spine s JOIN {TABLE} o ON o.account_id = s.account_id AND o.created_at < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    features = (
        _f("open_expansion_usd", "{value:,.0f} of upsell and cross-sell in the pipeline"),
        _f("expansion_won_365d_usd", "{value:,.0f} of expansion won in the last year"),
        _f("deals_lost_180d", "{value} deal{s} lost in the last 180 days"),
    )
    return FamilyResult(FAMILY, frame, features)
