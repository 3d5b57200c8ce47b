"""Raw tables of the data contract, built from the latent history (chunked by account)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import expit

from pipeline.config import SyntheticConfig
from pipeline.synthetic.simulation import SOURCES
from pipeline.synthetic.world import (
    CSM_CHANGE_COST,
    DISCOUNT_SHARE,
    EVENT_BASE_WEIGHT,
    EVENT_MEAN_QUANTITY,
    EVENT_TYPES,
    INDUSTRIES,
    INTERVENTION_COST,
    INTERVENTIONS,
    KEY_EVENT_TYPES,
    PERSONAS,
    PRIORITIES,
    REASONS,
    REGIONS,
    SEASON,
    SENTIMENT_NOTES,
    WEEKDAY_WEIGHT,
    Accounts,
    Calendar,
    History,
    add_months,
    csm_name,
)

# ---- tables ------------------------------------------------------------------------------------


@dataclass
class Context:
    """Everything the table builders read: the calendar, accounts, latent history and ids."""

    cfg: SyntheticConfig
    cal: Calendar
    acc: Accounts
    hist: History
    account_ids: np.ndarray
    account_ids_arrow: pa.Array
    contact_offset: np.ndarray  # first contact index of each account
    contact_count: np.ndarray
    contact_ids: np.ndarray


def unit_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every unit in a matrix of counts."""
    flat = counts.ravel()
    cell = np.repeat(np.arange(flat.size), flat)
    return cell // counts.shape[1], cell % counts.shape[1]


def days_in(
    cal: Calendar, month: np.ndarray, rng: np.random.Generator, weekdays: bool = True
) -> np.ndarray:
    """A day in each month; business days are far likelier than weekends when ``weekdays``."""
    first = cal.month_start(month)
    span = cal.month_days(month)
    day = first + (rng.random(month.size) * span).astype(int)
    if weekdays:
        for _ in range(4):
            weekday = (day.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thu
            redo = rng.random(month.size) > WEEKDAY_WEIGHT[weekday] / WEEKDAY_WEIGHT.max()
            if not redo.any():
                break
            day = np.where(redo, first + (rng.random(month.size) * span).astype(int), day)
    return day


def stamp(day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Timestamps (µs) on the given days, around business hours UTC."""
    seconds = np.clip(rng.normal(14.5 * 3600, 3.2 * 3600, day.size), 0, 86_399).astype(int)
    return day.astype("datetime64[us]") + seconds.astype("timedelta64[s]")


def _in_life(ctx: Context, a: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Rows that fall inside the event history and the account's life as a customer."""
    return (
        (day >= ctx.cal.start)
        & (day < ctx.cal.end)
        & (day > ctx.acc.created_day[a])  # from the day after the account was created
        & (day < ctx.hist.last_day[a])
    )


def ts_array(values: np.ndarray) -> pa.Array:
    """Timestamps as an Arrow UTC timestamp array (µs), the type the contract reads."""
    return pa.array(values.astype("datetime64[us]"), pa.timestamp("us")).cast(
        pa.timestamp("us", tz="UTC")
    )


def account_id_array(ctx: Context, account: np.ndarray) -> pa.Array:
    """The account ids (strings) of the given account indices."""
    return pc.take(ctx.account_ids_arrow, pa.array(account))


def _sequence_ids(ids: pa.Array, account: np.ndarray, infix: str) -> pa.Array:
    """Ids unique within the world: the account id, an infix and a sequence per account.

    ``account`` must be sorted so that each account's rows are contiguous.
    """
    first = np.searchsorted(account, account)
    seq = pa.array(np.arange(account.size) - first + 1).cast(pa.string())
    return pc.binary_join_element_wise(ids, seq, infix)


def _history_months(ctx: Context) -> slice:
    """The months of the event history, as a slice of the latent history's month axis."""
    return slice(ctx.cal.start_month, ctx.cal.end_month + 1)


def usage_table(ctx: Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Product events of the accounts in ``chunk``: volume grows with seats and health, key
    features with adoption; a few power users per account do most of it."""
    cal, acc, hist = ctx.cal, ctx.acc, ctx.hist
    months = _history_months(ctx)
    h = np.nan_to_num(hist.health[chunk, months], nan=0.0)
    seats = hist.seats[chunk, months]
    moy = (cal.first_month + np.arange(cal.months)[months]).astype(int) % 12
    rate = ctx.cfg.usage_sessions_per_seat * seats**0.8 * np.exp(0.45 * h) * SEASON[moy]
    counts = rng.poisson(np.where(hist.alive[chunk, months], rate, 0.0))
    r, c = unit_rows(counts)
    a = chunk[r]
    month = c + months.start
    hr = h[r, c]
    day = days_in(cal, month, rng)
    keep = _in_life(ctx, a, day)
    a, month, hr, day, seats_r = a[keep], month[keep], hr[keep], day[keep], seats[r, c][keep]
    # key features are used in proportion to adoption; the rest is volume
    key = np.isin(np.array(EVENT_TYPES), KEY_EVENT_TYPES)
    lift = 2 * expit(acc.adoption[a] + 0.8 * hr - 0.3)
    weight = np.where(key[None, :], EVENT_BASE_WEIGHT * lift[:, None], EVENT_BASE_WEIGHT)
    cum = (weight / weight.sum(axis=1, keepdims=True)).cumsum(axis=1)
    etype = np.minimum((rng.random(a.size)[:, None] > cum).sum(axis=1), len(EVENT_TYPES) - 1)
    pool = np.maximum(1, np.round(seats_r * expit(-0.2 + 1.2 * hr))).astype(int)
    user = (pool * rng.random(a.size) ** 2).astype(int)  # a few power users do most of it
    quantity = 1 + rng.poisson(EVENT_MEAN_QUANTITY[etype] * np.exp(0.2 * hr))
    ts = stamp(day, rng)
    order = np.lexsort((ts.astype(np.int64), a))
    ids = account_id_array(ctx, a[order])
    user_ids = pc.binary_join_element_wise(ids, pa.array(user[order] + 1).cast(pa.string()), "-u")
    return pa.table(
        {
            "account_id": ids,
            "ts": ts_array(ts[order]),
            "event_type": pa.array(np.array(EVENT_TYPES)[etype[order]]),
            "user_id": user_ids,
            "quantity": pa.array(quantity[order].astype(np.int64)),
        }
    )


def _pick_contact(ctx: Context, a: np.ndarray, rng: np.random.Generator) -> pa.Array:
    count = ctx.contact_count[a]
    pick = ctx.contact_offset[a] + (rng.random(a.size) * np.maximum(count, 1)).astype(int)
    values = pa.array(ctx.contact_ids).take(pa.array(np.minimum(pick, len(ctx.contact_ids) - 1)))
    return pc.if_else(pa.array(count > 0), values, pa.scalar(None, pa.string()))


def _monthly(
    ctx: Context, chunk: np.ndarray, rate: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows from a Poisson rate per (account, history month): account, month, health, day."""
    months = _history_months(ctx)
    counts = rng.poisson(np.where(ctx.hist.alive[chunk, months], rate, 0.0))
    r, c = unit_rows(counts)
    a, month = chunk[r], c + months.start
    h = np.nan_to_num(ctx.hist.health[a, month], nan=0.0)
    day = days_in(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    return a[keep], month[keep], h[keep], day[keep]


def _chunk_health(ctx: Context, chunk: np.ndarray) -> np.ndarray:
    """Latent health of the accounts in ``chunk`` per history month (0 before or after life)."""
    return np.nan_to_num(ctx.hist.health[chunk, _history_months(ctx)], nan=0.0)


def tickets_table(ctx: Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Support tickets: more, and more urgent, as health falls or the budget is stressed;
    slower to close when unhealthy, a few still open, CSAT on some closed ones."""
    h = _chunk_health(ctx, chunk)
    seats = ctx.hist.seats[chunk, _history_months(ctx)]
    budget = ctx.hist.budget[chunk, _history_months(ctx)]
    rate = 0.12 * np.sqrt(np.maximum(seats, 1)) * np.exp(-0.45 * h) + 0.1 * budget
    a, _month, h, day = _monthly(ctx, chunk, rate, rng)
    tilt = np.exp(-0.5 * h)[:, None] * np.array([0.0, 0.0, 1.0, 1.0])
    weight = np.array([0.3, 0.45, 0.18, 0.07]) * np.where(tilt > 0, tilt, 1.0)
    cum = (weight / weight.sum(axis=1, keepdims=True)).cumsum(axis=1)
    priority = np.minimum((rng.random(a.size)[:, None] > cum).sum(axis=1), 3)
    opened = stamp(day, rng)
    median_hours = np.array([96.0, 48.0, 24.0, 8.0])[priority] * np.exp(-0.25 * h)
    hours = median_hours * np.exp(rng.normal(0, 0.8, a.size))
    closed = opened + (hours * 3600).astype("timedelta64[s]")
    still_open = (rng.random(a.size) < 0.02) | (closed >= ctx.cal.end.astype("datetime64[us]"))
    answered = ~still_open & (rng.random(a.size) < 0.45)
    csat = np.clip(np.round(3.9 + 0.6 * h - 0.15 * priority + rng.normal(0, 0.8, a.size)), 1, 5)
    order = np.lexsort((opened.astype(np.int64), a))
    ids = account_id_array(ctx, a[order])
    return pa.table(
        {
            "ticket_id": _sequence_ids(ids, a[order], "-t"),
            "account_id": ids,
            "opened_at": ts_array(opened[order]),
            "closed_at": pa.array(
                closed[order].astype("datetime64[us]"), pa.timestamp("us"), mask=still_open[order]
            ).cast(pa.timestamp("us", tz="UTC")),
            "priority": pa.array(np.array(PRIORITIES)[priority[order]]),
            "csat": pa.array(csat[order], mask=~answered[order]),
        }
    )


def surveys_table(ctx: Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Quarterly surveys scored 0–10 (more recipients at bigger accounts); healthier accounts
    answer more often and score higher."""
    months = _history_months(ctx)
    month_index = np.arange(ctx.cal.months)[months]
    quarterly = (month_index[None, :] - ctx.acc.created_month[chunk, None]) % 3 == 2
    recipients = 1 + (ctx.acc.size[chunk] >= 0.5) + (ctx.acc.size[chunk] >= 1.0)
    counts = np.where(ctx.hist.alive[chunk, months] & quarterly, recipients[:, None], 0)
    r, c = unit_rows(counts)
    a, month = chunk[r], c + months.start
    h = np.nan_to_num(ctx.hist.health[a, month], nan=0.0)
    day = days_in(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    a, h, day = a[keep], h[keep], day[keep]
    sent = stamp(day, rng)
    delay = (rng.exponential(4.0, a.size) * 86_400).astype("timedelta64[s]")
    responded_at = sent + delay
    answered = (rng.random(a.size) < expit(0.1 + 1.1 * h)) & (
        responded_at < ctx.cal.end.astype("datetime64[us]")
    )
    score = np.clip(np.round(7.2 + 1.7 * h + rng.normal(0, 1.6, a.size)), 0, 10)
    order = np.lexsort((sent.astype(np.int64), a))
    return pa.table(
        {
            "account_id": account_id_array(ctx, a[order]),
            "sent_at": ts_array(sent[order]),
            "contact_id": _pick_contact(ctx, a[order], rng),
            "responded_at": pa.array(
                responded_at[order].astype("datetime64[us]"),
                pa.timestamp("us"),
                mask=~answered[order],
            ).cast(pa.timestamp("us", tz="UTC")),
            "score": pa.array(score[order], mask=~answered[order]),
        }
    )


def activities_table(ctx: Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """CSM touches (emails, calls, meetings, QBRs, EBRs) scaled by account size; whether an
    outbound email or call was answered depends on health."""
    h = _chunk_health(ctx, chunk)
    size = ctx.acc.size[chunk, None]
    months = _history_months(ctx)
    month_index = np.arange(ctx.cal.months)[months]
    quarter = (month_index[None, :] - ctx.acc.created_month[chunk, None]) % 3 == 1
    half = (month_index[None, :] - ctx.acc.created_month[chunk, None]) % 6 == 1
    kinds = (
        # each kind: its type, its direction, its monthly rate, and the chance it is answered
        # where an answer is expected at all
        ("email", "outbound", 2.0 + 3.0 * size + 0 * h, expit(0.3 + 1.2 * h)),
        ("email", "inbound", (0.8 + 1.5 * size) * np.exp(0.3 * h), None),
        ("call", "outbound", 0.5 + 1.0 * size + 0 * h, expit(0.2 + 1.0 * h)),
        ("meeting", "outbound", (0.4 + 1.2 * size) * expit(1.0 + h), None),
        ("qbr", "outbound", np.where(quarter & (size >= 0.5), expit(0.8 + 1.2 * h), 0.0), None),
        ("ebr", "outbound", np.where(half & (size >= 1.0), expit(0.5 + h), 0.0), None),
    )
    parts = []
    for kind, direction, rate, answer in kinds:
        a, month, _h, day = _monthly(ctx, chunk, np.broadcast_to(rate, h.shape), rng)
        if answer is not None:
            p = np.broadcast_to(answer, h.shape)[np.searchsorted(chunk, a), month - months.start]
            responded = pa.array(rng.random(a.size) < p)
        else:
            responded = pa.nulls(a.size, pa.bool_())
        parts.append((a, stamp(day, rng), kind, direction, responded))
    a = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ts.astype(np.int64), a))
    table = pa.table(
        {
            "account_id": account_id_array(ctx, a),
            "ts": ts_array(ts),
            "type": pa.array(np.concatenate([np.full(p[0].size, p[2]) for p in parts])),
            "direction": pa.array(np.concatenate([np.full(p[0].size, p[3]) for p in parts])),
            "contact_id": _pick_contact(ctx, a, rng),
            "responded": pa.concat_arrays([p[4] for p in parts]),
        }
    )
    return table.take(pa.array(order))


def sentiment_table(ctx: Context, chunk: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """CSM sentiment ratings 1–5 in most months, following health two months late; some noted."""
    months = _history_months(ctx)
    updated = rng.random((chunk.size, months.stop - months.start)) < 0.8
    counts = (ctx.hist.alive[chunk, months] & updated).astype(int)
    r, c = unit_rows(counts)
    a, month = chunk[r], c + months.start
    # CSMs see reality late: the rating follows health two months back
    lagged = ctx.hist.health[a, np.maximum(month - 2, 0)]
    lagged = np.where(np.isnan(lagged), ctx.hist.health[a, month], lagged)
    rating = np.clip(np.round(3 + 1.3 * np.nan_to_num(lagged) + rng.normal(0, 0.7, a.size)), 1, 5)
    day = days_in(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    a, rating, day = a[keep], rating[keep].astype(int), day[keep]
    note_pick = rng.integers(0, 3, a.size)
    has_note = rng.random(a.size) < 0.3
    notes = np.array([SENTIMENT_NOTES[int(r)][k] for r, k in zip(rating, note_pick, strict=True)])
    ts = stamp(day, rng)
    order = np.lexsort((ts.astype(np.int64), a))
    return pa.table(
        {
            "account_id": account_id_array(ctx, a[order]),
            "ts": ts_array(ts[order]),
            "rating": pa.array(rating[order].astype(np.int64)),
            "note": pa.array(notes[order], mask=~has_note[order]),
        }
    )


def accounts_table(ctx: Context) -> pa.Table:
    """One row per account created before the data's end: name, segment, industry, region,
    final CSM, and a tier by ARR within the segment (top third is ``tier_1``)."""
    acc = ctx.acc
    segments = np.array(list(ctx.cfg.segments))
    tier = np.full(acc.n, "tier_3", dtype=object)
    for k in range(segments.size):
        idx = np.flatnonzero(acc.segment == k)
        if idx.size:
            rank = acc.arr0[idx].argsort().argsort() / max(idx.size - 1, 1)
            tier[idx] = np.where(
                rank >= 2 / 3, "tier_1", np.where(rank >= 1 / 3, "tier_2", "tier_3")
            )
    return pa.table(
        {
            "account_id": ctx.account_ids_arrow,
            "name": pa.array(acc.name),
            "segment": pa.array(segments[acc.segment]),
            "created_at": ts_array(stamp(acc.created_day, np.random.default_rng(ctx.cfg.seed))),
            "industry": pa.array(np.array(INDUSTRIES)[acc.industry]),
            "region": pa.array(np.array(REGIONS)[acc.region]),
            "csm_id": pa.array([f"csm_{c:03d}" for c in ctx.hist.csm_final]),
            "csm_name": pa.array([csm_name(int(c)) for c in ctx.hist.csm_final]),
            "tier": pa.array(tier.astype(str)),
        }
    ).filter(pa.array(acc.created_day < ctx.cal.end))


def contract_frame(ctx: Context) -> pd.DataFrame:
    """All simulated contracts in id order; ``in_data`` marks those the CRM holds at the end."""
    con = ctx.hist.contracts
    frame = pd.DataFrame(
        {
            "index": np.arange(con["account"].size),
            "account": con["account"],
            "start": con["start"],
            "end": con["end"],
            "arr": con["arr"],
            "seats": con["seats"].astype(np.int64),
            "renewed": con["renewed"],
            "renewal_arr": con["renewal_arr"],
            "decided": con["decided"],
        }
    ).sort_values(["account", "start"], kind="stable")
    frame["seq"] = frame.groupby("account").cumcount() + 1
    frame["contract_id"] = ctx.account_ids[frame["account"]] + "-k" + frame["seq"].astype(str)
    # an account created after the data's end (a stepped world's future) is not in the CRM yet
    created = ctx.acc.created_day[frame["account"].to_numpy()] < ctx.cal.end
    frame["in_data"] = (frame["start"] <= ctx.cal.end) & created
    frame["known"] = frame["decided"] & (frame["end"] < ctx.cal.end)
    return frame


def contracts_table(frame: pd.DataFrame, ctx: Context) -> pa.Table:
    """The contracts the CRM holds (from :func:`contract_frame`); outcome columns are empty
    until the renewal is decided and the contract has ended."""
    rows = frame[frame["in_data"]]
    known = rows["known"].to_numpy()
    return pa.table(
        {
            "contract_id": pa.array(rows["contract_id"].to_numpy()),
            "account_id": account_id_array(ctx, rows["account"].to_numpy()),
            "start_date": pa.array(rows["start"].to_numpy().astype("datetime64[D]"), pa.date32()),
            "end_date": pa.array(rows["end"].to_numpy().astype("datetime64[D]"), pa.date32()),
            "arr": pa.array(rows["arr"].to_numpy(dtype=float)),
            "seats": pa.array(rows["seats"].to_numpy()),
            "renewed": pa.array(rows["renewed"].to_numpy(), mask=~known),
            "renewal_arr": pa.array(rows["renewal_arr"].to_numpy(dtype=float), mask=~known),
        }
    )


def make_contacts(ctx: Context, rng: np.random.Generator) -> pd.DataFrame:
    """Contacts by persona; champions who leave are replaced months later (the CRM lags)."""
    acc, cal = ctx.acc, ctx.cal
    size = acc.size
    per_persona = np.column_stack(
        [
            np.ones(acc.n, dtype=int),
            1 + ((size >= 1.0) & (rng.random(acc.n) < 0.5)),
            np.ones(acc.n, dtype=int),
            rng.poisson(1 + 2 * size),
            rng.poisson(1 + 4 * size),
            rng.poisson(0.5, acc.n),
        ]
    )
    a, persona = unit_rows(per_persona)
    joined = acc.created_day[a] + np.where(
        persona <= 2, rng.integers(0, 45, a.size), rng.integers(0, 365, a.size)
    )
    tenure = (rng.exponential(50.0, a.size) * 30.4).astype(int)
    left = joined + tenure
    left_known = (persona != 1) & (rng.random(a.size) < 0.85)
    initial = pd.DataFrame(
        {"account": a, "persona": persona, "joined": joined, "left": left, "left_known": left_known}
    )
    initial["order"] = initial.groupby("account").cumcount()

    ev = ctx.hist.champion_events
    events = pd.DataFrame(
        {"account": ev["account"], "day": ev["day"], "recorded": ev["recorded"], "back": ev["back"]}
    ).sort_values(["account", "day"], kind="stable")
    events["j"] = events.groupby("account").cumcount()
    replacements = pd.DataFrame(
        {
            "account": events["account"].to_numpy(),
            "persona": 1,
            "joined": cal.month_start(events["back"].to_numpy()) + rng.integers(0, 28, len(events)),
            "left": np.datetime64("NaT", "D"),
            "left_known": False,
            "order": 10_000 + events["j"].to_numpy(),
        }
    )
    contacts = pd.concat([initial, replacements], ignore_index=True)
    # the j-th departure is of the first champion (j = 0) or of the (j−1)-th replacement
    first_champion = initial[initial["persona"] == 1].groupby("account")["order"].min()
    leaver_order = np.where(
        events["j"].to_numpy() == 0,
        first_champion.reindex(events["account"]).to_numpy(),
        10_000 + events["j"].to_numpy() - 1,
    )
    key = pd.MultiIndex.from_arrays([events["account"].to_numpy(), leaver_order])
    departures = pd.DataFrame(
        {"day": events["day"].to_numpy(), "recorded": events["recorded"].to_numpy()}, index=key
    )
    at = pd.MultiIndex.from_arrays([contacts["account"].to_numpy(), contacts["order"].to_numpy()])
    hit = departures.reindex(at)
    is_champion_row = contacts["persona"].to_numpy() == 1
    left = np.where(
        is_champion_row, hit["day"].to_numpy().astype("datetime64[D]"), contacts["left"].to_numpy()
    )
    left_known = np.where(
        is_champion_row, hit["recorded"].fillna(False).to_numpy(dtype=bool), contacts["left_known"]
    )
    # a departure drawn in the month a contact joined still comes after the joining day
    joined = contacts["joined"].to_numpy().astype("datetime64[D]")
    left = np.maximum(left.astype("datetime64[D]"), joined + np.timedelta64(1, "D"))
    contacts = contacts.assign(left=left, left_known=left_known)
    contacts = contacts[contacts["joined"].to_numpy() < cal.end]
    contacts = contacts.sort_values(["account", "joined", "persona", "order"], kind="stable")
    contacts["contact_id"] = (
        ctx.account_ids[contacts["account"]]
        + "-c"
        + (contacts.groupby("account").cumcount() + 1).astype(str)
    )
    visible = contacts["left_known"].to_numpy() & (contacts["left"].to_numpy() < cal.end)
    return contacts.assign(left_visible=visible).reset_index(drop=True)


def contacts_table(contacts: pd.DataFrame, ctx: Context, rng: np.random.Generator) -> pa.Table:
    """The contacts of :func:`make_contacts` as the CRM holds them: ``left_at`` only where
    the departure was recorded before the data ends."""
    return pa.table(
        {
            "contact_id": pa.array(contacts["contact_id"].to_numpy()),
            "account_id": account_id_array(ctx, contacts["account"].to_numpy()),
            "persona": pa.array(np.array(PERSONAS)[contacts["persona"].to_numpy()]),
            "created_at": ts_array(stamp(contacts["joined"].to_numpy(), rng)),
            "left_at": pa.array(
                stamp(contacts["left"].to_numpy().astype("datetime64[D]"), rng),
                pa.timestamp("us"),
                mask=~contacts["left_visible"].to_numpy(),
            ).cast(pa.timestamp("us", tz="UTC")),
        }
    )


def invoices_table(frame: pd.DataFrame, ctx: Context, rng: np.random.Generator) -> pa.Table:
    """Invoices per contract period (monthly, quarterly for big accounts, else yearly); paid
    later under budget stress and very low health, unpaid where payment falls after the end."""
    rows = frame[frame["in_data"]]
    term = (
        rows["end"].to_numpy().astype("datetime64[M]")
        - rows["start"].to_numpy().astype("datetime64[M]")
    ).astype(int)
    account = rows["account"].to_numpy()
    period = np.where(term <= 1, 1, np.where(ctx.acc.size[account] >= 1.0, 3, 12))
    period = np.minimum(period, np.maximum(term, 1))
    per_contract = np.maximum(term // period, 1)
    contract = np.repeat(np.arange(len(rows)), per_contract)
    k = np.arange(contract.size) - np.searchsorted(contract, contract)
    a = account[contract]
    issued = add_months(rows["start"].to_numpy()[contract], k * period[contract])
    keep = issued < ctx.cal.end
    contract, a, issued = contract[keep], a[keep], issued[keep]
    due = issued + 30
    due_month = np.minimum(ctx.cal.month_of(due), ctx.cal.months - 1)
    stress = ctx.hist.budget[a, due_month]
    h = np.nan_to_num(ctx.hist.health[a, due_month], nan=0.0)
    delay = np.round(rng.normal(-3, 6, a.size) + 40 * stress + 15 * (h < -0.8)).astype(int)
    paid = due + np.maximum(delay, -25)
    unpaid = paid >= ctx.cal.end
    amount = np.round(rows["arr"].to_numpy()[contract] * period[contract] / 12, 2)
    return pa.table(
        {
            "account_id": account_id_array(ctx, a),
            "due_date": pa.array(due.astype("datetime64[D]"), pa.date32()),
            "amount": pa.array(amount),
            "paid_date": pa.array(paid.astype("datetime64[D]"), pa.date32(), mask=unpaid),
        }
    )


def opportunities_table(frame: pd.DataFrame, ctx: Context, rng: np.random.Generator) -> pa.Table:
    """Upsell and cross-sell opportunities (likelier with health and adoption), plus one
    renewal opportunity 90 days before the end of each contract of 300 days or more."""
    acc, cal, hist = ctx.acc, ctx.cal, ctx.hist
    chunk = np.arange(acc.n)
    h = _chunk_health(ctx, chunk)
    upsell_rate = 0.03 * expit(2 * h + acc.adoption[:, None]) * (1 + acc.size[:, None])
    parts = []
    for kind, rate, share in (
        ("upsell", upsell_rate, (0.1, 0.4)),
        ("cross-sell", upsell_rate / 2, (0.05, 0.2)),
    ):
        a, month, hr, day = _monthly(ctx, chunk, rate, rng)
        created = stamp(day, rng)
        won = rng.random(a.size) < expit(0.3 + hr)
        closed = created + (rng.integers(20, 100, a.size) * 86_400).astype("timedelta64[s]")
        arr = hist.seats[a, month] * acc.seat_price[a]
        amount = np.round(arr * rng.uniform(*share, a.size), -1)
        parts.append(pd.DataFrame({"a": a, "created": created, "type": kind, "amount": amount,
                                   "closed": closed, "won": won}))  # fmt: skip
    rows = frame[frame["in_data"] & (frame["end"] - frame["start"] >= np.timedelta64(300, "D"))]
    created = rows["end"].to_numpy().astype("datetime64[D]") - 90
    ok = (created < cal.end) & (created >= rows["start"].to_numpy())
    rows = rows[ok]
    parts.append(
        pd.DataFrame(
            {
                "a": rows["account"].to_numpy(),
                "created": stamp(created[ok], rng),
                "type": "renewal",
                "amount": rows["arr"].to_numpy(),
                "closed": rows["end"].to_numpy().astype("datetime64[us]"),
                "won": rows["renewed"].to_numpy(dtype=bool),
            }
        )
    )
    opp = pd.concat(parts, ignore_index=True).sort_values(["a", "created"], kind="stable")
    still_open = (opp["closed"] >= np.datetime64(cal.end, "us")).to_numpy()
    stage = np.where(still_open, "open", np.where(opp["won"], "closed_won", "closed_lost"))
    return pa.table(
        {
            "account_id": account_id_array(ctx, opp["a"].to_numpy()),
            "created_at": ts_array(opp["created"].to_numpy()),
            "type": pa.array(opp["type"].to_numpy().astype(str)),
            "amount": pa.array(opp["amount"].to_numpy(dtype=float)),
            "closed_at": pa.array(
                opp["closed"].to_numpy().astype("datetime64[us]"),
                pa.timestamp("us"),
                mask=still_open,
            ).cast(pa.timestamp("us", tz="UTC")),
            "stage": pa.array(stage),
        }
    )


def interventions_table(ctx: Context, rng: np.random.Generator) -> pa.Table:
    """The plays CSMs ran in the history: type, cost, the risk flag and reason behind it, who
    decided."""
    inter = ctx.hist.interventions
    a, month = inter["account"], inter["month"]
    day = days_in(ctx.cal, month, rng)
    keep = _in_life(ctx, a, day)
    ts = stamp(day, rng)
    kind = np.array(INTERVENTIONS)[inter["kind"]]
    arr = ctx.hist.seats[a, month] * ctx.acc.seat_price[a]
    cost = np.where(
        kind == "discount",
        np.round(arr * DISCOUNT_SHARE, -1),
        np.vectorize(lambda k: INTERVENTION_COST.get(k, CSM_CHANGE_COST), otypes=[float])(kind),
    )
    order = np.lexsort((ts.astype(np.int64), a))
    order = order[keep[order]]
    return pa.table(
        {
            "account_id": account_id_array(ctx, a[order]),
            "ts": ts_array(ts[order]),
            "type": pa.array(kind[order]),
            "cost": pa.array(cost[order]),
            "risk_flag": pa.array(np.array(["green", "yellow", "red"])[inter["flag"][order]]),
            "reason": pa.array(reason_labels(inter["reason"], inter["source"])[order]),
            "decided_by": pa.array(
                np.array([f"csm_{c:03d}" for c in inter["csm"][order]], dtype=str)
            ),
            "source": pa.array(np.array(SOURCES)[inter["source"][order]]),
            "propensity": pa.array(inter["propensity"][order], pa.float64(), from_pandas=True),
        }
    )


def reason_labels(reason: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The logged reason of each play: the CSM's, or for an external play who chose it."""
    own = np.array(REASONS)[np.maximum(reason, 0)]
    return np.where(reason >= 0, own, np.array(SOURCES)[source]).astype(str)


def assignments_table(ctx: Context) -> pa.Table:
    """Every arm an external policy assigned (controls included), on the month's first day."""
    given = ctx.hist.assignments
    a, month = given["account"], given["month"]
    day = ctx.cal.month_start(month)
    order = np.lexsort((month, a))
    order = order[(day[order] >= ctx.cal.start) & (day[order] < ctx.cal.end)]
    arms = np.array([*INTERVENTIONS, "none"])[given["kind"][order]]  # CONTROL (-1) → "none"
    return pa.table(
        {
            "account_id": account_id_array(ctx, a[order]),
            "ts": ts_array(day[order]),
            "arm": pa.array(arms.astype(str)),
            "propensity": pa.array(given["propensity"][order]),
            "source": pa.array(np.array(SOURCES)[given["source"][order]]),
        }
    )
