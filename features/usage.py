"""Usage: per event type (discovered from the data) counts, trend and recency; active users,
their ratio to seats, breadth, and adoption of the key features."""

from __future__ import annotations

import pandas as pd

from features.base import (
    Engine,
    FamilyResult,
    Feature,
    days_between,
    discover,
    share,
    slug,
    sql_list,
)
from features.config import FeaturesConfig

FAMILY = "usage"
TABLE = "usage_events"


def _f(name: str, description: str, fill: float | None = 0.0) -> Feature:
    return Feature(name, FAMILY, "usage", description, fill)


def key_event_types(engine: Engine, cfg: FeaturesConfig) -> list[str]:
    """The product's key features: from params, else the most used event types."""
    if cfg.usage.key_event_types:
        return list(cfg.usage.key_event_types)
    return discover(engine, TABLE, "event_type", "ts", limit=cfg.usage.top_key_events)


def usage_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the usage family on the ``spine`` and ``usage_events`` relations."""
    types = discover(engine, TABLE, "event_type", "ts")
    keys = key_event_types(engine, cfg)
    windows = cfg.windows
    reach = max([*windows, 90])
    features: list[Feature] = []
    select: list[str] = []
    for w in windows:
        select.append(f"count(*) FILTER (WHERE e.ts >= s.since_{w}d) AS events_{w}d")
        features.append(_f(f"events_{w}d", f"{{value}} product events in the last {w} days"))
    select += [
        "count(*) FILTER (WHERE e.ts >= s.since_30d) AS _n30",
        "count(*) FILTER (WHERE e.ts >= s.since_90d) AS _n90",
        "count(DISTINCT e.user_id) FILTER (WHERE e.ts >= s.since_30d) AS active_users_30d",
        "count(DISTINCT e.user_id) FILTER (WHERE e.ts >= s.since_30d) / nullif(s.seats, 0) "
        "AS active_user_share_30d",
        "count(DISTINCT e.event_type) FILTER (WHERE e.ts >= s.since_30d) AS features_used_30d",
        "count(*) FILTER (WHERE e.ts >= s.since_30d) / nullif(s.seats, 0) AS events_per_seat_30d",
        "count(*) FILTER (WHERE e.ts >= s.since_90d) / nullif(s.seats, 0) AS events_per_seat_90d",
        share(f"lower(e.event_type) IN ({sql_list(keys)})") + " "
        "FILTER (WHERE e.ts >= s.since_90d) AS key_event_share_90d",
        f"count(DISTINCT e.user_id) FILTER (WHERE e.ts >= s.since_30d "
        f"AND lower(e.event_type) IN ({sql_list(keys)})) AS _key_users_30d",
    ]
    features += [
        _f("active_users_30d", "{value} people used the product in the last 30 days"),
        _f("active_user_share_30d", "{value:.0%} of the seats were used in the last 30 days", None),
        _f("features_used_30d", "{value} different product features used in the last 30 days"),
        _f("events_per_seat_30d", "{value:.1f} product events per seat in the last 30 days", None),
        _f("events_per_seat_90d", "{value:.1f} product events per seat in the last 90 days", None),
        _f(
            "key_event_share_90d",
            f"{{value:.0%}} of activity used the key features ({', '.join(keys)}) over 90 days",
            None,
        ),
    ]
    for t in types:
        col = slug(t)
        is_t = f"e.event_type = {_lit(t)}"
        for w in windows:
            select.append(f"count(*) FILTER (WHERE {is_t} AND e.ts >= s.since_{w}d) AS {col}_{w}d")
            features.append(_f(f"{col}_{w}d", f"{{value}} '{t}' events in the last {w} days"))
        select.append(share(is_t) + f" FILTER (WHERE e.ts >= s.since_90d) AS {col}_share_90d")
        features.append(
            _f(
                f"{col}_share_90d",
                f"'{t}' was {{value:.0%}} of product activity over 90 days",
                None,
            )
        )
        select.append(f"count(*) FILTER (WHERE {is_t} AND e.ts >= s.since_30d) AS _{col}_30")
        select.append(f"count(*) FILTER (WHERE {is_t} AND e.ts >= s.since_90d) AS _{col}_90")
    windowed = engine.query(
        f"""
        SELECT s.account_id, s.as_of, {", ".join(select)}
        FROM spine s JOIN {TABLE} e
          ON e.account_id = s.account_id AND e.ts < s.as_of AND e.ts >= s.since_{reach}d
        GROUP BY s.account_id, s.as_of, s.seats
        """
    )
    recency = [days_between("max(d.last_ts)", "s.as_of") + " AS days_since_last_use"]
    for t in types:
        last_t = f"max(d.last_ts) FILTER (WHERE d.event_type = {_lit(t)})"
        recency.append(f"{days_between(last_t, 's.as_of')} AS days_since_{slug(t)}")
    last = engine.query(
        f"""
        WITH daily AS (
            SELECT account_id, event_type, max(ts) AS last_ts
            FROM {TABLE} GROUP BY account_id, event_type, CAST(ts AS DATE))
        SELECT s.account_id, s.as_of, {", ".join(recency)}
        FROM spine s JOIN daily d ON d.account_id = s.account_id AND d.last_ts < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    features.append(
        _f("days_since_last_use", "{value:.0f} days since anyone used the product", None)
    )
    features += [
        _f(f"days_since_{slug(t)}", f"{{value:.0f}} days since '{t}' was last used", None)
        for t in types
    ]
    frame = windowed.merge(last, on=["account_id", "as_of"], how="outer")
    frame = frame.assign(
        usage_trend_30v60=_trend(frame["_n30"], frame["_n90"]),
        key_feature_adoption_30d=frame["_key_users_30d"] / frame["active_users_30d"].where(
            frame["active_users_30d"] > 0
        ),
        **{f"{slug(t)}_trend_30v60": _trend(frame[f"_{slug(t)}_30"], frame[f"_{slug(t)}_90"])
           for t in types},
    )  # fmt: skip
    features += [
        _f("usage_trend_30v60", "usage over the last 30 days is {value:.0%} of the 60 before",
           None),
        _f("key_feature_adoption_30d",
           f"{{value:.0%}} of active users used the key features ({', '.join(keys)})", None),
        *[_f(f"{slug(t)}_trend_30v60", f"'{t}' over the last 30 days is {{value:.0%}} of the 60 "
             "before", None) for t in types],
    ]  # fmt: skip
    helpers = [c for c in frame.columns if c.startswith("_")]
    return FamilyResult(FAMILY, frame.drop(columns=helpers), tuple(features))


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _trend(last_30: pd.Series, last_90: pd.Series) -> pd.Series:
    """Daily rate over the last 30 days over the daily rate of the 60 days before it."""
    before = (last_90 - last_30) / 60.0
    return (last_30 / 30.0) / before.where(before > 0)
