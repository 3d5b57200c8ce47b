"""Usage: per event type (discovered from the data) counts, quantity sums, share, trend and
recency; active users, their share of seats, breadth, events per seat, and adoption of the key
features. Quantity sums exist only when the optional ``quantity`` column has values.

How it stays cheap on tens of millions of events: the spine's window bounds (its distinct
``as_of`` and ``since_<w>d`` dates) cut time into a few dozen segments, and every window of every
snapshot is a run of whole segments. Events are aggregated once per (account, segment), one
column per event type (an equi-join of each event's day to a small calendar, no range join);
windows then add up the few segments they cover (one join per window length), and recency
carries each type's latest time forward from the buckets between consecutive as_of dates. The
per-type columns come out of SQL already wide, so nothing is pivoted in pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.base import (
    Engine,
    FamilyResult,
    Feature,
    days_between,
    discover,
    feature_maker,
    slug,
    spoken,
)
from features.config import FeaturesConfig

FAMILY = "usage"
TABLE = "usage_events"
KEY_EVENTS = "usage.key_event_types"  # where the vocabulary records the key features
KEY = ["account_id", "as_of"]
# small relations this family registers on the engine (see _register_calendar)
DAYS, WINDOWS, AS_OF_SEGMENTS = "usage_calendar_days", "usage_calendar_windows", "usage_as_of"


_f = feature_maker(FAMILY, "usage")


def key_event_types(engine: Engine, cfg: FeaturesConfig) -> list[str]:
    """The product's key features: pinned (scoring), from params, else the most used types."""
    if KEY_EVENTS in cfg.vocabulary:
        return list(cfg.vocabulary[KEY_EVENTS])
    if cfg.usage.key_event_types:
        return list(cfg.usage.key_event_types)
    return discover(engine, TABLE, "event_type", "ts", limit=cfg.usage.top_key_events)


def has_quantity(engine: Engine) -> bool:
    """Whether any event before the spine's last as_of carries a quantity (it is optional).

    Only earlier rows count, so quantities recorded later cannot add columns to a snapshot.

    Args:
        engine: holds the ``spine`` and ``usage_events`` relations.

    Returns:
        True when the quantity sums are worth computing.
    """
    found = engine.query(
        f"SELECT 1 AS found FROM {TABLE} "
        "WHERE quantity IS NOT NULL AND ts < (SELECT max(as_of) FROM spine) LIMIT 1"
    )
    return len(found) > 0


def usage_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the usage family on the ``spine`` and ``usage_events`` relations.

    Args:
        engine: holds the ``spine`` (with its ``since_<d>d`` bounds) and ``usage_events``;
            the family registers three small calendar relations on it.
        cfg: the ``features`` section of params (windows, key event types).

    Returns:
        One row per spine entry and the family's catalog entries.

    Raises:
        ValueError: an as_of date of the spine is not at midnight (events are bucketed by day).
    """
    types = discover(engine, TABLE, "event_type", "ts", vocabulary=cfg.vocabulary)
    keys = key_event_types(engine, cfg)
    key_types = [t for t in types if t.lower() in {k.lower() for k in keys}]
    windows = cfg.windows
    counted = sorted({*windows, 30, 90})
    pinned = cfg.vocabulary.get(f"{TABLE}.quantity")  # scoring: as the model was trained
    with_quantity = bool(pinned) if pinned is not None else has_quantity(engine)
    summed = windows if with_quantity else []
    end, first_bucket = _register_calendar(engine, counted)
    per_type = engine.query(_per_type_sql(types, counted, summed, end, first_bucket))
    users = engine.query(_users_sql(key_types, end))
    frame, features = _assemble(per_type, users, types, key_types, windows, summed)
    vocabulary = {
        f"{TABLE}.event_type": types,
        KEY_EVENTS: keys,
        f"{TABLE}.quantity": ["summed"] if with_quantity else [],
    }
    return FamilyResult(FAMILY, frame, tuple(features), vocabulary)


def _register_calendar(engine: Engine, counted: list[int]) -> tuple[str, int]:
    """Register the segments the spine's window bounds cut time into.

    ``usage_calendar_days``: each day from the earliest bound to the last as_of, with its
    segment and its bucket (the segment of the first as_of after it). ``usage_calendar_windows``:
    per as_of and window (``days``), the segments it covers. ``usage_as_of``: the segment each
    as_of starts.

    Returns:
        The end (the last as_of) as a SQL literal, and the bucket of events before every bound.

    Raises:
        ValueError: a bound is not at midnight.
    """
    columns = ["as_of", *(f"since_{w}d" for w in counted)]
    dates = engine.query(f"SELECT DISTINCT {', '.join(columns)} FROM spine")
    grid = {c: pd.to_datetime(dates[c]).to_numpy("datetime64[ns]") for c in columns}
    stamps = np.concatenate([np.array([], dtype="datetime64[ns]"), *grid.values()])
    odd = stamps[stamps != stamps.astype("datetime64[D]")]
    if len(odd):
        raise ValueError(
            f"usage: as_of {pd.Timestamp(odd[0])} is not at midnight; usage features bucket "
            "events by day"
        )
    # an empty spine has no last as_of: one bound, no days, nothing lies before it
    bounds = np.unique(stamps) if len(stamps) else np.array(["1970-01-01"], "datetime64[ns]")
    last = np.searchsorted(bounds, grid["as_of"])
    starts = np.unique(last)
    days = np.arange(bounds[0], bounds[-1], np.timedelta64(1, "D"))
    segment = np.searchsorted(bounds, days, side="right") - 1
    calendar = pd.DataFrame(
        {
            "day": pd.DatetimeIndex(days).date,
            "seg": segment,
            "bucket": starts[np.searchsorted(starts, segment, side="right")],
        }
    )
    engine.register(DAYS, calendar)
    as_of = dates["as_of"].to_numpy()
    windows = []
    for w in counted:
        first = np.searchsorted(bounds, grid[f"since_{w}d"])
        date = np.repeat(np.arange(len(dates)), last - first)
        seg = [np.arange(lo, hi) for lo, hi in zip(first, last, strict=True)]
        windows.append(
            pd.DataFrame(
                {"as_of": as_of[date], "seg": np.concatenate([[], *seg]).astype(np.int64)}
            ).assign(days=w)
        )
    engine.register(WINDOWS, pd.concat(windows, ignore_index=True))
    engine.register(AS_OF_SEGMENTS, pd.DataFrame({"as_of": as_of, "seg": last.astype(np.int64)}))
    end = f"CAST('{pd.Timestamp(bounds[-1]).isoformat(sep=' ')}' AS TIMESTAMP)"
    return end, int(starts[0]) if len(starts) else 0


def _per_type_sql(
    types: list[str], counted: list[int], summed: list[int], end: str, first_bucket: int
) -> str:
    """One row per spine entry: per type (``_<i>`` = position in ``types``) window counts
    ``n<w>_<i>``, quantity sums ``q<w>_<i>`` and days since last use ``d_<i>``; events of any
    type in the last 30 days ``_n30_any``; seats ``_seats``.

    Events are aggregated once per (account, segment). A window adds up its segments (one join
    per window length, rather than a filter per type and window: each filtered aggregate is a
    pass over its input). Recency takes each type's latest time per bucket of segments between
    two as_of dates and carries it forward to the snapshots by a running max.
    """
    indices = range(len(types))
    per_segment, summing, latest, carried, since = [], [], [], [], []
    for i, t in enumerate(types):
        is_type = f"event_type = {_literal(t)}"
        per_segment.append(f"CAST(count(*) FILTER (WHERE {is_type}) AS DOUBLE) AS n_{i}")
        summing.append(f"sum(g.n_{i}) AS n_{i}")
        if summed:
            per_segment.append(f"sum(quantity) FILTER (WHERE {is_type}) AS q_{i}")
            summing.append(f"sum(g.q_{i}) AS q_{i}")
        latest.append(f"max(ts) FILTER (WHERE {is_type}) AS l_{i}")
        carried.append(
            f"max(l_{i}) OVER (PARTITION BY account_id ORDER BY bucket, is_snapshot "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS l_{i}"
        )
        since.append(f"{days_between(f'c.l_{i}', 'c.as_of')} AS d_{i}")
    no_lasts = [", ".join(f"CAST(NULL AS TIMESTAMP) AS l_{i}" for i in indices)] if types else []
    wide = [f"w{w}.n_{i} AS n{w}_{i}" for i in indices for w in counted]
    wide += [f"w{w}.q_{i} AS q{w}_{i}" for i in indices for w in summed]
    joins = " ".join(
        f"LEFT JOIN windowed w{w} ON w{w}.account_id = c.account_id AND w{w}.as_of = c.as_of "
        f"AND w{w}.days = {w}"
        for w in counted
    )
    # read twice rather than as a CTE, which would be materialized: every event in memory
    events = f"{TABLE} e LEFT JOIN {DAYS} d ON d.day = CAST(e.ts AS DATE) WHERE e.ts < {end}"
    return f"""
        WITH segments AS (
            SELECT e.account_id, coalesce(d.seg, -1) AS seg, CAST(count(*) AS DOUBLE) AS n_any
                   {_lead(per_segment)}
            FROM {events} GROUP BY e.account_id, coalesce(d.seg, -1)),
        windowed AS (
            SELECT g.account_id, m.as_of, m.days, sum(g.n_any) AS n_any{_lead(summing)}
            FROM segments g JOIN {WINDOWS} m ON m.seg = g.seg
            GROUP BY g.account_id, m.as_of, m.days),
        marks AS (
            SELECT e.account_id, coalesce(d.bucket, {first_bucket}) AS bucket, 0 AS is_snapshot,
                   CAST(NULL AS TIMESTAMP) AS as_of, CAST(NULL AS DOUBLE) AS seats{_lead(latest)}
            FROM {events} GROUP BY e.account_id, coalesce(d.bucket, {first_bucket})
            UNION ALL
            SELECT s.account_id, a.seg AS bucket, 1 AS is_snapshot, s.as_of,
                   CAST(s.seats AS DOUBLE) AS seats{_lead(no_lasts)}
            FROM spine s JOIN {AS_OF_SEGMENTS} a ON a.as_of = s.as_of),
        carried AS (
            SELECT account_id, as_of, is_snapshot, seats{_lead(carried)} FROM marks)
        SELECT c.account_id, c.as_of, c.seats AS _seats, w30.n_any AS _n30_any
               {_lead(since)}{_lead(wide)}
        FROM carried c {joins}
        WHERE c.is_snapshot = 1
        """


def _users_sql(key_types: list[str], end: str) -> str:
    """Distinct people over the last 30 days per snapshot, and those who used a key feature."""
    return f"""
        WITH active AS (
            SELECT DISTINCT e.account_id, d.seg, e.user_id,
                   CASE WHEN e.event_type IN ({_in(key_types)}) THEN 1 ELSE 0 END AS is_key
            FROM {TABLE} e JOIN {DAYS} d ON d.day = CAST(e.ts AS DATE)
            WHERE e.user_id IS NOT NULL AND e.ts < {end})
        SELECT a.account_id, m.as_of, count(DISTINCT a.user_id) AS active_users_30d,
               count(DISTINCT a.user_id) FILTER (WHERE a.is_key = 1) AS _key_users_30d
        FROM active a JOIN {WINDOWS} m ON m.seg = a.seg AND m.days = 30
        GROUP BY a.account_id, m.as_of
        """


def _catalog(
    types: list[str], keys: list[str], windows: list[int], summed: list[int]
) -> list[Feature]:
    """The family's features, in the order of its columns."""
    features: list[Feature] = []
    for w in windows:
        features.append(_f(f"events_{w}d", f"{{value}} product event{{s}} in the last {w} days"))
        if w in summed:
            features.append(
                _f(f"quantity_{w}d", f"{{value:,.0f}} unit{{s}} used in the last {w} days")
            )
    features += [
        _f(
            "usage_trend_30v60",
            "usage over the last 30 days is {value:.0%} of the 60 before",
            None,
            blank="no usage in the 60 days before the last 30",
        ),
        _f(
            "days_since_last_use",
            "{value:.0f} day{s} since anyone used the product",
            None,
            blank="nobody has used the product yet",
        ),
        _f("features_used_30d", "{value} different product feature{s} used in the last 30 days"),
    ]
    for t in types:
        col, said = slug(t), spoken(t)
        for w in windows:
            features.append(_f(f"{col}_{w}d", f"{{value}} {said} event{{s}} in the last {w} days"))
            if w in summed:
                features.append(
                    _f(
                        f"{col}_qty_{w}d",
                        f"{{value:,.0f}} unit{{s}} of {said} in the last {w} days",
                    )
                )
        features += [
            _f(f"{col}_share_90d", f"{said} was {{value:.0%}} of activity over 90 days", None,
               blank="no activity in the last 90 days"),
            _f(f"{col}_trend_30v60", f"{said} over the last 30 days is {{value:.0%}} of the 60 "
               "before", None, blank=f"no {said} in the 60 days before the last 30"),
            _f(f"days_since_{col}", f"{{value:.0f}} day{{s}} since {said} was last used", None,
               blank=f"{said} never used"),
        ]  # fmt: skip
    features += [
        _f("active_users_30d", "{value} people used the product in the last 30 days"),
        _f("active_user_share_30d", "{value:.0%} of the seats were used in the last 30 days", None),
        _f("events_per_seat_30d", "{value:.1f} product events per seat in the last 30 days", None),
        _f("events_per_seat_90d", "{value:.1f} product events per seat in the last 90 days", None),
        _f("key_event_share_90d", f"{{value:.0%}} of activity used the key features "
           f"({', '.join(map(spoken, keys))}) over 90 days", None,
           blank="no activity in the last 90 days"),
        _f("key_feature_adoption_30d",
           f"{{value:.0%}} of active users used the key features ({', '.join(map(spoken, keys))})",
           None, blank="nobody used the product in the last 30 days"),
    ]  # fmt: skip
    return features


def _assemble(
    per_type: pd.DataFrame,
    users: pd.DataFrame,
    types: list[str],
    keys: list[str],
    windows: list[int],
    summed: list[int],
) -> tuple[pd.DataFrame, list[Feature]]:
    """Derive totals, shares and trends from the wide per-type figures and name the columns.

    Every feature is written straight into one preallocated block (snapshots x features), so
    the frame is built without copying its columns again.
    """
    features = _catalog(types, keys, windows, summed)
    position = {f.name: j for j, f in enumerate(features)}
    rows = len(per_type)
    values = np.full((rows, len(features)), np.nan, order="F")

    def put(name: str, data: np.ndarray) -> np.ndarray:
        values[:, position[name]] = data
        return values[:, position[name]]

    def counts(column: str, name: str | None) -> np.ndarray:
        """A per-type figure with 0 for no events, into its output column if it has one."""
        target = values[:, position[name]] if name is not None else np.empty(rows)
        np.copyto(target, per_type[column].to_numpy(float))
        target[np.isnan(target)] = 0.0
        return target

    totals = {w: np.zeros(rows) for w in sorted({*windows, 30, 90})}
    per_type_counts: dict[int, list[np.ndarray]] = {w: [] for w in totals}
    quantity = {w: np.zeros(rows) for w in summed}
    last_use = np.full(rows, np.nan)
    used_30d = np.zeros(rows)
    for i, t in enumerate(types):
        col = slug(t)
        for w in totals:
            n = counts(f"n{w}_{i}", f"{col}_{w}d" if w in windows else None)
            per_type_counts[w].append(n)
            totals[w] += n
        for w in summed:
            quantity[w] += counts(f"q{w}_{i}", f"{col}_qty_{w}d")
        np.fmin(last_use, put(f"days_since_{col}", per_type[f"d_{i}"].to_numpy(float)), last_use)
        used_30d += per_type_counts[30][i] > 0
    for i, t in enumerate(types):
        col = slug(t)
        put(f"{col}_share_90d", _ratio(per_type_counts[90][i], totals[90]))
        put(f"{col}_trend_30v60", _trend(per_type_counts[30][i], per_type_counts[90][i]))
    for w in windows:
        put(f"events_{w}d", totals[w])
        if w in summed:
            put(f"quantity_{w}d", quantity[w])
    put("usage_trend_30v60", _trend(totals[30], totals[90]))
    put("days_since_last_use", last_use)
    put("features_used_30d", used_30d)
    key_n90 = sum((per_type_counts[90][types.index(k)] for k in keys), np.zeros(rows))
    put("key_event_share_90d", _ratio(key_n90, totals[90]))
    people = per_type[KEY].merge(users, on=KEY, how="left")
    active = put("active_users_30d", people["active_users_30d"].fillna(0).to_numpy(float))
    # a seated account with no use has used 0 % of its seats: the strongest signal, not unknown
    seats = per_type["_seats"].to_numpy(float)
    seats = np.where(seats > 0, seats, np.nan)
    put("active_user_share_30d", active / seats)
    put("events_per_seat_30d", totals[30] / seats)
    put("events_per_seat_90d", totals[90] / seats)
    put("key_feature_adoption_30d", _ratio(people["_key_users_30d"].to_numpy(float), active))
    frame = pd.DataFrame(values, columns=[f.name for f in features], copy=False)
    return pd.concat([per_type[KEY], frame], axis=1), features


def _lead(items: list[str]) -> str:
    """``, a, b`` for a non-empty list of select items (nothing for an empty one)."""
    return "".join(f", {item}" for item in items)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(values: list[str]) -> str:
    return ", ".join(_literal(v) for v in values) if values else "NULL"


def _ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """``part / whole`` where ``whole`` is positive, else NaN."""
    return np.divide(part, whole, out=np.full(len(whole), np.nan), where=whole > 0)


def _trend(last_30: np.ndarray, last_90: np.ndarray) -> np.ndarray:
    """Daily rate over the last 30 days over the daily rate of the 60 days before it."""
    return _ratio(last_30 / 30.0, (last_90 - last_30) / 60.0)
