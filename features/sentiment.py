"""Sentiment: the CSM's latest rating, its change, the lowest of the quarter, how stale it is."""

from __future__ import annotations

from features.base import Engine, FamilyResult, days_between, feature_maker
from features.config import FeaturesConfig

FAMILY = "sentiment"
TABLE = "sentiment"


_f = feature_maker(FAMILY, "sentiment", fill=None)


def sentiment_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the sentiment family (ratings on 1–5, red/yellow/green read as 1/3/5)."""
    del cfg  # no settings yet; the signature is the families' common one
    frame = engine.query(
        f"""
        WITH ranked AS (
            SELECT s.account_id, s.as_of, s.since_90d, s.since_180d, r.ts, r.rating,
                   row_number() OVER (PARTITION BY s.account_id, s.as_of ORDER BY r.ts DESC) AS k
            FROM spine s JOIN {TABLE} r ON r.account_id = s.account_id AND r.ts < s.as_of
            WHERE r.rating IS NOT NULL)
        SELECT account_id, as_of,
               max(rating) FILTER (WHERE k = 1) AS csm_rating,
               max(rating) FILTER (WHERE k = 1) - max(rating) FILTER (WHERE k = 2)
                   AS csm_rating_change,
               min(rating) FILTER (WHERE ts >= since_90d) AS csm_rating_min_90d,
               avg(rating) FILTER (WHERE ts >= since_180d) AS csm_rating_avg_180d,
               {days_between("max(ts)", "as_of")} AS days_since_csm_rating
        FROM ranked GROUP BY account_id, as_of
        """
    )
    features = (
        _f("csm_rating", "the CSM rates the account {value:.0f} of 5"),
        _f("csm_rating_change", "the CSM's rating moved by {value:+.0f} since the previous one"),
        _f("csm_rating_min_90d", "the CSM's lowest rating this quarter was {value:.0f} of 5"),
        _f("csm_rating_avg_180d", "the CSM's ratings averaged {value:.1f} of 5 over 180 days"),
        _f("days_since_csm_rating", "the CSM last rated the account {value:.0f} day{s} ago"),
    )
    return FamilyResult(FAMILY, frame, features)
