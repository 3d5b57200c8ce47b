"""Plays as CRM tasks, and the score as CRM account fields: a neutral form, and the column
shapes Salesforce's and HubSpot's importers take.

Salesforce: the standard Task fields (``Subject``, ``Description``, ``ActivityDate``,
``OwnerId``, ``WhatId``, ``Status``, ``Priority``). HubSpot: the task object's internal property
names (``hs_task_subject``, ``hs_task_body``, ``hs_timestamp``, ``hubspot_owner_id``,
``hs_task_status``, ``hs_task_priority``). Owners and accounts are healthscore's ids: map them
to the CRM's user and account ids on import.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pandas as pd

OPTION = re.compile(r"^(?P<kind>.+?)(?: \+(?P<days>\d+)d)?$")  # "training +30d" → 30 days on


def tasks(
    plans: pd.DataFrame, scores: pd.DataFrame, as_of: date, due_within_days: int
) -> pd.DataFrame:
    """One task per play of every funded plan: owner, account, play in words, due date (the
    play's start, plus ``due_within_days`` to do it), the plan's expected lift and ARR saved,
    and the account's top risk as the reason. Ordered by the account's priority."""
    funded = plans[plans["arm"] == "plan"].merge(
        scores[[c for c in ("account_id", "name", "priority", "top_risk_1") if c in scores]],
        on="account_id", how="left",
    )  # fmt: skip
    rows = []
    for plan in funded.sort_values(["priority", "account_id"]).to_dict(orient="records"):
        for part in str(plan["recommended"]).split(" + "):
            found = OPTION.match(part.strip())
            kind, days = found["kind"], int(found["days"] or 0)
            rows.append({
                "owner": plan.get("csm_id"),
                "account_id": plan["account_id"],
                "account": plan.get("name") or plan["account_id"],
                "play": kind.replace("_", " "),
                "due": (as_of + timedelta(days=days + due_within_days)).isoformat(),
                "expected_lift_points": round(100 * float(plan["recommended_lift"]), 1),
                "expected_arr_saved": round(float(plan["recommended_arr_saved"])),
                "reason": plan.get("top_risk_1"),
                "plan": str(plan["recommended"]).replace("_", " "),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


TASK_COLUMNS = ["owner", "account_id", "account", "play", "due", "expected_lift_points",
                "expected_arr_saved", "reason", "plan"]  # fmt: skip


def _body(task: pd.DataFrame, currency: str) -> pd.Series:
    return (
        "Why: " + task["reason"].fillna("-").astype(str)
        + ". Plan: " + task["plan"].astype(str)
        + f"; expected lift {task['expected_lift_points'].map('{:+.1f}'.format)} points, "
        + "ARR saved " + currency + task["expected_arr_saved"].map("{:,.0f}".format) + "."
    )  # fmt: skip


def salesforce_tasks(task: pd.DataFrame, currency: str = "$") -> pd.DataFrame:
    """The tasks as Salesforce Task rows (Data Import Wizard / Data Loader)."""
    return pd.DataFrame({
        "Subject": task["play"].str.capitalize() + ": " + task["account"].astype(str),
        "Description": _body(task, currency),
        "ActivityDate": task["due"],
        "OwnerId": task["owner"],
        "WhatId": task["account_id"],
        "Status": "Not Started",
        "Priority": "High",
    })  # fmt: skip


def hubspot_tasks(task: pd.DataFrame, currency: str = "$") -> pd.DataFrame:
    """The tasks as HubSpot task rows (the import's internal property names)."""
    return pd.DataFrame({
        "hs_task_subject": task["play"].str.capitalize() + ": " + task["account"].astype(str),
        "hs_task_body": _body(task, currency),
        "hs_timestamp": task["due"],
        "hubspot_owner_id": task["owner"],
        "company_id": task["account_id"],
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH",
    })  # fmt: skip


def account_fields(scores: pd.DataFrame) -> pd.DataFrame:
    """The score as account fields a CRM keeps: health, band, win probability, ARR at risk,
    priority and the top reasons in words."""
    keep = ["account_id", "health", "band", "win_probability", "arr_at_risk", "priority",
            "top_risk_1", "top_risk_2", "top_risk_3", "top_strength_1",
            "expected_renewal_arr", "as_of"]  # fmt: skip
    return scores[[c for c in keep if c in scores]].sort_values("priority")
