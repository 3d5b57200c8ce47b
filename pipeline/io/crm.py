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

from features.base import spoken

OPTION = re.compile(r"^(?P<kind>.+?)(?: \+(?P<days>\d+)d)?$")  # "training +30d" → 30 days on


def tasks(
    plans: pd.DataFrame, scores: pd.DataFrame, as_of: date, due_within_days: int
) -> pd.DataFrame:
    """One task per play of every funded plan: owner, account, play in words, due date (the
    play's start, plus ``due_within_days`` to do it), the plan's expected lift and ARR saved,
    and the account's top risk as the reason. Ordered by the account's priority."""
    funded = plans[plans["arm"] == "plan"].merge(
        scores[[c for c in ("account_id", "name", "csm_name", "priority", "top_risk_1")
                if c in scores]],
        on="account_id", how="left",
    )  # fmt: skip
    rows = []
    for plan in funded.sort_values(["priority", "account_id"]).to_dict(orient="records"):
        for part in str(plan["recommended"]).split(" + "):
            found = OPTION.match(part.strip())
            kind, days = found["kind"], int(found["days"] or 0)
            rows.append({
                "owner": plan.get("csm_id"),
                "owner_name": plan.get("csm_name") or plan.get("csm_id"),
                "account_id": plan["account_id"],
                "account": plan.get("name") or plan["account_id"],
                "play": spoken(kind),
                "due": (as_of + timedelta(days=days + due_within_days)).isoformat(),
                "expected_lift_points": round(100 * float(plan["recommended_lift"]), 1),
                "expected_arr_saved": round(float(plan["recommended_arr_saved"])),
                "reason": plan.get("top_risk_1"),
                "plan": spoken(plan["recommended"]),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


TASK_COLUMNS = ["owner", "owner_name", "account_id", "account", "play", "due",
                "expected_lift_points", "expected_arr_saved", "reason", "plan"]  # fmt: skip


def _body(task: pd.DataFrame, currency: str) -> pd.Series:
    """Why, the plan, its expected lift and ARR saved: one line per task."""
    lift = task["expected_lift_points"].map("{:+.1f}".format).astype(str)
    saved = task["expected_arr_saved"].map("{:,.0f}".format).astype(str)
    return (
        "Why: " + task["reason"].fillna("-").astype(str)
        + ". Plan: " + task["plan"].astype(str)
        + "; expected lift " + lift + " points, ARR saved " + currency + saved + "."
    )  # fmt: skip


# each CRM's import columns for: subject, body, due date, owner, account, status, priority
SALESFORCE = ("Subject", "Description", "ActivityDate", "OwnerId", "WhatId", "Status",
              "Priority", "Not Started", "High")  # fmt: skip
HUBSPOT = ("hs_task_subject", "hs_task_body", "hs_timestamp", "hubspot_owner_id", "company_id",
           "hs_task_status", "hs_task_priority", "NOT_STARTED", "HIGH")  # fmt: skip


def crm_tasks(task: pd.DataFrame, shape: tuple[str, ...], currency: str = "$") -> pd.DataFrame:
    """The tasks in one CRM's import columns (:data:`SALESFORCE`, :data:`HUBSPOT`)."""
    subject, body, due, owner, account, status, priority, not_started, high = shape
    return pd.DataFrame({
        subject: task["play"].str.capitalize() + ": " + task["account"].astype(str),
        body: _body(task, currency),
        due: task["due"],
        owner: task["owner"],
        account: task["account_id"],
        status: not_started,
        priority: high,
    })  # fmt: skip


def account_fields(scores: pd.DataFrame) -> pd.DataFrame:
    """The score as account fields a CRM keeps: health, band, win probability, ARR at risk,
    priority and the top reasons in words."""
    keep = ["account_id", "health", "band", "win_probability", "arr_at_risk", "priority",
            "top_risk_1", "top_risk_2", "top_risk_3", "top_strength_1",
            "expected_renewal_arr", "as_of"]  # fmt: skip
    return scores[[c for c in keep if c in scores]].sort_values("priority")
