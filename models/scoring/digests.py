"""What each CSM hears after a scoring run: their accounts whose health fell or band worsened,
with the change, the top reasons in plain words and the recommended play."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.base import spoken
from models.interventions.plans import BUSINESS_AS_USUAL

UNASSIGNED = "(no CSM)"


@dataclass(frozen=True)
class Digest:
    """One CSM's digest: the accounts to look at, most urgent (highest priority) first."""

    csm_id: str
    as_of: str
    accounts: list[dict[str, object]]
    csm_name: str | None = None  # where the accounts table gives one


def csm_digests(
    scores: pd.DataFrame,
    alerts: pd.DataFrame,
    plans: pd.DataFrame | None,
    as_of: str,
    max_accounts: int = 10,
    reasons: int = 2,
) -> list[Digest]:
    """One digest per CSM with an alert, accounts ordered by priority (at most
    ``max_accounts``; ``more`` on the first account says how many were left out).

    Each account: ``account_id``, ``name`` (the id when there is none), ``health`` and
    ``health_previous``, ``band`` and ``band_previous``, ``reason`` (why it alerted),
    ``reasons`` (the top risks in plain words) and ``play`` (the recommended play, or None).
    """
    if alerts.empty:
        return []
    known = ("name", "csm_id", "csm_name")
    columns = ["account_id", "priority", *(c for c in known if c in scores)]
    risks = [f"top_risk_{k}" for k in range(1, reasons + 1) if f"top_risk_{k}" in scores]
    merged = alerts.drop(columns=["priority", "arr"], errors="ignore").merge(
        scores[columns + risks], on="account_id", how="left"
    )
    if plans is not None and not plans.empty:
        play = plans["recommended"].where(plans["recommended"].notna(), plans["best_plan"])
        merged = merged.merge(plans.assign(play=play)[["account_id", "play"]], how="left")
    merged["csm"] = merged["csm_id"].fillna(UNASSIGNED) if "csm_id" in merged else UNASSIGNED
    out = []
    for csm, part in merged.sort_values(["priority", "account_id"]).groupby("csm", sort=True):
        rows = []
        for r in part.head(max_accounts).to_dict(orient="records"):
            rows.append({
                "account_id": str(r["account_id"]),
                "name": _text(r.get("name")) or str(r["account_id"]),
                "health": int(r["health"]),
                "health_previous": None if pd.isna(r.get("health_previous")) else
                int(r["health_previous"]),
                "band": str(r["band"]),
                "band_previous": _text(r.get("band_previous")),
                "reason": _text(r.get("reason")),
                "reasons": [t for t in (_text(r.get(k)) for k in risks) if t],
                "play": _play(r.get("play")),
            })  # fmt: skip
        if len(part) > max_accounts:
            rows[0]["more"] = len(part) - max_accounts
        names = part["csm_name"].dropna() if "csm_name" in part else part["csm"].iloc[:0]
        out.append(Digest(str(csm), as_of, rows, str(names.iloc[0]) if len(names) else None))
    return out


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _play(value: object) -> str | None:
    """A plan in words: "exec_call + training" reads "exec call + training"; none for doing
    nothing new."""
    text = _text(value)
    if not text or text == BUSINESS_AS_USUAL:
        return None
    return spoken(text)
