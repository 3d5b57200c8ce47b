"""What every feature family shares: the engine it runs on, its catalog entries, SQL helpers.

Families are written once as SQL over two relations, ``spine`` (one row per snapshot, with its
window bounds as explicit columns: ``since_30d`` = as_of − 30 days) and the contract tables.
Window bounds live in the spine rather than in interval arithmetic, which keeps the SQL portable
and avoids DuckDB merging day and month intervals. Every join keeps only rows strictly before
``as_of``: that is the whole point-in-time guarantee, and the tests check it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

COMPONENTS = (
    "usage",
    "engagement",
    "support",
    "surveys",
    "sentiment",
    "relationships",
    "billing",
    "contract",
    "interventions",
    "profile",  # columns of a prebuilt snapshot table that no other component claims
)


class Engine(Protocol):
    """Where the SQL runs: DuckDB by default (see ``pipeline.engines``)."""

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make ``frame`` queryable as the relation ``name`` in later SQL."""

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` and return its result as a pandas frame."""


@dataclass(frozen=True)
class Feature:
    """One column of the feature table, as the catalog and the explanations describe it."""

    name: str
    family: str
    component: str
    description: str  # plain words; "{value}" is replaced by the account's value
    fill: float | None = 0.0  # value for snapshots with no rows: 0 for counts, None for unknown
    categorical: bool = False
    source_column: str | None = None  # prebuilt tables: the column of the team's table
    blank: str | None = None  # plain words for a blank value ("no earlier renewal")

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise ValueError(f"feature {self.name}: component {self.component!r} is unknown")


@dataclass(frozen=True)
class FamilyResult:
    """A family's features per (account_id, as_of) and their catalog entries."""

    family: str
    frame: pd.DataFrame
    features: tuple[Feature, ...] = field(default_factory=tuple)
    vocabulary: dict[str, list[str]] = field(default_factory=dict)  # what was discovered


def feature_maker(family: str, component: str, fill: float | None = 0.0) -> Callable[..., Feature]:
    """A constructor for one family's features: ``make(name, description, fill=…)``."""

    def make(
        name: str,
        description: str,
        fill: float | None = fill,
        categorical: bool = False,
        blank: str | None = None,
    ) -> Feature:
        return Feature(name, family, component, description, fill, categorical, blank=blank)

    return make


def spoken(value: object) -> str:
    """A name from the data (an event type, a persona, a play) as people read it:
    ``"dashboard_view"`` → ``"dashboard view"``."""
    return " ".join(re.sub(r"[_]+", " ", str(value)).split())


def slug(value: str) -> str:
    """A column-name-safe form of a value from the data (event types, personas, kinds)."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", str(value)).strip("_").lower()
    return text or "blank"


def sql_list(values: Iterable[str]) -> str:
    """A SQL IN-list of string literals (lower-cased; empty list matches nothing)."""
    items = [str(v).lower().replace("'", "''") for v in values]
    return ", ".join(f"'{v}'" for v in items) if items else "NULL"


def sql_literal(value: str) -> str:
    """A SQL string literal of ``value``, quotes doubled and case kept (unlike :func:`sql_list`)."""
    return "'" + str(value).replace("'", "''") + "'"


def days_between(earlier: str, later: str) -> str:
    """Fractional days from ``earlier`` to ``later`` (portable: epoch seconds)."""
    return f"CAST(epoch({later}) - epoch({earlier}) AS DOUBLE) / 86400"


def share(condition: str) -> str:
    """SQL for the share of rows where ``condition`` holds (a DOUBLE on every engine)."""
    return f"avg(CASE WHEN {condition} THEN CAST(1 AS DOUBLE) ELSE CAST(0 AS DOUBLE) END)"


def discover(
    engine: Engine,
    table: str,
    column: str,
    time_column: str,
    limit: int = 50,
    vocabulary: dict[str, list[str]] | None = None,
) -> list[str]:
    """Distinct values seen before the spine's last as_of, most frequent first.

    Event types, personas and intervention kinds come from the data, never from code; only rows
    before the last as_of count, so rows from the future cannot add columns. A vocabulary
    pinned for ``table.column`` (the model's, when scoring) is used as it is instead.
    """
    pinned = (vocabulary or {}).get(f"{table}.{column}")
    if pinned is not None:
        return list(pinned)
    frame = engine.query(
        f"SELECT {column} AS value, count(*) AS n FROM {table} "
        f"WHERE {column} IS NOT NULL AND {time_column} < (SELECT max(as_of) FROM spine) "
        f"GROUP BY 1 ORDER BY n DESC, value LIMIT {limit}"
    )
    return [str(v) for v in frame["value"]]
