"""Support: tickets by window and priority, open backlog at as_of, time to close, CSAT."""

from __future__ import annotations

from features.base import Engine, FamilyResult, days_between, feature_maker, sql_list
from features.config import FeaturesConfig

FAMILY = "support"
TABLE = "support_tickets"


_f = feature_maker(FAMILY, "support")


def support_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the support family; a ticket closed at or after as_of counts as still open."""
    high = f"lower(t.priority) IN ({sql_list(cfg.support.high_priorities)})"
    closed = "t.closed_at IS NOT NULL AND t.closed_at < s.as_of"
    windows = ", ".join(
        f"count(*) FILTER (WHERE t.opened_at >= s.since_{w}d) AS tickets_{w}d" for w in cfg.windows
    )
    frame = engine.query(
        f"""
        SELECT s.account_id, s.as_of, {windows},
          count(*) FILTER (WHERE {high} AND t.opened_at >= s.since_90d)
            AS high_priority_tickets_90d,
          count(*) FILTER (WHERE NOT ({closed})) AS open_tickets,
          avg({days_between("t.opened_at", "t.closed_at")} * 24)
            FILTER (WHERE {closed} AND t.closed_at >= s.since_90d) AS hours_to_close_90d,
          avg(t.csat) FILTER (WHERE {closed} AND t.closed_at >= s.since_180d) AS csat_180d,
          {days_between("max(t.opened_at)", "s.as_of")} AS days_since_ticket
        FROM spine s JOIN {TABLE} t ON t.account_id = s.account_id AND t.opened_at < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    features = (
        *(_f(f"tickets_{w}d", f"{{value}} support ticket{{s}} in the last {w} days")
          for w in cfg.windows),
        _f("high_priority_tickets_90d", "{value} high-priority ticket{s} in the last 90 days"),
        _f("open_tickets", "{value} support ticket{s} open"),
        _f("hours_to_close_90d", "tickets took {value:.0f} hour{s} to close on average", None,
           blank="no ticket closed in the last 90 days"),
        _f("csat_180d", "support satisfaction (CSAT) averaged {value:.1f}", None,
           blank="no support satisfaction (CSAT) rating in 180 days"),
        _f("days_since_ticket", "{value:.0f} day{s} since the last support ticket", None,
           blank="no support ticket yet"),
    )  # fmt: skip
    return FamilyResult(FAMILY, frame, features)
