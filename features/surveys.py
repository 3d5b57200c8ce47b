"""Surveys: latest NPS and its category, change since the previous answer, non-response."""

from __future__ import annotations

import numpy as np

from features.base import Engine, FamilyResult, feature_maker
from features.config import FeaturesConfig

FAMILY = "surveys"
TABLE = "surveys"


_f = feature_maker(FAMILY, "surveys")


def surveys_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the surveys family; an answer counts only once ``responded_at`` is before as_of."""
    answered = "v.score IS NOT NULL AND v.responded_at IS NOT NULL AND v.responded_at < s.as_of"
    frame = engine.query(
        f"""
        WITH answers AS (
            SELECT s.account_id, s.as_of, v.score,
                   row_number() OVER (PARTITION BY s.account_id, s.as_of
                                      ORDER BY v.responded_at DESC, v.sent_at DESC) AS k
            FROM spine s JOIN {TABLE} v ON v.account_id = s.account_id AND v.sent_at < s.as_of
            WHERE {answered}),
        sent AS (
            SELECT s.account_id, s.as_of,
                   count(*) FILTER (WHERE v.sent_at >= s.since_365d) AS surveys_sent_365d,
                   avg(CASE WHEN {answered} THEN CAST(0 AS DOUBLE) ELSE CAST(1 AS DOUBLE) END)
                       FILTER (WHERE v.sent_at >= s.since_365d) AS survey_non_response_365d
            FROM spine s JOIN {TABLE} v ON v.account_id = s.account_id AND v.sent_at < s.as_of
            GROUP BY s.account_id, s.as_of)
        SELECT sent.*,
               max(a.score) FILTER (WHERE a.k = 1) AS nps_latest,
               avg(a.score) FILTER (WHERE a.k <= 4) AS nps_avg_last4,
               max(a.score) FILTER (WHERE a.k = 1) - max(a.score) FILTER (WHERE a.k = 2)
                   AS nps_change
        FROM sent LEFT JOIN answers a USING (account_id, as_of)
        GROUP BY ALL
        """
    )
    category = np.select(
        [frame["nps_latest"] >= 9, frame["nps_latest"] >= 7, frame["nps_latest"] >= 0],
        ["promoter", "passive", "detractor"],
        default=None,
    )
    frame = frame.assign(nps_category=category)
    features = (
        _f("surveys_sent_365d", "{value} survey{s} sent in the last year"),
        _f("survey_non_response_365d", "{value:.0%} of surveys went unanswered (last year)", None),
        _f("nps_latest", "the latest NPS answer was {value:.0f}", None, blank="no NPS answer yet"),
        _f(
            "nps_change",
            "NPS moved by {value:+.0f} since the previous answer",
            None,
            blank="fewer than two NPS answers",
        ),
        _f(
            "nps_avg_last4",
            "the last four NPS answers averaged {value:.1f}",
            None,
            blank="no NPS answer yet",
        ),
        _f("nps_category", "the latest NPS answer is a {value}", None, categorical=True),
    )
    return FamilyResult(FAMILY, frame, features)
