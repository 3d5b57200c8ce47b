"""Engagement: conversations we start and the share answered, meetings and business reviews,
inbound contact, recency of any touch."""

from __future__ import annotations

from features.base import (
    Engine,
    FamilyResult,
    days_between,
    feature_maker,
    share,
    sql_list,
)
from features.config import FeaturesConfig

FAMILY = "engagement"
TABLE = "activities"


_f = feature_maker(FAMILY, "engagement")


def engagement_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the engagement family on ``spine`` and ``activities``.

    Whether an outbound touch was answered is only judged once it is ``answer_lag_days`` old,
    since the flag on a younger one may be set after as_of.
    """
    e = cfg.engagement
    lag = e.answer_lag_days
    outbound = "lower(a.direction) = 'outbound'"
    judged = f"a.ts < s.since_{lag}d AND a.ts >= s.since_{90 + lag}d"
    meeting = f"lower(a.type) IN ({sql_list(e.meeting_types)})"
    review = f"lower(a.type) IN ({sql_list(e.review_types)})"
    frame = engine.query(
        f"""
        SELECT s.account_id, s.as_of,
          count(*) FILTER (WHERE {outbound} AND a.ts >= s.since_30d) AS outbound_touches_30d,
          count(*) FILTER (WHERE {outbound} AND a.ts >= s.since_90d) AS outbound_touches_90d,
          {share("a.responded")}
            FILTER (WHERE {outbound} AND a.responded IS NOT NULL AND {judged})
            AS outbound_answered_share_90d,
          {share("a.responded")}
            FILTER (WHERE {outbound} AND a.responded IS NOT NULL AND a.ts < s.since_{lag}d
                    AND a.ts >= s.since_{180 + lag}d)
            AS outbound_answered_share_180d,
          count(*) FILTER (WHERE lower(a.direction) = 'inbound' AND a.ts >= s.since_90d)
            AS inbound_contacts_90d,
          count(*) FILTER (WHERE {meeting} AND a.ts >= s.since_90d) AS meetings_90d,
          {days_between(f"max(a.ts) FILTER (WHERE {meeting})", "s.as_of")} AS days_since_meeting,
          {days_between(f"max(a.ts) FILTER (WHERE {review})", "s.as_of")}
            AS days_since_business_review,
          {days_between("max(a.ts)", "s.as_of")} AS days_since_last_touch
        FROM spine s JOIN {TABLE} a ON a.account_id = s.account_id AND a.ts < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    features = (
        _f("outbound_touches_30d", "{value} emails, calls or meetings we started in 30 days"),
        _f("outbound_touches_90d", "{value} emails, calls or meetings we started in 90 days"),
        _f("outbound_answered_share_90d", "{value:.0%} of our outreach was answered (90 days)",
           None),
        _f("outbound_answered_share_180d", "{value:.0%} of our outreach was answered "
           "(180 days)", None),
        _f("inbound_contacts_90d", "{value} time{s} the customer reached out in 90 days"),
        _f("meetings_90d", "{value} meeting{s} in the last 90 days"),
        _f("days_since_meeting", "{value:.0f} day{s} since the last meeting", None,
           blank="no meeting yet"),
        _f("days_since_business_review", "{value:.0f} day{s} since the last business review", None,
           blank="no business review yet"),
        _f("days_since_last_touch", "{value:.0f} day{s} since any contact with the account", None,
           blank="no contact with the account yet"),
    )  # fmt: skip
    return FamilyResult(FAMILY, frame, features)
