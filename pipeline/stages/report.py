"""``healthscore report --as-of DATE``: the CS leader's HTML report, self-contained.

Flow: the scoring run of ``as_of`` (and the past runs for trends) + the plan run of the same day
+ the raw tables for each account's stakeholders and recent activity + the model's MLflow run
→ ``reports/as_of=DATE/`` written atomically:

- ``index.html``: portfolio (headline figures, bubble chart, priority list, alerts, forecast),
  account pages and the model page, with client-side navigation. Every asset is inlined.
- ``accounts/part-NNNN.js``: each account's page data, ``report.chunk_accounts`` accounts per
  file in priority order, loaded by a ``<script>`` tag only when one of its accounts is opened
  (``<script src>`` works from ``file://``, where ``fetch`` does not), so 100,000 accounts open
  as fast as a few hundred.

Safe by construction: server-side text goes through Jinja's autoescape; data for the scripts is
JSON with ``<``, ``>``, ``&`` and the line separators escaped, so no value can close a
``<script>`` element; the scripts write data with ``textContent`` and ``setAttribute`` only.
"""

from __future__ import annotations

import base64
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.base import spoken
from models.config import TrainConfig
from models.interventions.plans import BUSINESS_AS_USUAL
from models.scoring.health import health_interval
from models.win.metrics import at_risk_words
from pipeline import io
from pipeline.config import Params
from pipeline.io import catalog, report_page
from pipeline.io.catalog import plain

log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class ReportResult:
    """Where the report was written, for which run and how many accounts, its size and time."""

    path: Path
    as_of: date
    accounts: int
    parts: int
    bytes_index: int
    bytes_total: int
    seconds: float


def run_report(params: Params, as_of: date | None = None) -> ReportResult:
    """Write the report of the scoring run on ``as_of`` (default: the latest run).

    Raises:
        catalog.MissingRun: no scoring run at all, or none on ``as_of``.
    """
    started = time.perf_counter()
    day = catalog.pick_run(
        catalog.SCORES, params.output_dir, as_of, "run `healthscore score --as-of DATE` first"
    )
    data = collect(params, day)
    target = catalog.REPORTS.path(params.output_dir, day)
    with catalog.publish(catalog.REPORTS, params.output_dir, day) as tmp:
        parts = report_page.write(data, tmp, params.report.chunk_accounts)
    sizes = [p.stat().st_size for p in target.rglob("*") if p.is_file()]
    result = ReportResult(
        path=catalog.REPORT_INDEX.path(params.output_dir, day),
        as_of=day,
        accounts=len(data["accounts"]),
        parts=parts,
        bytes_index=catalog.REPORT_INDEX.path(params.output_dir, day).stat().st_size,
        bytes_total=int(sum(sizes)),
        seconds=time.perf_counter() - started,
    )
    log.info(
        "report: %s accounts, %d runs of history, %d account files; index %.1f MB, "
        "all %.1f MB in %.1f s → %s",
        f"{result.accounts:,}", len(data["runs"]), parts, result.bytes_index / 1e6,
        result.bytes_total / 1e6, result.seconds, result.path,
    )  # fmt: skip
    return result


# --- collect: everything the report shows, as plain data --------------------------------------


def collect(params: Params, day: date) -> dict[str, Any]:
    """Read the runs, plans, raw tables and model run the report of ``day`` shows (the history:
    up to ``report.history_runs`` scoring runs ending on ``day``)."""
    runs = catalog.runs(catalog.SCORES, params.output_dir)
    history = [d for d in runs if d <= day][-params.report.history_runs :]
    folder = catalog.SCORES.path(params.output_dir, day)
    scores = catalog.SCORED.read_from(folder).sort_values("priority", kind="stable")
    scores = scores.reset_index(drop=True)
    summary = catalog.SCORE_SUMMARY.read_from(folder)
    previous_text = summary.get("previous_as_of")
    previous = date.fromisoformat(str(previous_text)[:10]) if previous_text else None
    known = previous is not None and catalog.SCORE_SUMMARY.exists(params.output_dir, previous)
    before = catalog.SCORE_SUMMARY.read(params.output_dir, previous) if known else None
    plans, plan_summary, effects = _plans(params, day)
    details = _details(params, day, scores, history, folder, effects)
    drift = _csv(folder / catalog.DRIFT.file)
    return {
        "as_of": str(day),
        "currency": params.report.currency,
        "page_rows": params.report.page_rows,
        "bands": params.score.bands.model_dump(),
        "runs": [str(d) for d in history],
        "headline": _headline(summary, before, previous, plan_summary),
        "fields": ACCOUNT_FIELDS,  # what each of the accounts' rows holds, in order
        "accounts": _accounts(scores, plans, details["change"]),
        "details": details["pages"],
        "personas": details["personas"],
        "alerts": _alerts(folder, scores),
        "forecast": _forecast(folder, scores),
        "model": _model(params, summary, drift, day),
        "plan": plan_summary,
    }


def _plans(params: Params, day: date) -> tuple[pd.DataFrame | None, dict | None, pd.DataFrame]:
    if not catalog.PLANNED.exists(params.output_dir, day):
        log.info("report: no plan run on %s: the report shows no plays", day)
        return None, None, pd.DataFrame(columns=["account_id", "kind"])
    return (
        catalog.PLANNED.read(params.output_dir, day).set_index("account_id"),
        catalog.PLAN_SUMMARY.read(params.output_dir, day),
        catalog.PLAY_EFFECTS.read(params.output_dir, day),
    )


def _headline(
    summary: dict, before: dict | None, previous: date | None, plan_summary: dict | None
) -> dict[str, Any]:
    bands = summary["bands"]
    change = {b: bands.get(b, 0) - before["bands"].get(b, 0) for b in bands} if before else None
    forecast = summary.get("forecast") or {}
    return {
        "accounts": summary["accounts"],
        "arr": summary["arr"],
        "arr_at_risk": summary["arr_at_risk"],
        "expected_churned_arr": forecast.get("expected_churned_arr"),
        "expected_contraction_arr": forecast.get("expected_contraction_arr"),
        "renewals_due": forecast.get("renewals_due"),
        "bands": bands,
        "band_change": change,
        "previous_as_of": str(previous) if previous else None,
        "alerts": summary.get("alerts", 0),
        "expected_auc": summary.get("expected_auc"),
        "funded": plan_summary.get("funded") if plan_summary else None,
        "arr_saved_funded": plan_summary.get("arr_saved_funded") if plan_summary else None,
        "cost_funded": plan_summary.get("cost_funded") if plan_summary else None,
        # of the funded plans: to do this period, and held out to measure what plays do
        "to_do": (plan_summary or {}).get("arms", {}).get("plan"),
        "held_out": sum(n for arm, n in (plan_summary or {}).get("arms", {}).items()
                        if arm.startswith("holdout")),
    }  # fmt: skip


def _accounts(
    scores: pd.DataFrame, plans: pd.DataFrame | None, change: pd.Series
) -> list[list[Any]]:
    """The priority list's rows, in priority order (the order of the account files too).

    The play shown is what the account gets this period: the funded plan (and its ARR saved);
    "held out" for the randomised holdout; else the best plan, marked not funded.
    """
    n = len(scores)
    play, note, saved = [None] * n, [None] * n, [None] * n
    if plans is not None:
        plan = plans.reindex(scores["account_id"])
        for i, r in enumerate(plan.itertuples(index=False)):
            if r.arm == "plan":
                play[i], saved[i] = _said(r.recommended), _round(r.recommended_arr_saved)
            elif isinstance(r.arm, str) and r.arm.startswith("holdout"):
                play[i], note[i] = _said(r.action), "held out"
            elif isinstance(r.best_plan, str) and r.best_plan != BUSINESS_AS_USUAL:
                play[i], note[i], saved[i] = _said(r.best_plan), "not funded", _round(r.arr_saved)

    def column(name: str) -> Any:
        return scores[name] if name in scores else [None] * n

    rows = zip(
        scores["account_id"], column("name"), map(_said, column("segment")), _csm(scores),
        scores["arr"], scores["health"], scores["band"],
        change.reindex(scores["account_id"]).to_numpy(), scores["arr_at_risk"],
        scores["priority"], column("top_risk_1"), play, note, saved, column("days_to_renewal"),
        column("expected_renewal_arr"), column("expected_expansion_arr"),
        strict=True,
    )  # fmt: skip
    return [
        [
            _text(a), _text(nm) or _text(a), _text(s), _text(c), _round(arr), int(h), str(b),
            _round(t), _round(risk), int(p), _text(d), pl, no, sv, _round(days), _round(ren),
            _round(grow),
        ]
        for a, nm, s, c, arr, h, b, t, risk, p, d, pl, no, sv, days, ren, grow in rows
    ]  # fmt: skip


ACCOUNT_FIELDS = [
    "id", "name", "segment", "csm", "arr", "health", "band", "trend", "at_risk", "priority",
    "driver", "play", "play_note", "saved", "renewal_days", "renewal_arr", "growth",
]  # fmt: skip


def _details(
    params: Params, day: date, scores: pd.DataFrame, history: list[date], folder: Path,
    effects: pd.DataFrame,
) -> dict[str, Any]:  # fmt: skip
    """Each account's page data, in priority order."""
    ids = scores["account_id"]
    components = scores.filter(like="points_")
    base = scores["health"] - components.sum(axis=1)
    drivers = catalog.DRIVERS.read_from(folder)
    drivers = drivers.assign(order=drivers["points"].abs()).sort_values(
        ["account_id", "order"], ascending=[True, False], kind="stable"
    )
    if "actionable" not in drivers:  # a run scored before context was shown apart
        drivers = drivers.assign(actionable=True)
    by_account = {
        a: [[_text(t), round(float(p), 1), _text(c), bool(x)] for t, p, c, x in zip(
            g["text"], g["points"], g["component"], g["actionable"], strict=True)]
        for a, g in drivers.groupby("account_id", sort=False)
    }  # fmt: skip
    trend = _history(params, ids, history)
    changes = _changes(folder, ids)
    plan_pages = _plan_pages(params, day, effects)
    footprint, activity, personas = _raw_pages(params, day, ids)
    names = [c.removeprefix("points_") for c in components.columns]
    growth = sorted(c for c in scores.columns if c.startswith("top_growth_"))
    interval_low, interval_high = health_interval(
        scores["win_probability_low"], scores["win_probability_high"], scores["health"]
    )
    pages = []
    for i, account in enumerate(ids):
        row = scores.iloc[i]
        pages.append(
            {
                "p": [round(float(row["win_probability_low"]) * 100, 1),
                      round(float(row["win_probability"]) * 100, 1),
                      round(float(row["win_probability_high"]) * 100, 1)],
                "interval": [int(interval_low[i]), int(interval_high[i])],
                "base": round(float(base.iloc[i]), 1),
                "components": [[n, round(float(v), 1)] for n, v in zip(
                    names, components.iloc[i], strict=True)],
                "drivers": by_account.get(account, []),
                "history": trend.get(account, []),
                "change": changes.get(account),
                "plays": plan_pages.get(account),
                "grow": [_text(row[c]) for c in growth if isinstance(row[c], str)],
                "footprint": footprint.get(account, []),
                "activity": activity.get(account, []),
                "version": str(row["model_version"]),
            }
        )  # fmt: skip
    change = pd.Series(
        {a: c["delta"] for a, c in changes.items() if c.get("delta") is not None}, dtype=float
    )
    return {"pages": pages, "change": change, "personas": personas}


def _history(params: Params, ids: pd.Series, history: list[date]) -> dict[str, list[Any]]:
    """Health per account on each run of ``history`` (None where it was not scored)."""
    files = [str(catalog.SCORED.path(params.output_dir, d)) for d in history]
    con = duckdb.connect()
    frame = con.execute(
        "SELECT account_id, CAST(as_of AS DATE) AS as_of, health FROM read_parquet(?)", [files]
    ).df()
    con.close()
    frame = frame.assign(as_of=frame["as_of"].astype(str))
    wide = frame.pivot_table(index="account_id", columns="as_of", values="health")
    wide = wide.reindex(columns=[str(d) for d in history]).reindex(ids)
    return {
        a: [None if math.isnan(v) else int(v) for v in row]
        for a, row in zip(wide.index, wide.to_numpy(dtype=float), strict=True)
    }


def _changes(folder: Path, ids: pd.Series) -> dict[str, dict[str, Any]]:
    """Since the previous run: health before, the change, and what moved it most."""
    if not (folder / catalog.CHANGES.file).exists():
        return {}
    changes = catalog.CHANGES.read_from(folder).set_index("account_id")
    component = [c for c in changes.columns if c.startswith("points_") and c.endswith("_change")]
    out = {}
    for account, row in changes.reindex(ids).dropna(subset=["health_previous"]).iterrows():
        moved = {
            c.removeprefix("points_").removesuffix("_change"): round(float(row[c]), 1)
            for c in component
            if pd.notna(row[c])
        }
        out[account] = {
            "since": str(pd.Timestamp(row["previous_as_of"]).date()),
            "before": int(row["health_previous"]),
            "delta": int(row["health_change"]),
            "band_before": _text(row.get("band_previous")),
            # in words with the value now; a run scored before the words has none to show
            "fell": [_text(row.get("most_fell_text")), _round(row.get("most_fell_points"), 1)],
            "rose": [_text(row.get("most_rose_text")), _round(row.get("most_rose_points"), 1)],
            "components": dict(sorted(moved.items(), key=lambda kv: kv[1])),
        }
    return out


def _plan_pages(params: Params, day: date, effects: pd.DataFrame) -> dict[str, dict[str, Any]]:
    if not catalog.PLANNED.exists(params.output_dir, day):
        return {}
    plans = catalog.PLANNED.read(params.output_dir, day)
    per_kind = {
        a: [[_said(k), _round(100 * e, 2), _round(100 * lo, 2), _round(100 * hi, 2), bool(x)]
            for k, e, lo, hi, x in zip(g["kind"], g["effect"], g["effect_low"],
                                       g["effect_high"], g["extrapolated"], strict=True)]
        for a, g in effects.sort_values(["account_id", "effect"], ascending=[True, False])
        .groupby("account_id", sort=False)
    }  # fmt: skip
    out = {}
    for r in plans.itertuples(index=False):
        runners = [
            [_said(getattr(r, f"runner_up_{i}")), _round(getattr(r, f"runner_up_{i}_arr_saved"))]
            for i in (1, 2)
            if isinstance(getattr(r, f"runner_up_{i}"), str)
        ]
        out[r.account_id] = {
            "best": _said(r.best_plan),
            "none": r.best_plan == BUSINESS_AS_USUAL,  # no play saves more than it costs
            "lift": [
                round(100 * r.lift, 2),
                round(100 * r.lift_low, 2),
                round(100 * r.lift_high, 2),
            ],
            "saved": [_round(r.arr_saved), _round(r.arr_saved_low), _round(r.arr_saved_high)],
            "cost": _round(r.cost),
            "given": _round(getattr(r, "arr_given_away", 0.0)),  # of the renewal (a discount)
            "hours": [_round(r.csm_hours, 1), _round(r.exec_hours, 1)],
            "net": _round(r.net_value),
            "extrapolated": bool(r.extrapolated),
            "funded": bool(r.funded),
            "recommended": _said(r.recommended),
            "arm": r.arm,
            "action": _said(r.action),
            "runners_up": runners,
            "kinds": per_kind.get(r.account_id, []),
        }
    return out


def _raw_pages(
    params: Params, day: date, ids: pd.Series
) -> tuple[dict[str, list[list[int]]], dict[str, list[list[Any]]], list[str]]:
    """Stakeholder footprint and recent activity per account, from the raw tables before ``day``."""
    if params.data.source == "table":
        return {}, {}, []
    cfg = params.report
    as_of = pd.Timestamp(day)
    since = as_of - pd.Timedelta(days=cfg.activity_days)
    with io.read_raw(params.data) as raw:
        con = raw.connection
        con.register("report_accounts", pd.DataFrame({"account_id": ids.to_numpy()}))
        footprint: dict[str, list[list[int]]] = {}
        personas: list[str] = []
        if raw.has("contacts"):
            frame = con.execute(
                """
                SELECT c.account_id, c.persona,
                       count(*) FILTER (WHERE c.left_at IS NULL OR c.left_at >= $as_of) AS known,
                       count(*) FILTER (WHERE c.left_at >= $since AND c.left_at < $as_of) AS left
                FROM contacts c JOIN report_accounts USING (account_id)
                WHERE c.created_at < $as_of AND c.persona IS NOT NULL
                GROUP BY ALL
                ORDER BY c.account_id, c.persona
                """,
                {"as_of": as_of, "since": since},
            ).df()
            personas = sorted(frame["persona"].astype(str).unique())
            slot = {p: i for i, p in enumerate(personas)}
            for account, group in frame.groupby("account_id", sort=False):
                counts = [[0, 0] for _ in personas]  # known, left recently; personas' order
                for p, k, left in zip(group["persona"], group["known"], group["left"], strict=True):
                    counts[slot[str(p)]] = [int(k), int(left)]
                footprint[account] = counts
        answered_by = as_of - pd.Timedelta(days=params.features.engagement.answer_lag_days)
        activity = _activity(raw, con, as_of, since, answered_by, cfg.activity_items)
    return footprint, activity, personas


# Each optional table's recent rows as (account, time, source, what, detail). Values are text.
_ACTIVITY_SQL = {
    "activities": """SELECT account_id, ts AS happened_at, 'activity' AS source, type AS what,
        concat_ws(' · ', direction,
            CASE WHEN responded IS NULL THEN NULL WHEN ts >= $answered_by THEN 'awaiting answer'
                 WHEN responded THEN 'answered' ELSE 'no answer' END) AS detail
        FROM activities""",
    "support_tickets": """SELECT account_id, opened_at AS happened_at, 'ticket' AS source,
        concat_ws(' ', 'ticket', ticket_id) AS what,
        concat_ws(' · ', 'priority ' || priority, CASE WHEN closed_at IS NULL
            OR closed_at >= $as_of THEN 'open' ELSE 'closed' END,
            CASE WHEN closed_at < $as_of THEN 'CSAT ' || CAST(csat AS VARCHAR) END) AS detail
        FROM support_tickets""",
    "surveys": """SELECT account_id, CASE WHEN responded_at < $as_of THEN responded_at
        ELSE sent_at END AS happened_at, 'survey' AS source,
        CASE WHEN responded_at IS NOT NULL AND responded_at < $as_of AND score IS NOT NULL
             THEN 'NPS ' || CAST(CAST(score AS INTEGER) AS VARCHAR) ELSE 'survey sent' END AS what,
        CASE WHEN responded_at IS NULL OR responded_at >= $as_of THEN 'no response' END AS detail
        FROM surveys""",
    "sentiment": """SELECT account_id, ts AS happened_at, 'sentiment' AS source,
        'CSM rating ' || CAST(rating AS VARCHAR) AS what, note AS detail FROM sentiment""",
    "interventions": """SELECT account_id, ts AS happened_at, 'play' AS source, type AS what,
        concat_ws(' · ', reason, 'risk flag ' || CAST(risk_flag AS VARCHAR)) AS detail
        FROM interventions""",
    "opportunities": """SELECT account_id, created_at AS happened_at, 'opportunity' AS source,
        type AS what, concat_ws(' · ', CASE WHEN closed_at < $as_of THEN stage ELSE 'open' END,
        CAST(CAST(amount AS BIGINT) AS VARCHAR)) AS detail
        FROM opportunities""",
}


def _activity(
    raw: io.RawData, con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, since: pd.Timestamp,
    answered_by: pd.Timestamp, items: int,
) -> dict[str, list[list[Any]]]:  # fmt: skip
    """The latest ``items`` rows per account in [since, as_of); whether a touch was answered
    only once it is older than the features' answer lag (the flag is set later)."""
    parts = [sql for table, sql in _ACTIVITY_SQL.items() if raw.has(table)]
    if not parts or items <= 0:
        return {}
    union = " UNION ALL ".join(f"({sql})" for sql in parts)
    bounds = {"as_of": as_of, "since": since, "answered_by": answered_by}
    frame = con.execute(
        f"""
        SELECT account_id, strftime(happened_at, '%Y-%m-%d') AS day, source, what, detail FROM (
            SELECT *, row_number() OVER (
                PARTITION BY account_id
                ORDER BY happened_at DESC, source, what, detail NULLS FIRST) AS n
            FROM ({union}) JOIN report_accounts USING (account_id)
            WHERE happened_at >= $since AND happened_at < $as_of)
        WHERE n <= {int(items)}
        ORDER BY account_id, n
        """,
        {k: v for k, v in bounds.items() if f"${k}" in union or k in ("as_of", "since")},
    ).df()
    return {
        a: [[d, s, _text(w), _text(t)] for d, s, w, t in zip(
            g["day"], g["source"], g["what"], g["detail"], strict=True)]
        for a, g in frame.groupby("account_id", sort=False)
    }  # fmt: skip


def _alerts(folder: Path, scores: pd.DataFrame) -> list[dict[str, Any]]:
    alerts = _csv(folder / catalog.ALERTS.file)
    if alerts.empty:
        return []
    names = scores.set_index("account_id")["name"] if "name" in scores else pd.Series(dtype=str)
    return [
        {
            "account_id": str(r.account_id),
            "name": _text(names.get(r.account_id)) or str(r.account_id),
            "before": int(r.health_previous),
            "health": int(r.health),
            "band_before": str(r.band_previous),
            "band": str(r.band),
            "reason": str(r.reason),
            "fell": _text(getattr(r, "most_fell_text", None)),  # absent in older runs
            "arr": float(r.arr),
            "priority": int(r.priority),
        }
        for r in alerts.itertuples(index=False)
    ]


def _forecast(folder: Path, scores: pd.DataFrame) -> dict[str, Any] | None:
    """The coming window's forecast per group (total, segment, CSM … as the scoring run wrote),
    each CSM by name where the accounts table gives one."""
    forecast = _csv(folder / catalog.FORECAST.file)
    if forecast.empty:
        return None
    if "csm_id" in scores:
        named = dict(zip(scores["csm_id"], _csm(scores), strict=True))
        is_csm = forecast["group"] == "csm_id"
        forecast.loc[is_csm, "value"] = (
            forecast.loc[is_csm, "value"].map(named).fillna(forecast.loc[is_csm, "value"])
        )
    groups = [
        {
            "name": str(name).removesuffix("_id").replace("_", " "),
            "rows": [
                plain(r) | {"value": _said(r.get("value"))}
                for r in rows.sort_values("expected_churned_arr", ascending=False).to_dict(
                    orient="records"
                )
            ],
        }
        for name, rows in forecast.groupby("group", sort=False)
    ]
    return {"window_days": int(forecast["window_days"].iloc[0]), "groups": groups}


def _calibration_by_date(client: MlflowClient, run_id: str, tmp: str) -> list[dict[str, Any]]:
    """The run's test calibration per as-of date, for the model page (none for a run before
    it was logged, or a table without dates)."""
    path = f"{catalog.RUN_EVALUATION}/{catalog.RUN_CALIBRATION}"
    try:
        frame = pd.read_csv(client.download_artifacts(run_id, path, tmp))
    except (MlflowException, OSError, pd.errors.EmptyDataError):
        return []
    return [plain(r) for r in frame.to_dict("records")]


def _model(params: Params, summary: dict, drift: pd.DataFrame, day: date) -> dict[str, Any]:
    """Which model scored this run, its out-of-time figures and plots, and this run's drift.

    ``in_sample``: the model was trained on snapshots from on or after this run's date (a past
    date re-scored, as ``all`` backfills): its scores there are not a forecast.
    """
    info = dict(summary.get("model") or {})
    # "no as-of dates" (a prebuilt table without them) reads as unknown
    through = pd.to_datetime(info.get("trained_through"), errors="coerce")
    in_sample = not pd.isna(through) and through.date() >= day
    model: dict[str, Any] = {
        "version": summary.get("model_version"),
        "info": info,
        "metrics": [],
        "baselines": [],
        "lead_time": [],
        "calibration": [],
        "plots": {},
        "note": None,
        "drift": [plain(r) for r in drift.to_dict(orient="records")] if not drift.empty else [],
        "expected_auc": summary.get("expected_auc"),
        "in_sample": in_sample,
        "trained_through": None if pd.isna(through) else str(through.date()),
    }
    run_id = info.get("run_id")
    if not run_id:
        model["note"] = "the scoring run names no MLflow run"
        return model
    client = MlflowClient(params.mlflow.tracking_uri)
    try:
        run = client.get_run(run_id)
        metrics = run.data.metrics
        with tempfile.TemporaryDirectory(prefix="healthscore-report-") as tmp:
            for name in ("reliability", "lift"):
                local = Path(
                    client.download_artifacts(run_id, f"{catalog.RUN_PLOTS}/{name}.png", tmp)
                )
                model["plots"][name] = base64.b64encode(local.read_bytes()).decode("ascii")
            leads = Path(
                client.download_artifacts(
                    run_id, f"{catalog.RUN_EVALUATION}/{catalog.RUN_LEAD_TIME}", tmp
                )
            )
            lead = pd.read_csv(leads).rename(columns=LEAD_WORDS)
            model["lead_time"] = [plain(r) for r in lead.to_dict("records")]
            model["calibration"] = _calibration_by_date(client, run_id, tmp)
    except (MlflowException, OSError) as exc:
        model["note"] = f"MLflow run {run_id} not readable at {params.mlflow.tracking_uri}: {exc}"
        log.warning("report: %s", model["note"])
        return model
    model["metrics"] = [
        {
            "metric": METRIC_WORDS[m],
            "ensemble": metrics.get(f"oot_{m}"),
            "cv": metrics.get(f"cv_{m}"),
            **{
                b: metrics.get(f"baseline_{b}_{m}")
                for b in sorted({k.split("_")[1] for k in metrics if k.startswith("baseline_")})
            },
        }
        for m in METRIC_WORDS
        if f"oot_{m}" in metrics
    ]
    model["baselines"] = sorted({k.split("_")[1] for k in metrics if k.startswith("baseline_")})
    model["median_warning_days"] = metrics.get("median_warning_days")
    model["warned_share"] = metrics.get("warned_share")  # absent before it was logged
    model["warned_median_days"] = metrics.get("warned_median_days")
    model["warned_interval"] = [metrics.get("warned_share_low"), metrics.get("warned_share_high")]
    model["warned_of"] = metrics.get("warned_of_lost_contracts")
    top = run.data.params.get("train.at_risk_top_percent")  # absent before it existed: p < 0.7
    model["at_risk"] = at_risk_words(
        TrainConfig(
            at_risk_top_percent=None if top in (None, "None") else float(top),
            at_risk_below=float(run.data.params.get("train.at_risk_below", 0.7)),
        )
    )
    model["trained_at"] = run.info.start_time
    return model


def _csv(path: Path) -> pd.DataFrame:
    """A run's CSV; ids and group values stay text (``00123`` is not 123, ``NA`` not missing)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    text = {"account_id": str, "value": str, "name": str, "csm_id": str, "segment": str}
    try:
        return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


# the model page's figures in words (out-of-time test; the riskiest 10 % is by ARR at risk)
METRIC_WORDS = {
    "roc_auc": "ROC AUC: how often a lost account scores below a renewed one (0.5 = chance)",
    "pr_auc": "PR AUC: how well the lowest scores find the non-renewals",
    "brier": "Brier score: squared error of the probabilities (lower is better)",
    "ece": "Calibration error: predicted against realised renewal rate (lower is better)",
    "log_loss": "Log loss (lower is better)",
    "top_decile_lift": "Non-renewals in the lowest-scored 10 %, against the book's rate",
    "precision_top_10pct": "Of the riskiest 10 %, share that did not renew",
    "recall_top_10pct": "Of the non-renewals, share in the riskiest 10 %",
    "arr_recall_top_10pct": "Of the ARR lost, share in the riskiest 10 %",
}
LEAD_WORDS = {
    "days_before_renewal": "Days before renewal",
    "snapshots": "Monthly scores",
    "non_renewals": "Of them, not renewed",
    "flagged": "At risk",
    "precision": "Of those at risk, not renewed",
    "recall": "Of those not renewed, at risk",
}


def _csm(scores: pd.DataFrame) -> list[Any]:
    """Each account's CSM as people know them: the name where the accounts table gives one."""
    ids = scores["csm_id"] if "csm_id" in scores else pd.Series(None, index=scores.index)
    names = scores.get("csm_name", ids)
    return names.where(names.notna(), ids).tolist()


def _said(value: Any) -> Any:
    """A name from the data or the plan (a play, a segment) as people read it."""
    return spoken(value) if isinstance(value, str) else value


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _round(value: Any, digits: int = 0) -> float | int | None:
    if value is None or value is pd.NA:
        return None
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return round(value) if digits == 0 else round(value, digits)
