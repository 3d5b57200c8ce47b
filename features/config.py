"""Settings of the spine and the feature families: the ``features`` section of params.yaml.

Defined here, beside the code that uses them, so ``features/`` needs nothing from ``pipeline/``;
``pipeline.config`` composes them into the whole params object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UsageFeatures(_Section):
    """Usage family: the key product features (pinned, or the ``top_key_events`` most used)."""

    key_event_types: list[str] = Field(default_factory=list)
    top_key_events: int = Field(default=2, ge=1)


class EngagementFeatures(_Section):
    """Engagement family: which activity types are meetings and reviews, and the answer lag."""

    meeting_types: list[str] = Field(default_factory=lambda: ["meeting", "qbr", "ebr"])
    review_types: list[str] = Field(default_factory=lambda: ["qbr", "ebr"])
    answer_lag_days: int = Field(default=7, ge=0)


class SupportFeatures(_Section):
    """Support family: the ticket priorities that count as high."""

    high_priorities: list[str] = Field(default_factory=lambda: ["high", "urgent"])


class RelationshipFeatures(_Section):
    """Relationships family: the key personas and the contacts expected per persona by segment."""

    key_personas: list[str] = Field(default_factory=lambda: ["champion", "decision_maker"])
    footprint: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {
            "default": {"decision_maker": 1, "champion": 1, "admin": 1, "power_user": 1}
        }
    )


class OpportunityFeatures(_Section):
    """Opportunities family: which opportunity types are expansion and which stages won or lost."""

    expansion_types: list[str] = Field(default_factory=lambda: ["upsell", "cross-sell"])
    won_stages: list[str] = Field(default_factory=lambda: ["closed_won", "won"])
    lost_stages: list[str] = Field(default_factory=lambda: ["closed_lost", "lost"])


class PrebuiltTable(_Section):
    """A table with one row per snapshot (``data.source: table``): which column is what.

    Every other column is a feature: numbers as they are, numbers written as text (blanks
    included) as numbers, booleans as 0/1, text with few distinct values as categories. Text
    that looks like an identifier or free text, dates and constant columns are left out, each
    named in the log.
    """

    path: Path | None = None  # the training table (Parquet or CSV)
    score_path: Path | None = None  # the table ``score`` reads (default: ``path``)
    id_column: str = "account_id"
    label_column: str = "renewed"
    churn_value: str | int | float | bool | None = None  # null: the label is 1 = renewed, 0 = not
    arr_column: str | None = None  # null: every row counts as 1 in ARR-weighted figures
    # the ARR the renewal came in at (label side, never a feature): churn, shrink or grow;
    # null: the win model alone
    renewal_arr_column: str | None = None
    as_of_column: str | None = None  # null: no time; validation holds out whole ids instead
    drop_columns: list[str] = Field(default_factory=list)
    components: dict[str, str] = Field(default_factory=dict)  # column -> component (else profile)
    max_categories: int = Field(default=50, ge=2)


class FeaturesConfig(_Section):
    """Snapshot grid, labels and the feature families' settings.

    The grid is the same one the synthetic world writes its oracle on.
    """

    engine: Literal["duckdb", "spark"] = "duckdb"
    frequency: Literal["weekly", "monthly", "quarterly"] = "monthly"
    horizon_days: int = Field(default=180, ge=1)
    grace_days: int = Field(default=30, ge=0)
    warmup_days: int = Field(default=90, ge=0)
    windows: list[int] = Field(default_factory=lambda: [7, 30, 90])
    usage: UsageFeatures = Field(default_factory=UsageFeatures)
    engagement: EngagementFeatures = Field(default_factory=EngagementFeatures)
    support: SupportFeatures = Field(default_factory=SupportFeatures)
    relationships: RelationshipFeatures = Field(default_factory=RelationshipFeatures)
    opportunities: OpportunityFeatures = Field(default_factory=OpportunityFeatures)
    # values that become columns, pinned ("usage_events.event_type": [...]); empty: discovered
    # from the data. Scoring pins the vocabulary the model was trained on.
    vocabulary: dict[str, list[str]] = Field(default_factory=dict)
    # scoring refuses when fewer than this share of an event log's values the model was trained
    # on appear in the longest window before the as-of date (renamed event types)
    min_vocabulary_share: float = Field(default=0.5, ge=0, le=1)

    @field_validator("windows")
    @classmethod
    def _windows_positive(cls, windows: list[int]) -> list[int]:
        if not windows or any(w <= 0 for w in windows):
            raise ValueError(f"windows must be positive day counts, got {windows}")
        return sorted(set(windows))
