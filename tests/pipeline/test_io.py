"""The data contract at the edge: typed views, remaps, sources, and a table of bad inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline import io, stages
from pipeline.config import DataConfig, Params
from pipeline.io.schema import TABLES

UTC = "UTC"


def valid_tables() -> dict[str, pd.DataFrame]:
    """A tiny world that satisfies the contract: three accounts, one row or two per table."""
    ts = pd.Timestamp
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": ["A1", "A2", "A3"],
                "name": ["Acme <b>Inc</b>", "Bluebird", "Cedar"],
                "segment": ["smb", "enterprise", "smb"],
                "created_at": [ts("2024-01-01"), ts("2024-02-01"), ts("2024-03-01")],
                "csm_id": ["c1", "c2", "c1"],
            }
        ),
        "contracts": pd.DataFrame(
            {
                "contract_id": ["K1", "K2", "K3", "K4"],
                "account_id": ["A1", "A1", "A2", "A3"],
                "start_date": pd.to_datetime(
                    ["2024-01-01", "2025-01-01", "2024-02-01", "2024-03-01"]
                ),
                "end_date": pd.to_datetime(
                    ["2025-01-01", "2026-01-01", "2025-02-01", "2024-04-01"]
                ),
                "arr": [1000.0, 1100.0, 50000.0, 900.0],
                "seats": [5, 5, 100, 3],
                "renewed": [True, None, None, False],
            }
        ),
        "usage_events": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "ts": [ts("2024-05-01 10:00"), ts("2024-06-01 11:00")],
                "event_type": ["login", "report"],
                "quantity": [1.0, 3.0],
            }
        ),
        "support_tickets": pd.DataFrame(
            {
                "ticket_id": ["T1", "T2"],
                "account_id": ["A1", "A3"],
                "opened_at": [ts("2024-05-01"), ts("2024-03-10")],
                "closed_at": [ts("2024-05-02"), pd.NaT],
                "priority": ["high", "low"],
                "csat": [4.0, None],
            }
        ),
        "surveys": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "sent_at": [ts("2024-06-01"), ts("2024-06-01")],
                "responded_at": [ts("2024-06-03"), pd.NaT],
                "score": [9.0, None],
            }
        ),
        "contacts": pd.DataFrame(
            {
                "contact_id": ["P1", "P2"],
                "account_id": ["A1", "A2"],
                "persona": ["champion", "decision_maker"],
                "created_at": [ts("2024-01-05"), ts("2024-02-05")],
                "left_at": [ts("2024-09-01"), pd.NaT],
            }
        ),
        "sentiment": pd.DataFrame(
            {
                "account_id": ["A1", "A2", "A3"],
                "ts": [ts("2024-07-01"), ts("2024-07-01"), ts("2024-03-15")],
                "rating": ["green", "2", "Red"],
            }
        ),
        "invoices": pd.DataFrame(
            {
                "account_id": ["A1"],
                "due_date": [ts("2024-01-31")],
                "amount": [1000.0],
                "paid_date": [ts("2024-02-10")],
            }
        ),
        "interventions": pd.DataFrame(
            {
                "account_id": ["A2"],
                "ts": [ts("2024-08-01")],
                "type": ["exec_call"],
                "cost": [800.0],
                "risk_flag": ["red"],
            }
        ),
    }


def write(tables: dict[str, pd.DataFrame], folder: Path, fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    return write(valid_tables(), tmp_path / "raw")


def test_valid_tables_read_as_typed_views_with_every_contract_column(raw_dir):
    raw = io.read_raw(DataConfig(raw_dir=raw_dir))
    assert raw.present == (
        "accounts", "contracts", "usage_events", "support_tickets", "surveys", "contacts",
        "sentiment", "invoices", "interventions",
    )  # fmt: skip
    assert raw.missing == ("activities", "opportunities", "assignments")
    accounts = raw.frame("accounts")
    assert list(accounts.columns) == list(TABLES["accounts"].column_names)
    assert accounts["industry"].isna().all(), "absent optional columns exist, empty"
    contracts = raw.frame("contracts")
    assert str(contracts["start_date"].dtype).startswith("datetime64")
    assert contracts["seats"].tolist() == [5, 5, 100, 3]
    assert contracts["renewed"].tolist()[0] is True or contracts["renewed"].tolist()[0] == True  # noqa: E712
    assert raw.frame("sentiment")["rating"].tolist() == [5.0, 2.0, 1.0]


def test_profile_and_data_end_are_exact(raw_dir):
    raw = io.read_raw(DataConfig(raw_dir=raw_dir))
    profile = io.profile(raw).set_index("table")
    assert profile.loc["accounts", "rows"] == 3
    assert profile.loc["contracts", "accounts"] == 3
    assert profile.loc["usage_events", "max_time"] == pd.Timestamp("2024-06-01 11:00")
    # contracts and invoices do not bound the data's end; the last observed event does
    assert io.data_end(raw) == pd.Timestamp("2024-09-01")


def test_remapped_table_and_column_names_read_as_the_contract(tmp_path):
    tables = valid_tables()
    tables["product_events"] = tables.pop("usage_events").rename(
        columns={"account_id": "customer", "ts": "event_time"}
    )
    tables["accounts"] = tables["accounts"].rename(columns={"segment": "plan"})
    folder = write(tables, tmp_path / "raw")
    data = DataConfig(
        raw_dir=folder,
        tables={"usage_events": "product_events"},
        columns={
            "usage_events": {"account_id": "customer", "ts": "event_time"},
            "accounts": {"segment": "plan"},
        },
    )
    raw = io.read_raw(data)
    usage = raw.frame("usage_events")
    assert usage["account_id"].tolist() == ["A1", "A2"]
    assert usage["ts"].tolist() == [
        pd.Timestamp("2024-05-01 10:00"),
        pd.Timestamp("2024-06-01 11:00"),
    ]
    assert raw.frame("accounts")["segment"].tolist() == ["smb", "enterprise", "smb"]


def test_csv_parquet_folder_and_duckdb_sources_read_the_same(tmp_path, raw_dir):
    expected = io.read_raw(DataConfig(raw_dir=raw_dir)).frame("contracts")
    csv = write(valid_tables(), tmp_path / "csv", fmt="csv")
    from_csv = io.read_raw(DataConfig(raw_dir=csv, source="csv")).frame("contracts")
    pd.testing.assert_frame_equal(from_csv, expected)

    parts = tmp_path / "parts"
    write({k: v for k, v in valid_tables().items() if k != "contracts"}, parts)
    (parts / "contracts").mkdir()
    frame = valid_tables()["contracts"]
    frame.iloc[:2].to_parquet(parts / "contracts" / "part-0.parquet", index=False)
    frame.iloc[2:].to_parquet(parts / "contracts" / "part-1.parquet", index=False)
    from_parts = io.read_raw(DataConfig(raw_dir=parts)).frame("contracts")
    pd.testing.assert_frame_equal(
        from_parts.sort_values("contract_id", ignore_index=True), expected
    )

    db_path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db_path)) as con:
        for name, table in valid_tables().items():
            con.register("frame", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    from_db = io.read_raw(DataConfig(source="duckdb", duckdb_path=db_path)).frame("contracts")
    pd.testing.assert_frame_equal(from_db, expected)


def test_naive_and_zoned_timestamps_land_on_the_same_utc_instant(tmp_path):
    tables = valid_tables()
    zoned = tables["usage_events"].assign(
        ts=tables["usage_events"]["ts"].dt.tz_localize("Europe/Berlin")
    )
    naive = write(tables, tmp_path / "naive")
    shifted = write({**tables, "usage_events": zoned}, tmp_path / "zoned")
    a = io.read_raw(DataConfig(raw_dir=naive)).frame("usage_events")["ts"]
    b = io.read_raw(DataConfig(raw_dir=shifted)).frame("usage_events")["ts"]
    assert (a - b).tolist() == [pd.Timedelta(hours=2), pd.Timedelta(hours=2)], "CEST is UTC+2"


Mutation = Callable[[dict[str, pd.DataFrame], Path], None]


def _set(table: str, column: str, row: int, value: object) -> Mutation:
    def mutate(tables: dict[str, pd.DataFrame], _folder: Path) -> None:
        frame = tables[table]
        values = frame[column].astype(object)
        if isinstance(value, str):  # as a text export would carry it: the whole column as text
            values = values.map(lambda v: None if pd.isna(v) else str(v))
        values.iloc[row] = value
        tables[table] = frame.assign(**{column: values})

    return mutate


def _drop_column(table: str, column: str) -> Mutation:
    def mutate(tables: dict[str, pd.DataFrame], _folder: Path) -> None:
        tables[table] = tables[table].drop(columns=[column])

    return mutate


def _drop_table(table: str) -> Mutation:
    def mutate(tables: dict[str, pd.DataFrame], _folder: Path) -> None:
        del tables[table]

    return mutate


def _duplicate_row(table: str) -> Mutation:
    def mutate(tables: dict[str, pd.DataFrame], _folder: Path) -> None:
        tables[table] = pd.concat([tables[table], tables[table].iloc[[0]]], ignore_index=True)

    return mutate


def _also_csv(table: str) -> Mutation:
    def mutate(tables: dict[str, pd.DataFrame], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tables[table].to_csv(folder / f"{table}.csv", index=False)

    return mutate


def _empty_accounts(tables: dict[str, pd.DataFrame], _folder: Path) -> None:
    tables["accounts"] = tables["accounts"].iloc[0:0]
    for name in list(tables):
        if name != "accounts":
            del tables[name]
    tables["contracts"] = valid_tables()["contracts"].iloc[0:0]


# (id, mutation, extra DataConfig fields, table, column, words the message must contain)
BAD_INPUTS = [
    ("missing required table", _drop_table("contracts"), {}, "contracts", None,
     "required table not found"),
    ("missing required column", _drop_column("accounts", "segment"), {}, "accounts", "segment",
     "required column is missing"),
    ("empty required value", _set("accounts", "name", 1, None), {}, "accounts", "name",
     "1 row where name is empty"),
    ("unparseable timestamp", _set("usage_events", "ts", 0, "yesterday-ish"), {}, "usage_events",
     "ts", "does not parse"),
    ("number that is text", _set("contracts", "arr", 2, "fifty thousand"), {}, "contracts", "arr",
     "does not parse"),
    ("fractional seats", _set("contracts", "seats", 0, 2.5), {}, "contracts", "seats",
     "not a whole number"),
    ("boolean that is not", _set("contracts", "renewed", 0, "maybe"), {}, "contracts", "renewed",
     "does not parse"),
    ("rating word unknown", _set("sentiment", "rating", 0, "purple"), {}, "sentiment", "rating",
     "does not parse"),
    ("rating out of range", _set("sentiment", "rating", 1, "9"), {}, "sentiment", "rating",
     "out of range"),
    ("duplicate account id", _duplicate_row("accounts"), {}, "accounts", "account_id",
     "duplicated key"),
    ("duplicate ticket id", _duplicate_row("support_tickets"), {}, "support_tickets", "ticket_id",
     "duplicated key"),
    ("end before start", _set("contracts", "end_date", 3, pd.Timestamp("2024-02-01")), {},
     "contracts", "end_date", "not after start_date"),
    ("negative arr", _set("contracts", "arr", 1, -5.0), {}, "contracts", "arr", "is negative"),
    ("negative invoice", _set("invoices", "amount", 0, -1.0), {}, "invoices", "amount",
     "is negative"),
    ("nps out of range", _set("surveys", "score", 0, 11.0), {}, "surveys", "score",
     "out of range"),
    ("ticket closed before opened", _set("support_tickets", "closed_at", 0,
     pd.Timestamp("2024-04-01")), {}, "support_tickets", "closed_at", "before opened_at"),
    ("contact left before joining", _set("contacts", "left_at", 0, pd.Timestamp("2023-01-01")),
     {}, "contacts", "left_at", "before created_at"),
    ("unknown account", _set("usage_events", "account_id", 1, "A9"), {}, "usage_events",
     "account_id", "not in accounts"),
    ("empty accounts", _empty_accounts, {}, "accounts", None, "the table is empty"),
    ("csv and parquet both", _also_csv("surveys"), {}, "surveys", None,
     "both surveys.parquet and surveys.csv"),
    ("unknown table remap", lambda t, f: None, {"tables": {"usage": "x"}}, "usage", None,
     "unknown contract table"),
    ("unknown column remap", lambda t, f: None, {"columns": {"accounts": {"acct": "id"}}},
     "accounts", "acct", "does not have"),
    ("raw folder missing", lambda t, f: None, {"raw_dir": "/nonexistent/healthscore"},
     "<source>", None, "raw data folder not found"),
    ("duckdb file missing", lambda t, f: None, {"source": "duckdb",
     "duckdb_path": "/nonexistent/crm.duckdb"}, "<source>", None, "database file not found"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "extra", "table", "column", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_is_named_and_nothing_is_written(tmp_path, mutate, extra, table, column, words):
    # given a valid world with one thing wrong
    tables = valid_tables()
    folder = tmp_path / "raw"
    mutate(tables, folder)
    write(tables, folder)
    data = {"raw_dir": folder, **extra}
    params = Params(data=DataConfig(**data), output_dir=tmp_path / "out")
    # when the validate stage runs, then it names table, column and problem, and writes nothing
    with pytest.raises(io.DataContractError) as excinfo:
        stages.run_validate(params)
    error = excinfo.value
    assert (error.table, error.column) == (table, column)
    assert words in str(error)
    where = f"{table}.{column}" if column else table
    assert str(error).startswith(where)
    assert not (tmp_path / "out").exists()


def test_error_examples_name_the_rows_and_values(tmp_path):
    tables = valid_tables()
    _set("contracts", "arr", 2, "fifty thousand")(tables, tmp_path)
    with pytest.raises(io.DataContractError) as excinfo:
        io.read_raw(DataConfig(raw_dir=write(tables, tmp_path / "raw")))
    message = str(excinfo.value)
    assert "row=3" in message
    assert "contract_id='K3'" in message
    assert "arr='fifty thousand'" in message
    assert "expected a number" in message


def test_a_step_reads_only_the_tables_it_needs_and_still_validates_them(tmp_path):
    # given tables where usage is broken and the interventions log is fine
    tables = valid_tables()
    _set("usage_events", "quantity", 0, "lots")(tables, tmp_path)
    folder = write(tables, tmp_path / "raw")
    with pytest.raises(io.DataContractError, match=r"usage_events\.quantity"):
        io.read_raw(DataConfig(raw_dir=folder))
    # when a step reads only the log and contracts, the broken usage is not its concern
    raw = io.read_raw(DataConfig(raw_dir=folder), only=["interventions", "contracts"])
    assert raw.present == ("accounts", "contracts", "interventions")
    assert raw.missing == ()
    assert raw.frame("interventions")["type"].tolist() == ["exec_call"]
    # and the tables it reads are validated as ever
    _set("interventions", "cost", 0, "cheap")(tables, tmp_path)
    with pytest.raises(io.DataContractError, match="interventions"):
        io.read_raw(DataConfig(raw_dir=write(tables, tmp_path / "raw2")), only=["interventions"])


def test_missing_optional_table_is_fine(tmp_path):
    tables = {k: v for k, v in valid_tables().items() if k in ("accounts", "contracts")}
    raw = io.read_raw(DataConfig(raw_dir=write(tables, tmp_path / "raw")))
    assert raw.present == ("accounts", "contracts")
    assert len(raw.missing) == 10
    with pytest.raises(KeyError, match="usage_events"):
        raw.frame("usage_events")
