"""Usage: per event type (discovered from the data) counts, quantity sums, share, trend and
recency; active users, their share of seats, breadth, events per seat, and adoption of the key
features. Quantity sums exist only when the optional ``quantity`` column has values.

Per-type figures are aggregated in long form (one row per account, as_of and event type) and
pivoted afterwards: one pass with a handful of aggregates, rather than a filter per type and
window over every joined row.
"""

from __future__ import annotations

import pandas as pd

from features.base import (
    Engine,
    FamilyResult,
    Feature,
    days_between,
    discover,
    feature_maker,
    slug,
)
from features.config import FeaturesConfig

FAMILY = "usage"
TABLE = "usage_events"
KEY = ["account_id", "as_of"]


_f = feature_maker(FAMILY, "usage")


def key_event_types(engine: Engine, cfg: FeaturesConfig) -> list[str]:
    """The product's key features: from params, else the most used event types."""
    if cfg.usage.key_event_types:
        return list(cfg.usage.key_event_types)
    return discover(engine, TABLE, "event_type", "ts", limit=cfg.usage.top_key_events)


def has_quantity(engine: Engine) -> bool:
    """Whether any event before the spine's last as_of carries a quantity (it is optional).

    Only earlier rows count, so quantities recorded later cannot add columns to a snapshot.
    """
    found = engine.query(
        f"SELECT 1 AS found FROM {TABLE} "
        "WHERE quantity IS NOT NULL AND ts < (SELECT max(as_of) FROM spine) LIMIT 1"
    )
    return len(found) > 0


def usage_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the usage family on the ``spine`` and ``usage_events`` relations."""
    types = discover(engine, TABLE, "event_type", "ts")
    keys = key_event_types(engine, cfg)
    windows = cfg.windows
    reach = max([*windows, 90])
    joined = (
        f"spine s JOIN {TABLE} e ON e.account_id = s.account_id "
        f"AND e.ts < s.as_of AND e.ts >= s.since_{reach}d"
    )
    counted = sorted({*windows, 30, 90})
    counts = ", ".join(f"count(*) FILTER (WHERE e.ts >= s.since_{w}d) AS n{w}" for w in counted)
    if has_quantity(engine):
        counts += ", " + ", ".join(
            f"sum(e.quantity) FILTER (WHERE e.ts >= s.since_{w}d) AS q{w}" for w in windows
        )
    per_type = engine.query(
        f"SELECT s.account_id, s.as_of, e.event_type, {counts} FROM {joined} "
        f"WHERE e.event_type IN ({_in(types)}) GROUP BY s.account_id, s.as_of, e.event_type"
    )
    key_types = [t for t in types if t.lower() in {k.lower() for k in keys}]
    users = engine.query(
        f"""
        SELECT s.account_id, s.as_of, any_value(s.seats) AS _seats,
          count(DISTINCT e.user_id) AS active_users_30d,
          count(DISTINCT e.user_id) FILTER (WHERE e.event_type IN ({_in(key_types)}))
            AS _key_users_30d
        FROM spine s JOIN {TABLE} e ON e.account_id = s.account_id
          AND e.ts < s.as_of AND e.ts >= s.since_30d
        GROUP BY s.account_id, s.as_of
        """
    )
    last = engine.query(_recency_sql(types))
    frame, features = _assemble(per_type, users, last, types, key_types, windows)
    return FamilyResult(FAMILY, frame, tuple(features))


def _assemble(
    per_type: pd.DataFrame,
    users: pd.DataFrame,
    last: pd.DataFrame,
    types: list[str],
    keys: list[str],
    windows: list[int],
) -> tuple[pd.DataFrame, list[Feature]]:
    """Pivot the long per-type figures and derive totals, shares and trends."""
    columns = [c for c in per_type.columns if c[0] in "nq" and c[1:].isdigit()]
    wide = per_type.pivot_table(index=KEY, columns="event_type", values=columns, aggfunc="sum")
    wide = wide.reindex(columns=pd.MultiIndex.from_product([columns, types]), fill_value=0).fillna(
        0
    )
    totals = {n: wide[n].sum(axis=1) for n in columns}
    recency = last.pivot_table(index=KEY, columns="event_type", values="days_since", aggfunc="min")
    recency = recency.reindex(columns=types)
    frame = pd.DataFrame(index=wide.index.union(recency.index).set_names(KEY))
    features: list[Feature] = []
    out: dict[str, pd.Series] = {}
    quantities = any(c.startswith("q") for c in columns)
    for w in windows:
        out[f"events_{w}d"] = totals[f"n{w}"]
        features.append(_f(f"events_{w}d", f"{{value}} product events in the last {w} days"))
        if quantities:
            out[f"quantity_{w}d"] = totals[f"q{w}"]
            features.append(
                _f(f"quantity_{w}d", f"{{value:,.1f}} total quantity used in the last {w} days")
            )
    out["usage_trend_30v60"] = _trend(totals["n30"], totals["n90"])
    out["features_used_30d"] = (wide["n30"] > 0).sum(axis=1)
    key_n90 = wide["n90"][keys].sum(axis=1) if keys else totals["n90"] * 0
    out["key_event_share_90d"] = key_n90 / totals["n90"].where(totals["n90"] > 0)
    out["_n30_total"], out["_n90_total"] = totals["n30"], totals["n90"]
    out["days_since_last_use"] = recency.min(axis=1)
    features += [
        _f(
            "usage_trend_30v60", "usage over the last 30 days is {value:.0%} of the 60 before", None
        ),
        _f("days_since_last_use", "{value:.0f} days since anyone used the product", None),
        _f("features_used_30d", "{value} different product features used in the last 30 days"),
    ]
    for t in types:
        col = slug(t)
        for w in windows:
            out[f"{col}_{w}d"] = wide[(f"n{w}", t)]
            features.append(_f(f"{col}_{w}d", f"{{value}} '{t}' events in the last {w} days"))
            if quantities:
                out[f"{col}_qty_{w}d"] = wide[(f"q{w}", t)]
                features.append(
                    _f(f"{col}_qty_{w}d", f"{{value:,.1f}} '{t}' quantity in the last {w} days")
                )
        out[f"{col}_share_90d"] = wide[("n90", t)] / totals["n90"].where(totals["n90"] > 0)
        out[f"{col}_trend_30v60"] = _trend(wide[("n30", t)], wide[("n90", t)])
        out[f"days_since_{col}"] = recency[t]
        features += [
            _f(f"{col}_share_90d", f"'{t}' was {{value:.0%}} of activity over 90 days", None),
            _f(f"{col}_trend_30v60", f"'{t}' over the last 30 days is {{value:.0%}} of the 60 "
               "before", None),
            _f(f"days_since_{col}", f"{{value:.0f}} days since '{t}' was last used", None),
        ]  # fmt: skip
    columns = {k: s.reindex(frame.index).to_numpy() for k, s in out.items()}
    frame = pd.DataFrame(columns, index=frame.index).reset_index()
    counted = [f.name for f in features if f.fill == 0.0] + ["_n30_total", "_n90_total"]
    frame = pd.concat([frame.drop(columns=counted), frame[counted].fillna(0)], axis=1)
    frame = frame.merge(users, on=KEY, how="left").copy()  # one block per dtype again
    seats = frame["_seats"].astype(float).where(frame["_seats"].astype(float) > 0)
    frame = frame.assign(
        active_users_30d=frame["active_users_30d"].fillna(0),
        active_user_share_30d=frame["active_users_30d"] / seats,
        events_per_seat_30d=frame["_n30_total"] / seats,
        events_per_seat_90d=frame["_n90_total"] / seats,
        key_feature_adoption_30d=frame["_key_users_30d"]
        / frame["active_users_30d"].where(frame["active_users_30d"] > 0),
    )
    features += [
        _f("active_users_30d", "{value} people used the product in the last 30 days"),
        _f("active_user_share_30d", "{value:.0%} of the seats were used in the last 30 days", None),
        _f("events_per_seat_30d", "{value:.1f} product events per seat in the last 30 days", None),
        _f("events_per_seat_90d", "{value:.1f} product events per seat in the last 90 days", None),
        _f("key_event_share_90d", f"{{value:.0%}} of activity used the key features "
           f"({', '.join(keys)}) over 90 days", None),
        _f("key_feature_adoption_30d",
           f"{{value:.0%}} of active users used the key features ({', '.join(keys)})", None),
    ]  # fmt: skip
    helpers = [c for c in frame.columns if c.startswith("_")]
    return frame.drop(columns=helpers), features


def _recency_sql(types: list[str]) -> str:
    """Days since each event type was last used, per snapshot, without joining every event to
    every later as_of: events are bucketed between consecutive as_of dates (a range join with
    the few distinct dates), then each bucket's latest time is carried forward by a window."""
    return f"""
        WITH dates AS (SELECT DISTINCT as_of FROM spine),
        grid AS (
            SELECT as_of,
                   coalesce(lag(as_of) OVER (ORDER BY as_of), CAST('1900-01-01' AS TIMESTAMP))
                     AS previous
            FROM dates),
        daily AS (
            SELECT account_id, event_type, max(ts) AS last_ts
            FROM {TABLE} WHERE event_type IN ({_in(types)})
            GROUP BY account_id, event_type, CAST(ts AS DATE)),
        bucketed AS (
            SELECT d.account_id, d.event_type, g.as_of, max(d.last_ts) AS last_ts
            FROM daily d JOIN grid g ON d.last_ts < g.as_of AND d.last_ts >= g.previous
            GROUP BY d.account_id, d.event_type, g.as_of),
        pairs AS (SELECT DISTINCT account_id, event_type FROM bucketed),
        marks AS (
            SELECT s.account_id, p.event_type, s.as_of, CAST(NULL AS TIMESTAMP) AS last_ts,
                   1 AS is_snapshot
            FROM spine s JOIN pairs p ON p.account_id = s.account_id
            UNION ALL
            SELECT account_id, event_type, as_of, last_ts, 0 AS is_snapshot FROM bucketed),
        carried AS (
            SELECT account_id, event_type, as_of, is_snapshot,
                   max(last_ts) OVER (
                       PARTITION BY account_id, event_type ORDER BY as_of, is_snapshot
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_ts
            FROM marks)
        SELECT account_id, as_of, event_type, {days_between("last_ts", "as_of")} AS days_since
        FROM carried WHERE is_snapshot = 1 AND last_ts IS NOT NULL
        """


def _in(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) if values else "NULL"


def _trend(last_30: pd.Series, last_90: pd.Series) -> pd.Series:
    """Daily rate over the last 30 days over the daily rate of the 60 days before it."""
    before = (last_90 - last_30) / 60.0
    return (last_30 / 30.0) / before.where(before > 0)
