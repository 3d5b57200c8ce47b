"""Contract: tenure, ARR, seats, term, days to renewal, prior renewals, ARR change at the last
renewal, and the account's descriptive attributes (segment, industry, region, tier).

Only what was known at as_of: the current contract's own outcome never appears here.
"""

from __future__ import annotations

from features.base import Engine, FamilyResult, days_between, feature_maker
from features.config import FeaturesConfig

FAMILY = "contract"
CATEGORICAL = ("segment", "industry", "region", "tier")


_f = feature_maker(FAMILY, "contract", fill=None)


def contract_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the contract family from ``spine``, ``contracts`` and ``accounts``."""
    del cfg
    frame = engine.query(
        f"""
        WITH current AS (
            SELECT s.account_id, s.as_of, s.days_to_renewal, k.arr, k.seats,
                   {days_between("k.start_date", "k.end_date")} / CAST(30.4375 AS DOUBLE)
                     AS term_months,
                   greatest({days_between("a.created_at", "s.as_of")}, 0) AS tenure_days,
                   a.segment, a.industry, a.region, a.tier
            FROM spine s
            JOIN contracts k ON k.contract_id = s.contract_id
            JOIN accounts a ON a.account_id = s.account_id),
        history AS (
            SELECT s.account_id, s.as_of,
                   count(*) AS prior_terms,
                   arg_max(k.arr, k.end_date) AS previous_arr
            FROM spine s JOIN contracts k
              ON k.account_id = s.account_id AND k.end_date <= s.as_of
            GROUP BY s.account_id, s.as_of)
        SELECT c.account_id, c.as_of, c.arr AS arr_usd, c.seats,
               round(c.term_months) AS term_months,
               c.days_to_renewal, c.tenure_days,
               coalesce(h.prior_terms, 0) AS prior_terms,
               c.arr / nullif(h.previous_arr, 0) - 1 AS arr_change_last_renewal,
               c.segment, c.industry, c.region, c.tier
        FROM current c LEFT JOIN history h USING (account_id, as_of)
        """
    )
    features = (
        _f("arr_usd", "ARR is {value:,.0f}"),
        _f("seats", "{value:.0f} seat{s} under contract"),
        _f("term_months", "a {value:.0f}-month contract"),
        _f("days_to_renewal", "renewal is in {value:.0f} day{s}"),
        _f("tenure_days", "a customer for {value:.0f} day{s}"),
        _f("prior_terms", "{value:.0f} earlier contract term{s}", fill=0.0),
        _f(
            "arr_change_last_renewal",
            "ARR changed {value:+.0%} at the last renewal",
            blank="no earlier renewal (the first contract term)",
        ),
        *(_f(c, f"{c.replace('_', ' ')}: {{value}}", categorical=True) for c in CATEGORICAL),
    )
    return FamilyResult(FAMILY, frame, features)
