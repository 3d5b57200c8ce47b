"""Read the raw tables at the edge and hold them to the data contract, out of core with DuckDB.

Every present table becomes a DuckDB view named after its contract table, with the contract's
column names and types, whatever the source called them:

- timestamps are ``TIMESTAMP`` in UTC (naive sources are read as UTC, zoned ones converted);
- numbers ``DOUBLE``, integers ``BIGINT``, booleans ``BOOLEAN``, strings ``VARCHAR``;
- ratings ``DOUBLE`` on 1–5 (red / yellow / green read as 1 / 3 / 5);
- optional columns the source lacks exist as typed ``NULL`` columns, so downstream code can rely
  on every contract column being there.

Validation runs as SQL over those views, so a table of tens of millions of rows is checked
without loading it into memory. The first problem found raises :class:`DataContractError`
naming the table, the column, how many rows, a few of them, and what was expected.

The reader fails closed: a file it cannot read, a required table with no rows, a table remapped
in ``data.tables`` that is not there, a number that is NaN or infinite are all refused. An
optional table with no rows is treated as absent. Timestamps that would move the calendar are
refused too, by a rule relative to the data itself, never the wall clock (a synthetic world or
a simulation legitimately runs ahead of today):

- any timestamp before 1970-01-02 (the epoch is what a blank or a zero becomes), or infinite;
- an event after the data's end by more than ``data.max_outlier_days``, where the data's end is
  the latest of every event column's *robust* latest time: its latest value once its last
  0.1 % of rows (at least one) are set aside. These are the columns :func:`data_end` reads
  (every timestamp that is not a scheduled date); with ``data.cutoff`` set, rows after the
  cutoff are not an error (the cutoff already ends the calendar and nothing after it is seen);
- an event-log row before the data's start by more than ``data.max_outlier_days``, the start
  being the earliest of every event log's robust earliest time (the rows :func:`data_start`
  reads).

Setting a column's own few extreme rows aside is what catches a stray row even in a small
table; taking the latest over every column is what keeps a small, sparse table (a few surveys a
year) from being judged on its own gaps: a row is refused only when *all* the data, bar a few
rows per column, ends (or starts) more than the margin away from it.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config import DataConfig
from pipeline.errors import InputError
from pipeline.io.schema import EVENT_LOGS, TABLES, ColumnSpec, TableSpec

EXAMPLES = 5
EPOCH_FLOOR = "1970-01-02"  # earlier timestamps are placeholders (a zero, a blank read as epoch)
TAIL_SHARE = 0.001  # each column's extreme rows set aside when finding the data's start and end
# errors DuckDB raises on a file it cannot read (a bad footer, bad bytes in a CSV …)
UNREADABLE = (duckdb.IOException, duckdb.InvalidInputException)
TRUE_WORDS = ("true", "t", "1", "1.0", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "0.0", "no", "n")
RATING_WORDS = {"red": 1.0, "amber": 3.0, "yellow": 3.0, "green": 5.0}
SQL_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
    "rating": "DOUBLE",
}


class DataContractError(InputError):
    """Input violates the data contract.

    Attributes:
        table: the contract table at fault.
        column: the contract column at fault, or None for a table-level problem.
        expected: what the contract expects, in words.
        examples: up to five offending rows (row number, key and the columns concerned).
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        problem: str,
        expected: str,
        examples: pd.DataFrame | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        self.expected = expected
        self.examples = examples
        where = f"{table}.{column}" if column else table
        message = f"{where}: {problem} (expected {expected})"
        if examples is not None and len(examples):
            rows = "; ".join(
                ", ".join(f"{k}={_show(v)}" for k, v in row.items())
                for row in examples.to_dict("records")
            )
            message += f"; e.g. {rows}"
        super().__init__(message)


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "<empty>"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class RawData:
    """The contract tables found, as typed DuckDB views on one connection."""

    connection: duckdb.DuckDBPyConnection
    present: tuple[str, ...]
    missing: tuple[str, ...]

    def has(self, table: str) -> bool:
        """Whether ``table`` was found (an optional table may be missing)."""
        return table in self.present

    def relation(self, table: str) -> duckdb.DuckDBPyRelation:
        """The typed view of ``table``, lazily evaluated by DuckDB.

        Raises:
            KeyError: ``table`` is not present; the message lists the missing tables.
        """
        if not self.has(table):
            raise KeyError(f"table {table!r} is not present (missing: {', '.join(self.missing)})")
        return self.connection.table(table)

    def frame(self, table: str) -> pd.DataFrame:
        """Materialise one table as pandas (fine for small tables and tests)."""
        return self.relation(table).df()

    def close(self) -> None:
        """Close the DuckDB connection; the views are gone with it."""
        self.connection.close()

    def __enter__(self) -> RawData:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    """The first row of a query, fetching it whole (DuckDB refuses new work on a half-read one)."""
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else ()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---- locating the sources ---------------------------------------------------------------------


def _check_remaps(data: DataConfig) -> None:
    unknown = sorted(set(data.tables) - set(TABLES))
    if unknown:
        raise DataContractError(
            unknown[0], None, "data.tables names an unknown contract table",
            f"one of {', '.join(TABLES)}",
        )  # fmt: skip
    for table, mapping in data.columns.items():
        if table not in TABLES:
            raise DataContractError(
                table, None, "data.columns names an unknown contract table",
                f"one of {', '.join(TABLES)}",
            )  # fmt: skip
        bad = sorted(set(mapping) - set(TABLES[table].column_names))
        if bad:
            raise DataContractError(
                table, bad[0], "data.columns maps a column the contract does not have",
                f"one of {', '.join(TABLES[table].column_names)}",
            )  # fmt: skip


@dataclass(frozen=True)
class _Source:
    """Where one table is read from: the FROM clause, and in words for messages."""

    sql: str
    where: str  # the file, folder of parts or database table
    kind: str  # Parquet, CSV or DuckDB


def _source(data: DataConfig, table: str) -> _Source | None:
    """How to read ``table``'s source, or None when the table is absent."""
    name = data.tables.get(table, table)
    if data.source == "duckdb":
        return _Source(f"db.{_q(name)}", f"table {name!r} in {data.duckdb_path}", "DuckDB")
    parquet_file = data.raw_dir / f"{name}.parquet"
    parquet_dir = data.raw_dir / name
    csv_file = data.raw_dir / f"{name}.csv"
    parquet: _Source | None = None
    if parquet_file.is_file():
        parquet = _Source(f"read_parquet({_lit(str(parquet_file))})", str(parquet_file), "Parquet")
    elif parquet_dir.is_dir() and any(parquet_dir.glob("*.parquet")):
        parts = str(parquet_dir / "*.parquet")
        parquet = _Source(f"read_parquet({_lit(parts)})", parts, "Parquet")
    csv = (
        _Source(
            f"read_csv({_lit(str(csv_file))}, header = true, all_varchar = true)",
            str(csv_file),
            "CSV",
        )
        if csv_file.is_file()
        else None
    )
    if data.source == "parquet":
        return parquet
    if data.source == "csv":
        return csv
    if parquet and csv:
        raise DataContractError(
            table, None, f"both {name}.parquet and {name}.csv are in {data.raw_dir}",
            "one file per table (or set data.source)",
        )  # fmt: skip
    return parquet or csv


def _looked_for(data: DataConfig, table: str) -> str:
    name = data.tables.get(table, table)
    if data.source == "duckdb":
        return f"table {name!r} in {data.duckdb_path}"
    files = {
        "parquet": f"{name}.parquet or {name}/*.parquet",
        "csv": f"{name}.csv",
    }.get(data.source, f"{name}.parquet, {name}/*.parquet or {name}.csv")
    return f"{files} in {data.raw_dir}"


def _absent(data: DataConfig, spec: TableSpec) -> None:
    """Refuse a table that is not found when it is required or was remapped by name."""
    looked = _looked_for(data, spec.name)
    if spec.name in data.tables:
        raise DataContractError(
            spec.name, None,
            f"data.tables maps {spec.name} to {data.tables[spec.name]!r}, which is not found "
            f"(looked for {looked})",
            "the remapped table to exist (fix or remove data.tables." + spec.name + ")",
        )  # fmt: skip
    if spec.required:
        raise DataContractError(
            spec.name, None, f"required table not found (looked for {looked})",
            "the table to be present (map its name in data.tables)",
        )  # fmt: skip


def _unreadable(table: str, source: _Source, exc: duckdb.Error) -> DataContractError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    expected = (
        "a readable DuckDB table" if source.kind == "DuckDB" else f"a readable {source.kind} file"
    )
    return DataContractError(table, None, f"cannot read {source.where}: {detail}", expected)


def _row_count(con: duckdb.DuckDBPyConnection, source: _Source) -> int:
    """Rows in the source (read from the footers for Parquet); the first read of the file."""
    (rows,) = _one(con, f"SELECT count(*) FROM {source.sql}")
    return int(rows)


def _connect(data: DataConfig) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if data.source == "duckdb":
        path = data.duckdb_path
        if path is None or not Path(path).is_file():
            raise DataContractError(
                "<source>", None, f"DuckDB database file not found: {path}",
                "an existing file at data.duckdb_path",
            )  # fmt: skip
        con.execute(f"ATTACH {_lit(str(path))} AS db (READ_ONLY)")
    elif not data.raw_dir.is_dir():
        raise DataContractError(
            "<source>", None, f"raw data folder not found: {data.raw_dir}",
            "a folder of Parquet or CSV files at data.raw_dir",
        )  # fmt: skip
    return con


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'db'"
    ).fetchall()
    return {r[0] for r in rows}


# ---- typing and checking ----------------------------------------------------------------------


def _typed(column: ColumnSpec, source: str) -> str:
    """SQL turning the source column into the contract's type (NULL where it does not parse)."""
    text = f"nullif(trim(CAST({source} AS VARCHAR)), '')"
    if column.kind == "string":
        return text
    if column.kind == "timestamp":
        return f"timezone('UTC', TRY_CAST({source} AS TIMESTAMPTZ))"
    if column.kind == "number":
        return f"TRY_CAST({source} AS DOUBLE)"
    if column.kind == "integer":
        return f"TRY_CAST(TRY_CAST({source} AS DOUBLE) AS BIGINT)"
    if column.kind == "boolean":
        true = ", ".join(_lit(w) for w in TRUE_WORDS)
        false = ", ".join(_lit(w) for w in FALSE_WORDS)
        return (
            f"CASE WHEN lower({text}) IN ({true}) THEN true "
            f"WHEN lower({text}) IN ({false}) THEN false END"
        )
    words = " ".join(f"WHEN {_lit(w)} THEN {v}" for w, v in RATING_WORDS.items())
    return f"CASE lower({text}) {words} ELSE TRY_CAST({text} AS DOUBLE) END"


@dataclass(frozen=True)
class _Check:
    column: str
    bad: str  # SQL predicate over the checked relation: true for an offending row
    problem: str
    expected: str
    shown: tuple[str, ...]


NUMERIC_KINDS = ("number", "integer", "rating")
EXPECTED_KIND = {
    "timestamp": "a date or timestamp (ISO 8601, UTC unless zoned)",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true/false (also 1/0, yes/no)",
    "rating": "a rating 1–5 or red/yellow/green",
}
NON_NEGATIVE = {
    "contracts": ("arr", "renewal_arr", "seats"),
    "invoices": ("amount",),
    "opportunities": ("amount",),
    "usage_events": ("quantity",),
    "interventions": ("cost",),
}
ORDERED = {  # (earlier, later): later must not precede earlier
    "support_tickets": (("opened_at", "closed_at"),),
    "contacts": (("created_at", "left_at"),),
    "surveys": (("sent_at", "responded_at"),),
}


def _checks(spec: TableSpec, present: set[str]) -> list[_Check]:
    """The contract's checks for one table, in the order they are reported."""
    key = spec.key or ("account_id",)
    checks: list[_Check] = []
    for col in spec.columns:
        if col.required:
            empty = f"src_{col.name} IS NULL OR trim(CAST(src_{col.name} AS VARCHAR)) = ''"
            checks.append(
                _Check(col.name, empty, "is empty", "a value in every row", (*key, col.name))
            )
    for col in spec.columns:
        if col.name not in present:
            continue
        src = f"src_{col.name}"
        if col.kind in NUMERIC_KINDS:
            # NaN and ±inf parse as doubles; they would score as NaN or break the models later
            value = f"TRY_CAST({src} AS DOUBLE)" if col.kind == "integer" else _q(col.name)
            checks.append(
                _Check(
                    col.name,
                    f"NOT isfinite({value})",
                    "is not a finite number",
                    f"{EXPECTED_KIND[col.kind]}, finite (not NaN or infinity)",
                    (*key, src),
                )
            )
        if col.kind != "string":
            unparsed = f"nullif(trim(CAST({src} AS VARCHAR)), '') IS NOT NULL"
            checks.append(
                _Check(
                    col.name,
                    f"{unparsed} AND {_q(col.name)} IS NULL",
                    "does not parse",
                    EXPECTED_KIND[col.kind],
                    (*key, src),
                )
            )
        if col.kind == "integer":
            number = f"TRY_CAST({src} AS DOUBLE)"
            checks.append(
                _Check(
                    col.name,
                    f"{number} <> round({number})",
                    "is not a whole number",
                    EXPECTED_KIND["integer"],
                    (*key, src),
                )
            )
        if col.kind == "rating":
            checks.append(
                _Check(
                    col.name,
                    f"{_q(col.name)} NOT BETWEEN 1 AND 5",
                    "is out of range",
                    EXPECTED_KIND["rating"],
                    (*key, src),
                )
            )
        if col.kind == "timestamp":
            checks.append(
                _Check(
                    col.name,
                    f"NOT isfinite({_q(col.name)}) OR {_q(col.name)} < TIMESTAMP '{EPOCH_FLOOR}'",
                    f"is before {EPOCH_FLOOR} or infinite",
                    f"a real date from {EPOCH_FLOOR} on (an earlier one is a placeholder: 0, "
                    "1900-01-01 …)",
                    (*key, src),
                )
            )
    checks.extend(_table_checks(spec, key))
    return checks


def _table_checks(spec: TableSpec, key: tuple[str, ...]) -> list[_Check]:
    """Checks that relate columns or ranges specific to one table."""
    checks: list[_Check] = []
    if spec.name == "contracts":
        checks.append(
            _Check(
                "end_date",
                "end_date <= start_date",
                "is not after start_date",
                "end_date > start_date",
                ("contract_id", "start_date", "end_date"),
            )
        )
    for name in NON_NEGATIVE.get(spec.name, ()):
        checks.append(_Check(name, f"{_q(name)} < 0", "is negative", f"{name} ≥ 0", (*key, name)))
    if spec.name == "surveys":
        checks.append(
            _Check(
                "score",
                "score NOT BETWEEN 0 AND 10",
                "is out of range",
                "an NPS score 0–10",
                ("account_id", "sent_at", "score"),
            )
        )
    for earlier, later in ORDERED.get(spec.name, ()):
        checks.append(
            _Check(
                later,
                f"{later} < {earlier}",
                f"is before {earlier}",
                f"{later} ≥ {earlier}",
                (*key, earlier, later),
            )
        )
    return checks


def _register(
    con: duckdb.DuckDBPyConnection, data: DataConfig, spec: TableSpec, source: str
) -> set[str]:
    """Create the checked relation and the typed view for one table; return columns present."""
    mapping = data.columns.get(spec.name, {})
    found = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    missing = [c for c in spec.required_columns if mapping.get(c, c) not in found]
    if missing:
        column = missing[0]
        hint = f"column {mapping.get(column, column)!r} (map yours in data.columns.{spec.name})"
        raise DataContractError(
            spec.name, column, f"required column is missing; found {', '.join(found)}", hint
        )
    present = {c.name for c in spec.columns if mapping.get(c.name, c.name) in found}
    select = ["row_number() OVER () AS _row"]
    for col in spec.columns:
        src = mapping.get(col.name, col.name)
        if col.name in present:
            select.append(f"{_q(src)} AS src_{col.name}")
            select.append(f"{_typed(col, _q(src))} AS {_q(col.name)}")
        else:
            select.append(f"NULL AS src_{col.name}")
            select.append(f"CAST(NULL AS {SQL_TYPES[col.kind]}) AS {_q(col.name)}")
    con.execute(
        f"CREATE VIEW {_q('_checked_' + spec.name)} AS SELECT {', '.join(select)} FROM {source}"
    )
    columns = ", ".join(_q(c.name) for c in spec.columns)
    con.execute(
        f"CREATE VIEW {_q(spec.name)} AS SELECT {columns} FROM {_q('_checked_' + spec.name)}"
    )
    return present


def _examples(
    con: duckdb.DuckDBPyConnection, relation: str, predicate: str, columns: tuple[str, ...]
) -> pd.DataFrame:
    shown = ", ".join(
        f"{c} AS {_q(c.removeprefix('src_'))}" if c.startswith("src_") else _q(c) for c in columns
    )
    return con.execute(
        f"SELECT _row AS row, {shown} FROM {relation} WHERE {predicate} "
        f"ORDER BY _row LIMIT {EXAMPLES}"
    ).df()


@dataclass(frozen=True)
class _Span:
    """Where one event timestamp column begins and ends, plainly and robustly (its first and
    last ``TAIL_SHARE`` of rows, at least one, set aside; None with too few rows)."""

    table: str
    column: str
    key: tuple[str, ...]
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    robust_first: pd.Timestamp | None
    robust_last: pd.Timestamp | None


def _span_sql(spec: TableSpec, present: set[str], rows: int) -> tuple[list[ColumnSpec], list[str]]:
    """The event timestamp columns of ``spec`` (those :func:`data_end` reads) and the aggregates
    measuring their spans, to run in the validation pass."""
    columns = [
        c for c in spec.columns if c.kind == "timestamp" and not c.scheduled and c.name in present
    ]
    rank = max(1, math.floor(TAIL_SHARE * rows)) + 1  # the first value not set aside
    # max(x, n) lists the n largest in order, [n] is the n-th: NULL when fewer than n rows
    aggregates = [
        f"min({q}), max({q}), min({q}, {rank})[{rank}], max({q}, {rank})[{rank}]"
        for q in (_q(c.name) for c in columns)
    ]
    return columns, aggregates


def _validate(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, present: set[str], rows: int
) -> list[_Span]:
    """Run the contract's checks on one table in one pass; return its event columns' spans."""
    relation = _q("_checked_" + spec.name)
    checks = _checks(spec, present)
    timed, measures = _span_sql(spec, present, rows)
    bad = [f"count(*) FILTER (WHERE coalesce(({c.bad}), false))" for c in checks]
    found = _one(con, f"SELECT {', '.join(bad + measures)} FROM {relation}")
    counts, measured = found[: len(checks)], found[len(checks) :]
    for check, count in zip(checks, counts, strict=True):
        if count:
            predicate = f"coalesce(({check.bad}), false)"
            raise DataContractError(
                spec.name,
                check.column,
                f"{count:,} row{'s' if count > 1 else ''} where {check.column} {check.problem}",
                check.expected,
                _examples(con, relation, predicate, check.shown),
            )
    if spec.key:
        keys = ", ".join(_q(k) for k in spec.key)
        dupes = con.execute(
            f"SELECT {keys}, count(*) AS rows FROM {_q(spec.name)} GROUP BY ALL "
            f"HAVING count(*) > 1 ORDER BY rows DESC, {keys} LIMIT {EXAMPLES}"
        ).df()
        if len(dupes):
            raise DataContractError(
                spec.name, spec.key[0], f"{len(dupes)}+ duplicated key value(s)",
                f"{', '.join(spec.key)} unique", dupes,
            )  # fmt: skip
    times = [None if t is None else pd.Timestamp(t) for t in measured]
    key = spec.key or ("account_id",)
    return [
        _Span(spec.name, col.name, key, *times[4 * i : 4 * i + 4]) for i, col in enumerate(timed)
    ]


def _validate_accounts_known(con: duckdb.DuckDBPyConnection, table: str) -> None:
    predicate = "account_id NOT IN (SELECT account_id FROM accounts)"
    relation = _q("_checked_" + table)
    (count,) = _one(con, f"SELECT count(*) FROM {relation} WHERE {predicate}")
    if count:
        raise DataContractError(
            table, "account_id", f"{count:,} rows whose account is not in accounts",
            "every account_id to exist in accounts",
            _examples(con, relation, predicate, ("account_id",)),
        )  # fmt: skip


# ---- timestamps that would move the calendar ---------------------------------------------------


def _event_log_time(table: str) -> str | None:
    return TABLES[table].time_column if table in EVENT_LOGS else None


def _validate_calendar(
    con: duckdb.DuckDBPyConnection, data: DataConfig, spans: list[_Span]
) -> None:
    """Refuse timestamps far past the data's end or far before its start (module docstring).

    The data's end is the latest robust end of every event column (what :func:`data_end`
    reads); its start the earliest robust start of every event log (what :func:`data_start`
    reads). Only a column whose plain extreme lies beyond the margin is read again.
    """
    margin = pd.Timedelta(days=data.max_outlier_days)
    ends = [span.robust_last for span in spans if span.robust_last is not None]
    if ends:
        end, bound = max(ends), max(ends) + margin
        for span in spans:
            if span.last is None or span.last <= bound:
                continue
            predicate = f"{_q(span.column)} > TIMESTAMP '{bound}'"
            if data.cutoff:  # rows after the cutoff are never seen: not an error
                predicate += f" AND {_q(span.column)} <= TIMESTAMP '{pd.Timestamp(data.cutoff)}'"
            _refuse_times(
                con, span, predicate,
                f"is more than {data.max_outlier_days} days after the bulk of the data, which "
                f"ends {end.date()}",
                f"{span.column} on or before {bound.date()}: fix the row(s), or set data.cutoff "
                "(later rows are then ignored) or raise data.max_outlier_days",
            )  # fmt: skip
    logs = [span for span in spans if span.column == _event_log_time(span.table)]
    starts = [span.robust_first for span in logs if span.robust_first is not None]
    if starts:
        start, bound = min(starts), min(starts) - margin
        for span in logs:
            if span.first is None or span.first >= bound:
                continue
            _refuse_times(
                con, span, f"{_q(span.column)} < TIMESTAMP '{bound}'",
                f"is more than {data.max_outlier_days} days before the bulk of the data, which "
                f"starts {start.date()}",
                f"{span.column} on or after {bound.date()}: fix the row(s) or raise "
                "data.max_outlier_days",
            )  # fmt: skip


def _refuse_times(
    con: duckdb.DuckDBPyConnection, span: _Span, predicate: str, problem: str, expected: str
) -> None:
    relation = _q("_checked_" + span.table)
    (count,) = _one(con, f"SELECT count(*) FROM {relation} WHERE {predicate}")
    if count:
        rows = f"{count:,} row{'s' if count > 1 else ''}"
        raise DataContractError(
            span.table, span.column, f"{rows} where {span.column} {problem}", expected,
            _examples(con, relation, predicate, (*span.key, span.column)),
        )  # fmt: skip


def read_raw(data: DataConfig, only: Collection[str] | None = None) -> RawData:
    """Locate every contract table, apply the remaps, validate everything.

    An optional table with no rows is treated as absent (in ``missing``), so downstream code
    behaves as when its file is not there. ``only``: read and validate just these tables and
    ``accounts`` (a step that needs a few of them, on data the features were built from; the
    calendar check then spans those tables); the others are neither present nor missing.

    Raises:
        DataContractError: on the first problem, checked in a fixed order (tables in contract
            order; per table: found (or else not required nor remapped), readable, has rows
            (or else not required), required columns, empty values, types, finite numbers,
            dates from 1970-01-02, ranges, order, keys; then rows whose account is unknown;
            then timestamps far after the data's end or before its start).
    """
    _check_remaps(data)
    con = _connect(data)
    try:
        existing = _existing_tables(con) if data.source == "duckdb" else set()
        present: list[str] = []
        missing: list[str] = []
        spans: list[_Span] = []
        for name, spec in TABLES.items():
            if only is not None and name != "accounts" and name not in only:
                continue
            source = _source(data, name)
            if data.source == "duckdb" and data.tables.get(name, name) not in existing:
                source = None
            if source is None:
                _absent(data, spec)
                missing.append(name)
                continue
            try:
                rows = _row_count(con, source)
                if not rows:
                    if spec.required:
                        raise DataContractError(
                            name, None, f"the table is empty ({source.where} has no rows)",
                            "at least one row: the table is required",
                        )  # fmt: skip
                    missing.append(name)
                    continue
                columns = _register(con, data, spec, source.sql)
                spans += _validate(con, spec, columns, rows)
            except UNREADABLE as exc:
                raise _unreadable(name, source, exc) from exc
            present.append(name)
        for name in present:
            if name != "accounts":
                _validate_accounts_known(con, name)
        _validate_calendar(con, data, spans)
    except BaseException:
        con.close()
        raise
    return RawData(connection=con, present=tuple(present), missing=tuple(missing))


def profile(raw: RawData) -> pd.DataFrame:
    """One row per present table: rows, columns, distinct accounts and the time span."""
    rows = []
    for name in raw.present:
        spec = TABLES[name]
        time = _q(spec.time_column) if spec.time_column else "NULL"
        count, accounts, first, last = _one(
            raw.connection,
            f"SELECT count(*), count(DISTINCT account_id), min({time}), max({time}) "
            f"FROM {_q(name)}",
        )
        rows.append(
            {
                "table": name,
                "rows": count,
                "columns": len(spec.columns),
                "accounts": accounts,
                "min_time": first,
                "max_time": last,
            }
        )
    return pd.DataFrame(rows)


def known_until(raw: RawData, cutoff: date | None) -> pd.Timestamp:
    """The last instant the data speaks for: ``data.cutoff`` when set, else its latest event
    (:func:`data_end`). Labels, the feature grid and the freshness of a scoring date all start
    from it."""
    return pd.Timestamp(cutoff) if cutoff else data_end(raw)


def first_fresh_day(end: pd.Timestamp) -> date:
    """The first as-of date whose features see all of the data: the day after its end
    (:func:`known_until`, read once by the caller: it scans every timestamp column)."""
    return (end.normalize() + pd.Timedelta(days=1)).date()


def data_end(raw: RawData) -> pd.Timestamp:
    """The latest event seen in any table (the data's end for labels, unless ``data.cutoff``).

    Scheduled dates do not count: contracts may start and invoices fall due after the export.
    """
    parts = [
        f"SELECT max({_q(col.name)}) AS t FROM {_q(name)}"
        for name, spec in TABLES.items()
        if raw.has(name)
        for col in spec.columns
        if col.kind == "timestamp" and not col.scheduled
    ]
    (latest,) = _one(raw.connection, f"SELECT max(t) FROM ({' UNION ALL '.join(parts)})")
    return pd.Timestamp(latest)


def data_start(raw: RawData) -> pd.Timestamp:
    """Where the event history begins: the earliest row of any event log (else of contracts)."""
    logs = [name for name in EVENT_LOGS if raw.has(name)]
    parts = [f"SELECT min({_q(TABLES[n].time_column or '')}) AS t FROM {_q(n)}" for n in logs]
    parts = parts or ["SELECT min(start_date) AS t FROM contracts"]
    (earliest,) = _one(raw.connection, f"SELECT min(t) FROM ({' UNION ALL '.join(parts)})")
    return pd.Timestamp(earliest)


def read_prebuilt(path: Path) -> pd.DataFrame:
    """A prebuilt snapshot table: a Parquet or CSV file, or a folder of Parquet parts.

    CSV columns keep pandas' own type inference; text that holds numbers is typed later, by
    :mod:`features.prebuilt`, so blanks in a numeric column do not make it unreadable.

    Raises:
        DataContractError: the path does not exist, is of an unknown kind, cannot be read
            (truncated, corrupted, not text) or is empty.
    """
    if not path.exists():
        raise DataContractError(
            "prebuilt", None, f"{path} not found", "a Parquet or CSV file (data.prebuilt.path)"
        )
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in {".parquet", ".pq"}:
        kind = "Parquet"
    elif suffix in {".csv", ".txt"} or path.name.lower().endswith(".csv.gz"):
        kind = "CSV"
    else:
        raise DataContractError(
            "prebuilt", None, f"{path.name} is neither Parquet nor CSV", ".parquet or .csv"
        )
    try:
        frame = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:  # a 0-byte CSV: no header, no rows
        frame = pd.DataFrame()
    except (OSError, ValueError) as exc:  # pyarrow's and pandas' parse errors are ValueErrors
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataContractError(
            "prebuilt", None, f"cannot read {path}: {detail}", f"a readable {kind} file"
        ) from exc
    if frame.empty:
        raise DataContractError("prebuilt", None, f"{path} has no rows", "one row per snapshot")
    return frame
