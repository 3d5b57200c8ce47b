"""The input data contract: twelve tables keyed by ``account_id``, declared once.

The reader validates against these specs, the synthetic world writes them, the README documents
them. Only ``accounts`` and ``contracts`` are required; a missing optional table yields no
features of its family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "timestamp", "number", "integer", "boolean", "rating"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the contract: its name, kind, whether it is required, what it means."""

    name: str
    kind: Kind
    required: bool = True
    description: str = ""
    scheduled: bool = False  # a date set in advance (contract end, invoice due): not an event


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract: its columns, key and time column, and whether it is required."""

    name: str
    columns: tuple[ColumnSpec, ...]
    required: bool = False
    key: tuple[str, ...] = ()
    time_column: str | None = None
    description: str = ""

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Names of the columns a file must have."""
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of every declared column, in order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The spec of the declared column ``name``."""
        return next(c for c in self.columns if c.name == name)


def _c(
    name: str, kind: Kind, required: bool = True, description: str = "", scheduled: bool = False
) -> ColumnSpec:
    return ColumnSpec(name, kind, required, description, scheduled)


ACCOUNT_ID = _c("account_id", "string", description="the account key")

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "accounts",
            (
                ACCOUNT_ID,
                _c("name", "string"),
                _c("segment", "string"),
                _c("created_at", "timestamp"),
                _c("industry", "string", False),
                _c("region", "string", False),
                _c("csm_id", "string", False),
                _c("csm_name", "string", False, "the CSM's name as the team knows them"),
                _c("tier", "string", False),
            ),
            required=True,
            key=("account_id",),
            time_column="created_at",
            description="one row per customer account",
        ),
        TableSpec(
            "contracts",
            (
                _c("contract_id", "string"),
                ACCOUNT_ID,
                _c("start_date", "timestamp", scheduled=True),
                _c("end_date", "timestamp", scheduled=True),
                _c("arr", "number", description="annual recurring revenue, ≥ 0"),
                _c("seats", "integer", False),
                _c("renewed", "boolean", False, "outcome where known; else derived"),
                _c("renewal_arr", "number", False),
            ),
            required=True,
            key=("contract_id",),
            time_column="start_date",
            description="one row per contract term; end_date after start_date",
        ),
        TableSpec(
            "usage_events",
            (
                ACCOUNT_ID,
                _c("ts", "timestamp"),
                _c("event_type", "string", description="discovered from the data"),
                _c("user_id", "string", False),
                _c("quantity", "number", False),
            ),
            time_column="ts",
            description="raw product events or daily aggregates",
        ),
        TableSpec(
            "support_tickets",
            (
                _c("ticket_id", "string"),
                ACCOUNT_ID,
                _c("opened_at", "timestamp"),
                _c("closed_at", "timestamp", False),
                _c("priority", "string", False),
                _c("csat", "number", False),
            ),
            key=("ticket_id",),
            time_column="opened_at",
        ),
        TableSpec(
            "surveys",
            (
                ACCOUNT_ID,
                _c("sent_at", "timestamp"),
                _c("contact_id", "string", False),
                _c("responded_at", "timestamp", False),
                _c("score", "number", False, "NPS 0–10; empty when not answered"),
            ),
            time_column="sent_at",
        ),
        TableSpec(
            "activities",
            (
                ACCOUNT_ID,
                _c("ts", "timestamp"),
                _c("type", "string", description="email, meeting, call, qbr, ebr …"),
                _c("direction", "string", False, "outbound = conversations we start"),
                _c("contact_id", "string", False),
                _c("responded", "boolean", False),
            ),
            time_column="ts",
        ),
        TableSpec(
            "contacts",
            (
                _c("contact_id", "string"),
                ACCOUNT_ID,
                _c("persona", "string"),
                _c("created_at", "timestamp"),
                _c("left_at", "timestamp", False),
            ),
            key=("contact_id",),
            time_column="created_at",
        ),
        TableSpec(
            "sentiment",
            (
                ACCOUNT_ID,
                _c("ts", "timestamp"),
                _c("rating", "rating", description="1–5, or red/yellow/green read as 1/3/5"),
                _c("note", "string", False),
            ),
            time_column="ts",
        ),
        TableSpec(
            "invoices",
            (
                ACCOUNT_ID,
                _c("due_date", "timestamp", scheduled=True),
                _c("amount", "number"),
                _c("paid_date", "timestamp", False),
            ),
            time_column="due_date",
        ),
        TableSpec(
            "opportunities",
            (
                ACCOUNT_ID,
                _c("created_at", "timestamp"),
                _c("type", "string", description="upsell / cross-sell / renewal"),
                _c("amount", "number"),
                _c("closed_at", "timestamp", False),
                _c("stage", "string", False),
            ),
            time_column="created_at",
        ),
        TableSpec(
            "interventions",
            (
                ACCOUNT_ID,
                _c("ts", "timestamp"),
                _c("type", "string", description="exec_call, strategic_review, training …"),
                _c("cost", "number", False),
                _c("risk_flag", "string", False),
                _c("reason", "string", False),
                _c("decided_by", "string", False),
                _c(
                    "source",
                    "string",
                    False,
                    "who chose the play: csm (their own), recommended (the plan), randomised",
                ),
                _c(
                    "propensity",
                    "number",
                    False,
                    "the probability the deciding policy gave this play (empty for a CSM's own)",
                ),
            ),
            time_column="ts",
            description="the treatment log with its decision context",
        ),
        TableSpec(
            "assignments",
            (
                ACCOUNT_ID,
                _c("ts", "timestamp", description="when the policy assigned the arm"),
                _c("arm", "string", description="a play type, or none for a held-out control"),
                _c("propensity", "number", description="the probability the policy gave the arm"),
                _c("source", "string", description="recommended or randomised"),
            ),
            time_column="ts",
            description="every arm a policy assigned, the no-play controls included (experiments)",
        ),
    )
}

# tables that log what happened over time; the earliest of their rows starts the event history
EVENT_LOGS = (
    "usage_events",
    "support_tickets",
    "surveys",
    "activities",
    "sentiment",
    "interventions",
)
REQUIRED_TABLES: tuple[str, ...] = tuple(name for name, spec in TABLES.items() if spec.required)
