"""Issue #17, trust: every bad input fails closed, naming the table, the column, the rows and what
was expected, and nothing is written.

Each family is one parametrised test on a tiny hand-built world (fast, exact); a last test runs
one case of each family through ``healthscore validate`` on a small synthetic world (exit 3).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.config import FeaturesConfig, PrebuiltTable
from features.prebuilt import prebuilt_training_set
from pipeline import io, stages, synthetic
from pipeline.cli import EXIT_DATA, app
from pipeline.config import DataConfig, Params, SyntheticConfig
from tests.features.conftest import tiny_tables
from tests.pipeline.test_io import valid_tables, write

ROOT = Path(__file__).resolve().parents[2]
T = pd.Timestamp

Break = Callable[[Path], None]  # spoils one thing in a folder of valid raw tables


def edit(table: str, column: str, value: object, row: int = 0) -> Break:
    """Set one cell; text turns the whole column to text, as a text export would carry it."""

    def apply(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        frame = pd.read_parquet(path)
        values = frame[column].astype(object)
        if isinstance(value, str):
            values = values.map(lambda v: None if pd.isna(v) else str(v))
        values.iloc[row] = value
        frame.assign(**{column: values}).to_parquet(path, index=False)

    return apply


def real_nan(table: str, column: str, row: int = 0) -> Break:
    """A float NaN stored as such (pandas would write it as a null; Spark and pyarrow do not)."""

    def apply(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        data = pq.read_table(path)
        values = data[column].to_pylist()
        values[row] = float("nan")
        index = data.schema.get_field_index(column)
        pq.write_table(data.set_column(index, column, pa.array(values, pa.float64())), path)

    return apply


def edit_csv(table: str, column: str, value: str, row: int = 0) -> Break:
    def apply(folder: Path) -> None:
        path = folder / f"{table}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.loc[row, column] = value
        frame.to_csv(path, index=False)

    return apply


def no_rows(table: str, fmt: str = "parquet") -> Break:
    """The table's file is there with its columns, but holds no rows."""

    def apply(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        header = pd.read_parquet(path).iloc[0:0]
        path.unlink()
        if fmt == "parquet":
            header.to_parquet(path, index=False)
        else:
            header.to_csv(folder / f"{table}.csv", index=False)

    return apply


def zero_bytes(name: str) -> Break:
    def apply(folder: Path) -> None:
        for stale in folder.glob(f"{name.split('.')[0]}.*"):
            stale.unlink()
        (folder / name).write_bytes(b"")

    return apply


def truncated(table: str) -> Break:
    def apply(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return apply


def garbage(table: str) -> Break:
    def apply(folder: Path) -> None:
        noise = np.random.default_rng(17).integers(0, 256, 300, dtype=np.uint8).tobytes()
        (folder / f"{table}.parquet").write_bytes(b"PAR1" + noise + b"PAR1")

    return apply


def broken_part(table: str) -> Break:
    """A folder of Parquet parts, one of them cut short."""

    def apply(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        frame = pd.read_parquet(path)
        path.unlink()
        (folder / table).mkdir()
        frame.to_parquet(folder / table / "part-0.parquet", index=False)
        data = (folder / table / "part-0.parquet").read_bytes()
        (folder / table / "part-1.parquet").write_bytes(data[:-40])

    return apply


def binary_csv(table: str) -> Break:
    def apply(folder: Path) -> None:
        (folder / f"{table}.parquet").unlink()
        noise = np.random.default_rng(3).integers(128, 256, 500, dtype=np.uint8).tobytes()
        (folder / f"{table}.csv").write_bytes(noise)

    return apply


def raw_folder(tmp_path: Path, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    return write(valid_tables() if tables is None else tables, tmp_path / "raw")


def run_validate(tmp_path: Path, folder: Path, **data: object) -> io.DataContractError:
    """Run the validate stage, expecting a contract error, and ``healthscore validate`` on the
    same folder, expecting exit 3 with the same message; check that nothing was written."""
    params = Params(data=DataConfig(raw_dir=folder, **data), output_dir=tmp_path / "out")
    with pytest.raises(io.DataContractError) as excinfo:
        stages.run_validate(params)
    assert not (tmp_path / "out").exists(), "nothing is written on failure"
    settings = [f"data.{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in data.items()]
    result = validate_cli(tmp_path, folder, *settings)
    assert result.exit_code == EXIT_DATA, result.output
    assert str(excinfo.value).splitlines()[0][:60] in " ".join(result.output.split())
    assert not (tmp_path / "out").exists(), "nothing is written on failure"
    return excinfo.value


def assert_names(error: io.DataContractError, table: str, column: str | None, *words: str) -> None:
    assert (error.table, error.column) == (table, column), str(error)
    where = f"{table}.{column}" if column else table
    assert str(error).startswith(where), str(error)
    for word in words:
        assert word in str(error), f"{word!r} not in: {error}"


# ---- 1. numbers that are NaN or infinite ----------------------------------------------------

NOT_FINITE = [
    ("contracts", "arr", edit("contracts", "arr", "NaN", row=2), 2),
    ("contracts", "arr", real_nan("contracts", "arr", row=0), 0),
    ("contracts", "arr", edit("contracts", "arr", "Infinity", row=1), 1),
    ("contracts", "seats", edit("contracts", "seats", "inf", row=3), 3),  # was a DuckDB crash
    ("invoices", "amount", edit("invoices", "amount", "-inf"), 0),
    ("usage_events", "quantity", edit("usage_events", "quantity", float("inf"), row=1), 1),
    ("surveys", "score", real_nan("surveys", "score", row=0), 0),
    ("sentiment", "rating", edit("sentiment", "rating", "nan", row=2), 2),
    ("support_tickets", "csat", edit("support_tickets", "csat", "inf"), 0),
    ("interventions", "cost", edit("interventions", "cost", "1e999"), 0),  # overflows to inf
]


@pytest.mark.parametrize(
    ("table", "column", "spoil", "row"),
    NOT_FINITE,
    ids=[f"{t}.{c}-{i}" for i, (t, c, *_) in enumerate(NOT_FINITE)],
)
def test_a_number_that_is_nan_or_infinite_is_refused(tmp_path, table, column, spoil, row):
    # given a valid world where one number is NaN or infinite
    folder = raw_folder(tmp_path)
    spoil(folder)
    # when it is validated, then the table, column and row are named, and nothing is written
    error = run_validate(tmp_path, folder)
    assert_names(error, table, column, "is not a finite number", f"row={row + 1}", "finite")


def test_nan_text_in_a_csv_export_is_refused(tmp_path):
    folder = write(valid_tables(), tmp_path / "raw", fmt="csv")
    edit_csv("contracts", "arr", "NaN", row=1)(folder)
    error = run_validate(tmp_path, folder, source="csv")
    assert_names(error, "contracts", "arr", "1 row where arr is not a finite number", "row=2")
    assert "contract_id='K2'" in str(error), "the example names the row's key"


# ---- 2. tables with no rows -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "spoil"),
    [
        ("contracts", no_rows("contracts")),
        ("accounts", no_rows("accounts")),
        ("contracts", no_rows("contracts", fmt="csv")),  # a header and nothing else
        ("contracts", zero_bytes("contracts.csv")),
    ],
    ids=["contracts-parquet", "accounts-parquet", "contracts-header-only-csv", "contracts-0-byte"],
)
def test_a_required_table_with_no_rows_is_refused(tmp_path, table, spoil):
    folder = raw_folder(tmp_path)
    spoil(folder)
    error = run_validate(tmp_path, folder)
    assert_names(error, table, None, "the table is empty", "has no rows", "at least one row")


@pytest.mark.parametrize(
    ("table", "spoil"),
    [
        ("usage_events", no_rows("usage_events")),
        ("surveys", no_rows("surveys", fmt="csv")),
        ("support_tickets", zero_bytes("support_tickets.csv")),
        ("opportunities", no_rows("opportunities")),
    ],
    ids=["usage-parquet", "surveys-header-only-csv", "tickets-0-byte-csv", "opportunities"],
)
def test_an_optional_table_with_no_rows_reads_as_if_it_were_absent(tmp_path, table, spoil):
    # given the same world twice: the table's file with no rows, and no file at all
    tables = {**valid_tables(), "opportunities": tiny_tables()["opportunities"].iloc[:1]}
    empty = write(tables, tmp_path / "empty")
    spoil(empty)
    absent = write({k: v for k, v in tables.items() if k != table}, tmp_path / "absent")
    # when both are read, then they read the same: the table is missing, not present
    with io.read_raw(DataConfig(raw_dir=empty)) as a, io.read_raw(DataConfig(raw_dir=absent)) as b:
        assert table in a.missing and not a.has(table)
        assert (a.present, a.missing) == (b.present, b.missing)
        assert io.data_end(a) == io.data_end(b)
        assert io.data_start(a) == io.data_start(b)
        pd.testing.assert_frame_equal(io.profile(a), io.profile(b))


# ---- 3. files that cannot be read -----------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "spoil", "file", "expected"),
    [
        ("contracts", zero_bytes("contracts.parquet"), "contracts.parquet", "Parquet"),
        ("usage_events", truncated("usage_events"), "usage_events.parquet", "Parquet"),
        ("surveys", garbage("surveys"), "surveys.parquet", "Parquet"),
        ("sentiment", broken_part("sentiment"), "sentiment/*.parquet", "Parquet"),
        ("accounts", binary_csv("accounts"), "accounts.csv", "CSV"),
    ],
    ids=["0-byte", "truncated", "garbage", "broken-part", "binary-csv"],
)
def test_a_file_that_cannot_be_read_is_refused_naming_it(tmp_path, table, spoil, file, expected):
    folder = raw_folder(tmp_path)
    spoil(folder)
    error = run_validate(tmp_path, folder)
    assert_names(error, table, None, f"cannot read {folder / file}", f"a readable {expected} file")


@pytest.mark.parametrize(
    ("name", "spoil", "words"),
    [
        ("table.parquet", truncated("table"), "a readable Parquet file"),
        ("table.csv", binary_csv("table"), "a readable CSV file"),
        ("table.csv", zero_bytes("table.csv"), "has no rows"),
    ],
    ids=["truncated-parquet", "binary-csv", "0-byte-csv"],
)
def test_an_unreadable_prebuilt_table_is_refused(tmp_path, name, spoil, words):
    pd.DataFrame({"id": ["a", "b"], "renewed": [1, 0]}).to_parquet(tmp_path / "table.parquet")
    spoil(tmp_path)
    with pytest.raises(io.DataContractError) as excinfo:
        io.read_prebuilt(tmp_path / name)
    assert_names(excinfo.value, "prebuilt", None, str(tmp_path / name), words)


# ---- 4. timestamps that would move the calendar ---------------------------------------------

# the tiny world's events run from 2024-03 to 2024-09; data.max_outlier_days is 366
CALENDAR = [
    ("usage_events", "ts", T("2099-01-01"), "days after the bulk of the data"),
    ("usage_events", "ts", T("1900-01-01"), "is before 1970-01-02"),
    ("support_tickets", "opened_at", T("1970-01-01"), "is before 1970-01-02"),
    ("accounts", "created_at", T("1900-01-01"), "is before 1970-01-02"),
    ("contracts", "start_date", T("1900-01-01"), "is before 1970-01-02"),  # scheduled too
    ("surveys", "sent_at", T("2012-01-01"), "days before the bulk of the data"),
    ("contacts", "left_at", T("2099-06-30"), "days after the bulk of the data"),
    ("invoices", "paid_date", T("2031-02-10"), "days after the bulk of the data"),
    ("sentiment", "ts", "infinity", "or infinite"),
]


@pytest.mark.parametrize(
    ("table", "column", "value", "words"),
    CALENDAR,
    ids=[f"{t}.{c}={v}" for t, c, v, _ in CALENDAR],
)
def test_a_timestamp_that_would_move_the_calendar_is_refused(tmp_path, table, column, value, words):
    folder = raw_folder(tmp_path)
    edit(table, column, value)(folder)
    error = run_validate(tmp_path, folder)
    assert_names(error, table, column, words, "row=1")


def test_the_margin_and_the_cutoff_decide_what_is_implausible(tmp_path):
    # given a usage row 500 days after the rest of the data (which ends 2024-09-01)
    folder = raw_folder(tmp_path)
    edit("usage_events", "ts", T("2026-01-10"))(folder)
    error = run_validate(tmp_path, folder)
    assert_names(error, "usage_events", "ts", "more than 366 days after", "data.cutoff")
    # then a wider margin accepts it, and so does a cutoff before it (later rows are unseen)
    with io.read_raw(DataConfig(raw_dir=folder, max_outlier_days=600)) as raw:
        assert io.data_end(raw) == T("2026-01-10")
    with io.read_raw(DataConfig(raw_dir=folder, cutoff="2024-10-01")) as raw:
        assert raw.has("usage_events")
    # but a row before the cutoff and past the margin is still refused
    error = run_validate(tmp_path, folder, cutoff="2027-01-01")
    assert_names(error, "usage_events", "ts", "days after the bulk of the data")


def few_surveys_over_three_years() -> pd.DataFrame:
    """Thirty surveys at irregular dates over three years, gaps of up to five months."""
    days = np.cumsum(np.random.default_rng(7).integers(5, 150, 30))
    sent = T("2022-01-15") + pd.to_timedelta(days * (1095 / days[-1]), unit="D")
    return pd.DataFrame(
        {"account_id": ["A1", "A2"] * 15, "sent_at": sent.round("h"), "score": [8.0] * 30}
    )


def test_small_and_sparse_legitimate_tables_never_trip_the_calendar(tmp_path):
    # given small tables: a few dozen surveys over three years, two interventions 17 months
    # apart, one contact who left, and the feature tests' tiny world
    tables = valid_tables()
    tables["accounts"] = tables["accounts"].assign(created_at=T("2021-06-01"))
    tables["surveys"] = few_surveys_over_three_years()
    tables["interventions"] = pd.concat([tables["interventions"]] * 2, ignore_index=True).assign(
        ts=[T("2023-03-01"), T("2024-08-01")]
    )
    sparse = write(tables, tmp_path / "sparse")
    tiny = write(tiny_tables(), tmp_path / "tiny")
    # when they are read, then nothing is refused and the calendar is the data's own
    with io.read_raw(DataConfig(raw_dir=sparse)) as raw:
        assert io.data_start(raw) == tables["surveys"]["sent_at"].min()
        assert io.data_end(raw) == tables["surveys"]["sent_at"].max()
    with io.read_raw(DataConfig(raw_dir=tiny)) as raw:
        assert len(raw.present) == 11
        assert (io.data_start(raw), io.data_end(raw)) == (T("2024-03-01"), T("2025-02-01"))


# ---- 5. a remapped table that is not there --------------------------------------------------


def duckdb_file(tmp_path: Path) -> Path:
    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, table in valid_tables().items():
            con.register("frame", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    return path


@pytest.mark.parametrize(
    ("table", "remap", "fmt", "looked"),
    [
        ("usage_events", "product_events", "parquet", "product_events.parquet"),
        ("contracts", "deals", "parquet", "deals.parquet"),
        ("surveys", "nps_responses", "csv", "nps_responses.csv in"),
        ("usage_events", "product_events", "duckdb", "table 'product_events' in"),
    ],
    ids=["optional", "required", "csv", "duckdb"],
)
def test_a_remapped_table_that_is_not_found_is_refused(tmp_path, table, remap, fmt, looked):
    folder = write(valid_tables(), tmp_path / "raw", fmt="parquet" if fmt == "duckdb" else fmt)
    extra: dict[str, object] = {"tables": {table: remap}}
    if fmt == "csv":
        extra["source"] = "csv"
    if fmt == "duckdb":
        extra.update(source="duckdb", duckdb_path=duckdb_file(tmp_path))
    error = run_validate(tmp_path, folder, **extra)
    assert_names(error, table, None, f"data.tables maps {table} to {remap!r}", looked)
    assert f"data.tables.{table}" in error.expected


# ---- 6. prebuilt labels that are neither churn nor renewal ----------------------------------


def churn_export(labels: list[object]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customerID": [f"c{i}" for i in range(len(labels))],
            "tenure": list(range(1, len(labels) + 1)),
            "MonthlyCharges": [20.0 + i for i in range(len(labels))],
            "Churn": labels,
        }
    )


def spec(churn_value: object) -> PrebuiltTable:
    return PrebuiltTable(
        id_column="customerID",
        label_column="Churn",
        churn_value=churn_value,
        arr_column="MonthlyCharges",
    )


@pytest.mark.parametrize(
    ("churn_value", "labels", "bad", "rows", "accepted"),
    [
        (
            "Yes",
            ["Yes", "No", "Maybe", "No"],
            "'Maybe'",
            "[3]",
            "churn = 1 / 1.0 / t / true / y / yes; renewed = 0 / 0.0 / f / false / n / no",
        ),
        (True, ["Yes", "No", "No", "unknown"], "'unknown'", "[4]", "renewed = 0 / 0.0 / f"),
        (1, [1, 0, 2, 0], "'2'", "[3]", "renewed = 0 / 0.0 / f / false / n / no"),
        (None, [1, 0, 0, "pending"], "'pending'", "[4]", "1 = renewed / 0 = churned"),
        (
            "Attrited Customer",
            ["Attrited Customer", "Existing Customer", "Pending", "Pending"],
            "'Existing Customer', 'Pending'",
            "[2, 3, 4]",
            "the churn value 'Attrited Customer' and one other value meaning renewed",
        ),
    ],
    ids=["yes-no-maybe", "yaml-yes", "one-zero-two", "default-pending", "no-known-opposite"],
)
def test_a_label_that_is_neither_churn_nor_renewal_is_refused(
    churn_value, labels, bad, rows, accepted
):
    # given an export whose label holds a value that is neither churn nor renewal
    frame = churn_export(labels)
    # when it is typed for training, then the column, values, rows and accepted values are named
    with pytest.raises(ValueError, match="label column 'Churn' has values") as excinfo:
        prebuilt_training_set(frame, spec(churn_value))
    message = str(excinfo.value)
    for words in (bad, f"rows {rows} (first row = 1)", accepted):
        assert words in message, message


def test_common_label_spellings_are_read_and_blanks_stay_unknown():
    yes_no = prebuilt_training_set(churn_export(["Yes", " no", "Y", "N", "", None]), spec("Yes"))
    assert yes_no.table["renewed"].tolist()[:4] == [0.0, 1.0, 0.0, 1.0]
    assert yes_no.table["renewed"][4:].isna().all()
    two_words = ["Attrited Customer", "Existing Customer", "Existing Customer"]
    words = prebuilt_training_set(churn_export(two_words), spec("Attrited Customer"))
    assert words.table["renewed"].tolist() == [0.0, 1.0, 1.0]
    flags = prebuilt_training_set(churn_export([True, False, True]), spec(None))
    assert flags.table["renewed"].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("column", ["MonthlyCharges", "tenure"])
def test_an_infinite_number_in_a_prebuilt_table_is_refused(column):
    frame = churn_export(["Yes", "No", "No"])
    frame = frame.assign(**{column: frame[column].astype(float).where(frame.index != 1, np.inf)})
    with pytest.raises(ValueError, match=rf"column '{column}' is infinite in 1 row\(s\), e\.g\. "):
        prebuilt_training_set(frame, spec("Yes"))


# ---- through the CLI, on a small synthetic world --------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    cfg = SyntheticConfig(accounts=40, history_months=12, prehistory_months=6)
    synthetic.write_world(cfg, FeaturesConfig(), root / "raw", root / "oracle")
    return root / "raw"


def test_the_synthetic_world_never_trips_the_checks(world):
    with io.read_raw(DataConfig(raw_dir=world)) as raw:
        assert len(raw.present) == 11
        assert io.data_end(raw) < T("2026-11-02")


def validate_cli(tmp_path: Path, folder: Path, *settings: str):
    args = ["--params", str(ROOT / "params.yaml"), "--set", f"data.raw_dir={folder}"]
    args += ["--set", f"output_dir={tmp_path / 'out'}"]
    for setting in settings:
        args += ["--set", setting]
    return CliRunner().invoke(app, ["validate", *args])


@pytest.mark.parametrize(
    ("spoil", "settings", "table", "column"),
    [
        (edit("contracts", "arr", "NaN", row=5), [], "contracts", "arr"),
        (no_rows("contracts"), [], "contracts", None),
        (truncated("usage_events"), [], "usage_events", None),
        (edit("usage_events", "ts", "2099-01-01 10:00:00", row=7), [], "usage_events", "ts"),
        (lambda _: None, ["data.tables.sentiment=csm_ratings"], "sentiment", None),
    ],
    ids=["nan-arr", "empty-contracts", "truncated-usage", "usage-in-2099", "remap-missing"],
)
def test_validate_exits_3_naming_table_and_column_and_writes_nothing(
    world, tmp_path, spoil, settings, table, column
):
    # given a copy of the synthetic world with one thing wrong
    folder = Path(shutil.copytree(world, tmp_path / "raw"))
    spoil(folder)
    # when `healthscore validate` runs on it
    result = validate_cli(tmp_path, folder, *settings)
    # then it exits 3, naming the table (and column), and writes nothing
    assert result.exit_code == EXIT_DATA, result.output
    assert f"{table}.{column}" in result.output if column else f"{table}:" in result.output
    assert not (tmp_path / "out").exists()


def test_a_bad_prebuilt_label_exits_3_naming_the_column_and_rows(tmp_path):
    path = tmp_path / "telco.csv"
    churn_export(["Yes", "No", "Maybe", "No", "Yes", "No"]).to_csv(path, index=False)
    settings = [
        "data.source=table", f"data.prebuilt.path={path}", "data.prebuilt.id_column=customerID",
        "data.prebuilt.label_column=Churn", 'data.prebuilt.churn_value="Yes"',
    ]  # fmt: skip
    result = validate_cli(tmp_path, tmp_path, *settings)
    assert result.exit_code == EXIT_DATA, result.output
    assert "label column 'Churn' has values ['Maybe']" in result.output
    assert "rows [3]" in result.output
    assert not (tmp_path / "out").exists()
