"""Billing: late invoices, what is overdue at as_of and for how long."""

from __future__ import annotations

from features.base import Engine, FamilyResult, days_between, feature_maker
from features.config import FeaturesConfig

FAMILY = "billing"
TABLE = "invoices"


_f = feature_maker(FAMILY, "billing")


def billing_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the billing family; a payment dated at or after as_of is not yet made."""
    del cfg
    paid = "i.paid_date IS NOT NULL AND i.paid_date < s.as_of"
    frame = engine.query(
        f"""
        SELECT s.account_id, s.as_of,
          count(*) FILTER (WHERE i.due_date >= s.since_365d) AS invoices_365d,
          count(*) FILTER (WHERE i.due_date >= s.since_365d
                           AND (({paid} AND i.paid_date > i.due_date) OR NOT ({paid})))
            AS late_invoices_365d,
          count(*) FILTER (WHERE NOT ({paid})) AS overdue_invoices,
          coalesce(sum(i.amount) FILTER (WHERE NOT ({paid})), 0) AS amount_overdue_usd,
          max({days_between("i.due_date", "s.as_of")}) FILTER (WHERE NOT ({paid}))
            AS days_past_due,
          avg(greatest({days_between("i.due_date", "i.paid_date")}, 0))
            FILTER (WHERE {paid} AND i.due_date >= s.since_365d) AS days_late_avg_365d
        FROM spine s JOIN {TABLE} i ON i.account_id = s.account_id AND i.due_date < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    features = (
        _f("invoices_365d", "{value} invoice{s} fell due in the last year"),
        _f("late_invoices_365d", "{value} invoice{s} paid late or not at all (last year)"),
        _f("overdue_invoices", "{value} invoice{s} overdue"),
        _f("amount_overdue_usd", "{value:,.0f} overdue"),
        _f(
            "days_past_due",
            "the oldest unpaid invoice is {value:.0f} day{s} past due",
            None,
            blank="no unpaid invoice past due",
        ),
        _f(
            "days_late_avg_365d",
            "invoices were paid {value:.0f} day{s} late on average",
            None,
            blank="no invoice paid in the last year",
        ),
    )
    return FamilyResult(FAMILY, frame, features)
