"""``healthscore explain ACCOUNT_ID``: one account's page, read from the scoring partitions.

Every value on the page comes from the data (CRM names, play kinds, feature descriptions), so the
terminal page shows it as plain text: control characters out, Rich markup escaped.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from features.base import spoken
from models.errors import ModelInputError
from models.interventions.plans import BUSINESS_AS_USUAL, why_no_play
from models.interventions.portfolio import catalog_options
from models.scoring.health import health_interval
from pipeline.config import Params
from pipeline.errors import InputError
from pipeline.io import catalog
from pipeline.io.catalog import plain

SCORE_FIRST = "run `healthscore score --as-of DATE` first"
BAND_STYLE = {"red": "bold red", "yellow": "bold yellow", "green": "bold green"}
# line breaks and tabs become a space; other C0/C1 controls (ESC, CSI) and bidirectional
# overrides, which would make the terminal show something else than the data, are dropped
_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def account_page(params: Params, account_id: str, as_of: date | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain data (also what ``--json`` prints).

    Raises:
        catalog.MissingRun: nothing is scored yet, or not on ``as_of``.
        ValueError: the account is not in that run.
    """
    day = catalog.pick_run(catalog.SCORES, params.output_dir, as_of, SCORE_FIRST)
    runs = catalog.runs(catalog.SCORES, params.output_dir)
    con = duckdb.connect()
    row = con.execute(
        "SELECT * FROM read_parquet(?) WHERE account_id = ?",
        [str(catalog.SCORED.path(params.output_dir, day)), account_id],
    ).df()
    if row.empty:
        raise InputError(f"account {account_id!r} is not in the run of {day}")
    score = row.iloc[0]
    drivers = con.execute(
        "SELECT * FROM read_parquet(?) WHERE account_id = ? ORDER BY kind, rank",
        [str(catalog.DRIVERS.path(params.output_dir, day)), account_id],
    ).df()
    if "actionable" not in drivers:  # a run scored before context was shown apart
        drivers = drivers.assign(actionable=True)
    acting, context = drivers[drivers["actionable"]], drivers[~drivers["actionable"]]
    history = con.execute(
        "SELECT CAST(as_of AS DATE) AS as_of, health, band, win_probability FROM read_parquet(?)"
        " WHERE account_id = ? ORDER BY as_of",
        [[str(catalog.SCORED.path(params.output_dir, d)) for d in runs if d <= day],
         account_id],
    ).df()  # fmt: skip
    changes = None
    if catalog.CHANGES.exists(params.output_dir, day):
        found = con.execute(
            "SELECT * FROM read_parquet(?) WHERE account_id = ?",
            [str(catalog.CHANGES.path(params.output_dir, day)), account_id],
        ).df()
        changes = None if found.empty else plain(found.iloc[0].to_dict())
    con.close()
    components = {
        k.removeprefix("points_"): round(float(v), 1)
        for k, v in score.items()
        if k.startswith("points_")
    }
    return {
        "account_id": account_id,
        "as_of": str(day),
        "name": plain(score.get("name")),
        "segment": plain(score.get("segment")),
        "csm_id": plain(score.get("csm_id")),
        "csm_name": plain(score.get("csm_name")),  # where the accounts table gives one
        "arr": float(score["arr"]),
        "health": int(score["health"]),
        "band": score["band"],
        "win_probability": float(score["win_probability"]),
        "interval": [float(score["win_probability_low"]), float(score["win_probability_high"])],
        "arr_at_risk": float(score["arr_at_risk"]),
        "priority": int(score["priority"]),
        "days_to_renewal": plain(score.get("days_to_renewal")),
        "renewal": _renewal(score, day),
        "model_version": str(score["model_version"]),
        "components": dict(sorted(components.items(), key=lambda kv: kv[1])),
        "risks": _drivers(acting, "risk"),
        "strengths": _drivers(acting, "strength"),
        "context": _drivers(context.sort_values("points", key=abs, ascending=False), None),
        "history": [
            {"as_of": str(pd.Timestamp(r.as_of).date()), "health": int(r.health), "band": r.band}
            for r in history.itertuples()
        ],
        "changes": changes,
        "plays": _plays(
            params, account_id, day, float(score["arr"]), plain(score.get("days_to_renewal"))
        ),
    }


def _plays(
    params: Params, account_id: str, day: date, arr: float, days_to_renewal: float | None
) -> dict[str, Any] | None:
    """The account's recommended plan and per-kind effects from the plan run of the same date,
    and, when the plan is to do nothing new, why (``why_none``)."""
    if not catalog.PLANNED.exists(params.output_dir, day):
        return None
    only = [("account_id", "==", account_id)]
    row = catalog.PLANNED.read(params.output_dir, day, filters=only)
    if row.empty:
        return None
    plan = row.iloc[0]
    effects = catalog.PLAY_EFFECTS.read(params.output_dir, day, filters=only)
    try:
        options = catalog_options(params.plan, sorted(set(effects["kind"]))).options
    except ModelInputError:  # the catalog and the effect model share no kind
        options = ()
    return {
        "best_plan": plan["best_plan"],
        "why_none": why_no_play(options, arr, days_to_renewal),
        "lift": float(plan["lift"]),
        "lift_interval": [float(plan["lift_low"]), float(plan["lift_high"])],
        "arr_saved": float(plan["arr_saved"]),
        "arr_saved_interval": [float(plan["arr_saved_low"]), float(plan["arr_saved_high"])],
        "cost": float(plan["cost"]),
        "arr_given_away": float(plan.get("arr_given_away", 0.0)),  # absent before arr_share
        "net_value": float(plan["net_value"]),
        "extrapolated": bool(plan["extrapolated"]),
        "funded": bool(plan["funded"]),
        "recommended": plan["recommended"],
        "arm": plan["arm"],
        "action": plan["action"],
        "experiment_arm": plan.get("explore_arm") or None,  # absent before exploration
        "runners_up": [
            {"plan": plan[f"runner_up_{i}"], "arr_saved": float(plan[f"runner_up_{i}_arr_saved"])}
            for i in (1, 2)
            if isinstance(plan[f"runner_up_{i}"], str)
        ],
        "effects": [
            {
                "kind": e.kind,
                "effect": float(e.effect),
                "interval": [float(e.effect_low), float(e.effect_high)],
                "extrapolated": bool(e.extrapolated),
            }
            for e in effects.sort_values("effect", ascending=False).itertuples()
        ],
    }


def plain_text(value: str) -> str:
    """A text from the data as the terminal should show it: on one line, without control
    characters, Rich markup escaped (``[bold]`` is shown, not applied)."""
    return escape(_CONTROLS.sub("", _BREAKS.sub(" ", value)))


def _shown(value: Any) -> Any:
    """``value`` with every text in it (dict keys too) made :func:`plain_text`."""
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, dict):
        return {_shown(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    return value


def _renewal(score: pd.Series, day: date) -> dict[str, Any] | None:
    """The renewal in dollars (None when the model has no size part): its date, the expected
    renewal ARR, and the chances it grows or shrinks."""
    if "expected_renewal_arr" not in score or pd.isna(score.get("days_to_renewal")):
        return None
    return {
        "date": str(day + timedelta(days=int(score["days_to_renewal"]))),
        "expected_renewal_arr": float(score["expected_renewal_arr"]),
        "expected_renewal_arr_interval": [
            float(score.get("expected_renewal_arr_low", np.nan)),
            float(score.get("expected_renewal_arr_high", np.nan)),
        ],
        "expected_expansion_arr": float(score["expected_expansion_arr"]),
        "expected_contraction_arr": float(score["expected_contraction_arr"]),
        "p_grow": float(score["p_expand"]),
        "p_shrink": float(score["p_contract"]),
        "p_churn": 1 - float(score["win_probability"]),
        "why_grow": [
            str(score[k])
            for k in sorted(score.index)
            if k.startswith("top_growth_") and isinstance(score[k], str)
        ],
    }


def render_page(page: dict[str, Any]) -> None:
    """The page in the terminal (rich); every text from the data is shown as plain text."""
    page = _shown(page)
    console = Console(emoji=False)
    band = page["band"]
    (low,), (high,) = health_interval([page["interval"][0]], [page["interval"][1]],
                                      [page["health"]])  # fmt: skip
    console.print(
        f"[bold]{page['name'] or page['account_id']}[/] ({page['account_id']}) · "
        f"{spoken(page['segment'] or '-')} · CSM {page.get('csm_name') or page['csm_id'] or '-'}"
        f" · as of {page['as_of']}"
    )
    console.print(
        f"Health [{BAND_STYLE.get(band, 'bold')}]{page['health']} {band}[/] "
        f"(interval {low}–{high}) · ARR {page['arr']:,.0f} · at risk {page['arr_at_risk']:,.0f} · "
        f"priority #{page['priority']} · renewal in {page['days_to_renewal']} days · "
        f"model v{page['model_version']}"
    )
    if page.get("renewal"):
        r = page["renewal"]
        console.print(
            f"Renewal on {r['date']}: expected renewal ARR {r['expected_renewal_arr']:,.0f} "
            f"({r['expected_renewal_arr_interval'][0]:,.0f}–"
            f"{r['expected_renewal_arr_interval'][1]:,.0f}; today {page['arr']:,.0f}) · "
            f"chance it churns {r['p_churn']:.0%}, shrinks "
            f"{r['p_shrink']:.0%}, grows {r['p_grow']:.0%} · expected growth "
            f"{r['expected_expansion_arr']:,.0f}, shrinkage {r['expected_contraction_arr']:,.0f}"
        )
        if r["why_grow"]:
            console.print("Why it might grow: " + "; ".join(r["why_grow"]))
    if len(page["history"]) > 1:
        trend = " → ".join(f"{h['health']}" for h in page["history"][-6:])
        console.print(f"Trend: {trend}")
    table = Table(title="Components (points of health against the portfolio's base)")
    table.add_column("component")
    table.add_column("points", justify="right")
    for name, points in page["components"].items():
        table.add_row(name, f"{points:+.1f}")
    console.print(table)
    for title, key in (
        ("Top risks", "risks"),
        ("Top strengths", "strengths"),
        ("What the account is (weighed in, not for the team to change)", "context"),
    ):
        if page.get(key):
            console.print(f"[bold]{title}[/]")
        for d in page.get(key, []):
            console.print(f"  {d['points']:+5.1f}  {d['text']}")
    changes = page["changes"]
    if changes and changes.get("health_previous") is not None:
        console.print(
            f"[bold]Since {str(changes['previous_as_of'])[:10]}[/]: health "
            f"{int(changes['health_previous'])} → {page['health']} "
            f"({changes['health_change']:+.0f}); most fell: {_moved(changes, 'fell')}; "
            f"most rose: {_moved(changes, 'rose')}"
        )
    plays = page.get("plays")
    if plays:
        low, high = (100 * x for x in plays["lift_interval"])
        flag = (
            " [yellow](extrapolated: outside the logged decisions)[/]"
            if plays["extrapolated"]
            else ""
        )
        given = (
            f" after {plays['arr_given_away']:,.0f} of the renewal given away,"
            if plays["arr_given_away"] >= 0.5
            else ""
        )
        arm = {
            "plan": f"funded this period: {spoken(plays['recommended'])}",
            "holdout_bau": "held out this period (business as usual, for measurement)",
            "holdout_random": f"held out this period (randomised: {spoken(plays['action'])})",
            "ineligible": "not funded within this period's capacity",
        }[plays["arm"]]
        if plays["best_plan"] == BUSINESS_AS_USUAL:
            console.print(f"[bold]Plays[/]: none, because {plays['why_none']}")
        else:
            console.print(
                f"[bold]Best plan[/]: {spoken(plays['best_plan'])} — win probability "
                f"{100 * plays['lift']:+.1f} pts ({low:+.1f} to {high:+.1f}), ARR saved "
                f"{plays['arr_saved']:,.0f}{given} for {plays['cost']:,.0f}{flag}; {arm}"
            )
        for alt in plays["runners_up"]:
            console.print(f"  or: {spoken(alt['plan'])} (ARR saved {alt['arr_saved']:,.0f})")
        drawn = plays.get("experiment_arm")
        if drawn:
            what = "no play, as a control" if drawn == "none" else spoken(drawn)
            console.print(
                f"[bold]Experiment[/]: drawn at random this period ({what}), to measure what "
                "each play does; it replaces the recommendation for this account"
            )
        effects = ", ".join(
            f"{spoken(e['kind'])} {100 * e['effect']:+.1f}{'*' if e['extrapolated'] else ''}"
            for e in plays["effects"]
        )
        console.print(f"  each play alone (pts of win probability; * extrapolated): {effects}")


def _moved(changes: dict[str, Any], way: str) -> str:
    """What fell (rose) most since the previous run, in words, with its points."""
    text = changes.get(f"most_{way}_text")
    if not text:
        return "-"
    return f"{text} ({changes[f'most_{way}_points']:+.1f} pts)"


def _drivers(drivers: pd.DataFrame, kind: str | None) -> list[dict[str, Any]]:
    """The drivers of one kind (``None``: all, in the given order) as the page lists them."""
    part = drivers if kind is None else drivers[drivers["kind"] == kind].sort_values("rank")
    return [
        {"feature": r.feature, "component": r.component, "value": r.value,
         "points": round(float(r.points), 1), "text": r.text}
        for r in part.itertuples()
    ]  # fmt: skip
