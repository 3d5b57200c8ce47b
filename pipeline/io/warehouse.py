"""The database a scoring run is published to: one SQL layer (SQLAlchemy Core) for any URL.

Tables (``SCHEMA_VERSION`` recorded in ``healthscore_schema``):

- ``account_health``: one row per account and as-of date (the history), keyed by both;
- ``account_health_latest``: a view of each account's row on the latest date published;
- ``account_drivers``: the risks and strengths in plain words, per account and date;
- ``account_plays``: the plan per account and date (recommended play, lift, ARR saved, arm);
- ``alerts``: the accounts whose health fell or band worsened, per date.

A publish replaces the date's rows of every table in **one transaction**: a re-run leaves no
duplicate, and a failure half-way leaves the previous state whole (readers never see half a
run). The default target is an embedded DuckDB file; PostgreSQL (``postgresql+psycopg://…``)
and any SQLAlchemy database with a driver installed work the same way.
"""

from __future__ import annotations

import atexit
import functools
from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa

from pipeline.errors import InputError

SCHEMA_VERSION = 2  # 2: drivers say whether the team can act on them; alerts in words
LATEST_VIEW = "account_health_latest"
INSERT_CHUNK = 5000  # rows per INSERT statement (memory bound at scale)


class SchemaMismatch(InputError):
    """The database holds another schema version than this healthscore writes."""


def _metadata() -> sa.MetaData:
    md = sa.MetaData()

    def key() -> list[sa.Column]:
        return [sa.Column("account_id", sa.String, primary_key=True),
                sa.Column("as_of", sa.Date, primary_key=True)]  # fmt: skip

    sa.Table("healthscore_schema", md, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "account_health", md, *key(),
        *(sa.Column(n, sa.String) for n in ("name", "segment", "csm_id", "csm_name", "band",
                                           "model_version", "top_risk_1", "top_strength_1",
                                           "top_growth_1")),
        *(sa.Column(n, sa.Float) for n in ("arr", "win_probability", "win_probability_low",
                                          "win_probability_high", "arr_at_risk",
                                          "expected_renewal_arr", "expected_renewal_arr_low",
                                          "expected_renewal_arr_high", "expected_expansion_arr",
                                          "expected_contraction_arr", "p_expand", "p_contract",
                                          "value_of_acting")),
        *(sa.Column(n, sa.Integer) for n in ("health", "priority", "days_to_renewal")),
    )  # fmt: skip
    sa.Table(
        "account_drivers", md, *key(),
        # false: what the account is (its contract, size, segment), shown apart from the rest
        sa.Column("actionable", sa.Boolean, primary_key=True),
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("component", sa.String), sa.Column("text", sa.String),
        sa.Column("points", sa.Float),
    )  # fmt: skip
    sa.Table(
        "account_plays", md, *key(),
        *(sa.Column(n, sa.String) for n in ("recommended", "best_plan", "arm", "action")),
        *(sa.Column(n, sa.Float) for n in ("recommended_lift", "recommended_arr_saved",
                                          "recommended_cost", "lift", "arr_saved")),
        sa.Column("funded", sa.Boolean),
    )  # fmt: skip
    sa.Table(
        "alerts", md, *key(),
        sa.Column("health", sa.Integer), sa.Column("health_previous", sa.Float),
        sa.Column("band", sa.String), sa.Column("band_previous", sa.String),
        sa.Column("reason", sa.String), sa.Column("most_fell", sa.String),  # in words
        sa.Column("arr", sa.Float), sa.Column("priority", sa.Integer),
    )  # fmt: skip
    return md


METADATA = _metadata()
TABLES = ("account_health", "account_drivers", "account_plays", "alerts")


@dataclass(frozen=True)
class Published:
    """Rows written per table for one date, and where."""

    as_of: date
    rows: dict[str, int]
    url: str


def publish(url: str, as_of: date, frames: dict[str, pd.DataFrame]) -> Published:
    """Replace ``as_of``'s rows of each table in ``frames`` with its rows, in one transaction.

    Columns a table does not have are left out; columns it has that a frame lacks are NULL.
    Creates the tables, the view and the schema record on first use.

    Raises:
        SchemaMismatch: the database holds another schema version.
        KeyError: a frame names a table that is not in the schema.
    """
    engine = sa.create_engine(url)
    rows = {}
    try:
        with engine.begin() as conn:  # one transaction: all of the date, or none of it
            _prepare(conn)
            for name, frame in frames.items():
                table = METADATA.tables[name]
                conn.execute(table.delete().where(table.c.as_of == as_of))
                records = _records(table, frame.assign(as_of=as_of))
                for start in range(0, len(records), INSERT_CHUNK):
                    conn.execute(table.insert(), records[start : start + INSERT_CHUNK])
                rows[name] = len(records)
    finally:
        engine.dispose()
        if engine.dialect.name == "duckdb":
            _drop_duckdb_hook_at_exit()
    return Published(as_of, rows, engine.url.render_as_string(hide_password=True))


@functools.cache
def _drop_duckdb_hook_at_exit() -> None:
    """At exit, take duckdb_engine's ``TRY_CAST`` compiler off SQLAlchemy's ``TryCast`` class.

    Once SQLAlchemy's ORM is loaded (MLflow loads it), SQLAlchemy's classes outlive the
    interpreter's clearing of modules at exit, and that hook keeps duckdb_engine's module and,
    through it, duckdb's type constants alive past the moment duckdb's bindings (nanobind)
    count their objects: every run that published to DuckDB with MLflow loaded (``make all``,
    the tests) ended with a hundred lines of "nanobind: leaked …". Nothing leaked (the process
    was ending); without the hook the objects are freed in order and nothing is printed.
    """

    def drop() -> None:
        cast = getattr(sa.sql.elements, "TryCast", None)
        dispatcher = getattr(cast, "_compiler_dispatcher", None)
        if dispatcher is not None:
            dispatcher.specs.pop("duckdb", None)

    atexit.register(drop)


def _prepare(conn: sa.Connection) -> None:
    METADATA.create_all(conn)
    schema = METADATA.tables["healthscore_schema"]
    held = conn.execute(sa.select(schema.c.version)).scalars().all()
    if not held:
        conn.execute(schema.insert(), [{"version": SCHEMA_VERSION}])
    elif set(held) != {SCHEMA_VERSION}:
        raise SchemaMismatch(
            f"the database holds healthscore schema version {sorted(set(held))}; this version "
            f"writes {SCHEMA_VERSION}: publish to a new database (publish.url) or migrate it"
        )
    conn.execute(sa.text(
        f"CREATE OR REPLACE VIEW {LATEST_VIEW} AS SELECT * FROM account_health "
        "WHERE as_of = (SELECT max(as_of) FROM account_health)"
    ))  # fmt: skip


def _records(table: sa.Table, frame: pd.DataFrame) -> list[dict[str, object]]:
    columns = [c.name for c in table.columns if c.name in frame.columns]
    part = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [{k: _plain(v) for k, v in row.items()} for row in part.to_dict(orient="records")]


def _plain(value: object) -> object:
    """Numpy scalars as Python ones (drivers do not all take numpy types)."""
    return value.item() if hasattr(value, "item") else value
