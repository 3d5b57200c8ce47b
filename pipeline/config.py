"""One typed, frozen config object from ``params.yaml`` plus ``--set`` overrides.

This is the only module that reads the YAML and the environment. Stage functions receive the
section they need (``params.data``, ``params.synthetic`` …), never a dict.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.config import FeaturesConfig, PrebuiltTable
from models.config import EffectsConfig, PlanConfig, ScoreConfig, TrainConfig
from pipeline.errors import InputError

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(InputError):
    """Params file or override is invalid; the message names the dotted key path."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Section):
    """Where the raw tables live and how their names map onto the data contract."""

    raw_dir: Path = Path("data/raw")
    oracle_dir: Path = Path("data/oracle")
    source: Literal["auto", "parquet", "csv", "duckdb", "table"] = "auto"
    duckdb_path: Path | None = None
    cutoff: date | None = None
    # a timestamp this many days past the data's end (or an event before its start) is refused
    max_outlier_days: int = Field(default=366, ge=1)
    tables: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)
    prebuilt: PrebuiltTable = Field(default_factory=PrebuiltTable)

    @model_validator(mode="after")
    def _source_needs_path(self) -> DataConfig:
        if self.source == "duckdb" and self.duckdb_path is None:
            raise ValueError("source 'duckdb' needs data.duckdb_path (the database file)")
        if self.source == "table" and self.prebuilt.path is None:
            raise ValueError("source 'table' needs data.prebuilt.path (the snapshot table)")
        return self


class SegmentSpec(_Section):
    """One customer segment of the synthetic world."""

    share: float = Field(gt=0)
    arr_median: float = Field(gt=0)
    arr_sigma: float = Field(ge=0)
    seat_price: float = Field(gt=0)
    terms: dict[int, float]
    renewal_base: float

    @field_validator("terms")
    @classmethod
    def _terms_are_months(cls, terms: dict[int, float]) -> dict[int, float]:
        if not terms:
            raise ValueError("at least one contract term (months: weight) is needed")
        bad = [m for m in terms if m not in (1, 3, 6, 12, 24, 36)]
        if bad:
            raise ValueError(f"contract terms must be 1, 3, 6, 12, 24 or 36 months, got {bad}")
        if any(w <= 0 for w in terms.values()):
            raise ValueError("term weights must be positive")
        return terms


def _default_segments() -> dict[str, SegmentSpec]:
    return {
        "smb": SegmentSpec(
            share=0.6,
            arr_median=9_000,
            arr_sigma=0.55,
            seat_price=600,
            terms={1: 0.4, 12: 0.6},
            renewal_base=0.85,
        ),
        "mid_market": SegmentSpec(
            share=0.3,
            arr_median=48_000,
            arr_sigma=0.5,
            seat_price=800,
            terms={12: 0.85, 24: 0.15},
            renewal_base=1.3,
        ),
        "enterprise": SegmentSpec(
            share=0.1,
            arr_median=240_000,
            arr_sigma=0.6,
            seat_price=1_000,
            terms={12: 0.6, 24: 0.25, 36: 0.15},
            renewal_base=1.55,
        ),
    }


class SyntheticConfig(_Section):
    """Scale and shape of the synthetic B2B world written by ``healthscore data``."""

    seed: int = 42
    accounts: int = Field(default=10000, ge=10)
    end_date: date = date(2026, 11, 1)
    history_months: int = Field(default=36, ge=6, le=120)
    prehistory_months: int = Field(default=24, ge=0, le=120)
    segments: dict[str, SegmentSpec] = Field(default_factory=_default_segments)
    accounts_per_csm: int = Field(default=60, ge=1)
    csm_capacity_per_month: int = Field(default=3, ge=0)
    usage_sessions_per_seat: float = Field(default=3.0, gt=0)
    chunk_accounts: int = Field(default=5000, ge=100)
    format: Literal["parquet", "csv"] = "parquet"


class MlflowConfig(_Section):
    """Where runs are tracked and the model registered, and the alias the serving version holds."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "healthscore"
    model_name: str = "healthscore"
    alias: str = "champion"


class ReportConfig(_Section):
    """The CS leader's HTML report (``healthscore report``)."""

    currency: str = "$"
    page_rows: int = Field(default=50, ge=5, le=1000)
    chunk_accounts: int = Field(default=2000, ge=10)
    history_runs: int = Field(default=12, ge=1)
    activity_days: int = Field(default=180, ge=0)
    activity_items: int = Field(default=8, ge=0)
    backfill_runs: int = Field(default=2, ge=0)


class ScoreParams(ScoreConfig):
    """The ``score`` section: the scoring settings the models use, and the freshness check."""

    # an as-of date up to this many days after the data's end is scored; later ones are refused
    # (healthscore score --allow-stale to score them anyway)
    stale_after_days: int = Field(default=3, ge=0)


PUBLISH_URL_ENV = "HEALTHSCORE_PUBLISH_URL"
WEBHOOK_URL_ENV = "HEALTHSCORE_WEBHOOK_URL"


class NotifyParams(_Section):
    """The ``notify`` section: per-CSM digests of a scoring run's alerts, to a webhook."""

    # Slack incoming webhook or any URL taking JSON; null: a dry run (payloads written only)
    webhook_url: str | None = None
    style: Literal["slack", "json"] = "slack"  # Slack blocks, or the digest as plain JSON
    max_accounts: int = Field(default=10, ge=1)  # accounts per digest, by priority
    timeout_s: int = Field(default=10, ge=1)
    retries: int = Field(default=3, ge=0)  # on connection errors, 429 and 5xx, with backoff


class PublishParams(_Section):
    """The ``publish`` section: the database a scoring run is written to (SQLAlchemy URL)."""

    # null: an embedded DuckDB file, output_dir/healthscore.duckdb; or any SQLAlchemy URL, e.g.
    # postgresql+psycopg://user@host/db
    url: str | None = None


class TasksParams(_Section):
    """The ``tasks`` section: plays as CRM tasks, written as files and, with credentials, pushed."""

    # push the tasks live into this CRM when its credentials are in the environment
    # (HUBSPOT_ACCESS_TOKEN; SALESFORCE_INSTANCE_URL and SALESFORCE_SESSION_ID); null: files only
    push: Literal["hubspot", "salesforce"] | None = None
    # the data's account and CSM ids are the CRM's own (exported from it): send them as the
    # task's account and owner; false: tasks are created unassigned, the account in the subject
    crm_ids: bool = False
    hubspot_host: str | None = None  # null: HubSpot's public API; a proxy's URL otherwise
    # the score written onto each account's record too (needs crm_ids): healthscore's field →
    # the CRM's (null: healthscore_health … in HubSpot, Healthscore_Health__c … in Salesforce)
    fields: dict[str, str] | None = None
    retries: int = Field(default=3, ge=0)  # on connection errors, 429 and 5xx, with backoff


class RecalibrateParams(_Section):
    """The ``recalibrate`` section: correcting the champion from renewals closed since training."""

    # the fewest renewals and non-renewals each (since training) to fit the correction from
    min_rarer_outcome: int = Field(default=30, ge=5)


class Params(_Section):
    """The whole configuration; every path read or written comes from here."""

    output_dir: Path = Path("outputs")
    data: DataConfig = Field(default_factory=DataConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    score: ScoreParams = Field(default_factory=ScoreParams)
    recalibrate: RecalibrateParams = Field(default_factory=RecalibrateParams)
    publish: PublishParams = Field(default_factory=PublishParams)
    notify: NotifyParams = Field(default_factory=NotifyParams)
    tasks: TasksParams = Field(default_factory=TasksParams)
    effects: EffectsConfig = Field(default_factory=EffectsConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid params ({source}):"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "extra inputs are not permitted (unknown key; check its spelling)"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and a YAML-parsed value.

    Raises:
        ConfigError: the override has no ``=`` or an empty key.
    """
    key, sep, raw = override.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or any(not p for p in parts):
        raise ConfigError(f"--set expects dotted.key=value, got {override!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc})") from exc
    return parts, value


def _apply_override(tree: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    head, *rest = parts
    if not rest:
        return {**tree, head: value}
    child = tree.get(head, {})
    if not isinstance(child, dict):
        raise ConfigError(f"--set {'.'.join(parts)}: {head} is a value, not a section")
    return {**tree, head: _apply_override(child, rest, value)}


def notebook_params(path: Path | str, overrides: list[str] | None = None) -> Params:
    """:func:`load_params` for a notebook. Paths in params.yaml are relative to the repository
    root and Jupyter starts in ``notebooks/``, so a relative params file read from there first
    moves the working directory up to the root."""
    if Path.cwd().name == "notebooks" and not Path(path).is_absolute():
        os.chdir(Path.cwd().parent)
    return load_params(path, overrides)


def load_params(path: Path | str | None = None, overrides: list[str] | None = None) -> Params:
    """Read params.yaml, apply ``--set`` overrides and the environment, validate once.

    ``MLFLOW_TRACKING_URI`` in the environment overrides ``mlflow.tracking_uri`` and
    ``HEALTHSCORE_PUBLISH_URL`` overrides ``publish.url`` and ``HEALTHSCORE_WEBHOOK_URL``
    ``notify.webhook_url``; an explicit ``--set`` wins over both.

    Raises:
        ConfigError: missing file, bad YAML, unknown key or bad value, named by dotted path.
    """
    path = Path(path) if path is not None else DEFAULT_PARAMS
    tree: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        tree = loaded
    elif path != DEFAULT_PARAMS:
        raise ConfigError(f"params file not found: {path}")

    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if env_uri:
        tree = _apply_override(tree, ["mlflow", "tracking_uri"], env_uri)
    for env, key in ((PUBLISH_URL_ENV, ["publish", "url"]),
                     (WEBHOOK_URL_ENV, ["notify", "webhook_url"])):  # fmt: skip
        if os.environ.get(env):  # secrets stay out of params.yaml
            tree = _apply_override(tree, key, os.environ[env])
    for override in overrides or []:
        tree = _apply_override(tree, *parse_override(override))

    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(path))) from None


def flatten(params: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted key → value, for logging params (MLflow) and printing the effective config."""
    flat: dict[str, Any] = {}
    for name, value in params.model_dump(mode="json").items():
        _flatten_into(flat, f"{prefix}{name}", value)
    return flat


def _flatten_into(flat: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and value:
        for sub, item in value.items():
            _flatten_into(flat, f"{key}.{sub}", item)
    else:
        flat[key] = value
