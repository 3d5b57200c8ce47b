"""Features as of a date: the model's vocabulary must still be what the data speaks."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pipeline import io
from pipeline.config import DataConfig, FeaturesConfig
from pipeline.shared.asof import check_vocabulary
from tests.pipeline.test_io import valid_tables, write

TRAINED = {"usage_events.event_type": ["login", "report", "export", "share"]}
AS_OF = date(2024, 7, 1)


def raw_with(tmp_path, types: list[str]) -> io.RawData:
    tables = valid_tables()
    n = len(types)
    tables["usage_events"] = pd.DataFrame(
        {
            "account_id": ["A1"] * n,
            "ts": pd.date_range("2024-06-01", periods=n, freq="D"),
            "event_type": types,
            "quantity": [1.0] * n,
        }
    )
    return io.read_raw(DataConfig(raw_dir=write(tables, tmp_path / "raw")))


def test_renamed_event_types_are_refused_naming_what_is_missing_and_new(tmp_path):
    raw = raw_with(tmp_path, ["Login", "Report", "Export", "login"])
    with raw, pytest.raises(io.DataContractError) as caught:
        check_vocabulary(raw, TRAINED, AS_OF, FeaturesConfig())
    error = caught.value
    assert (error.table, error.column) == ("usage_events", "event_type")
    assert "only 1 of the 4 values" in str(error)
    assert "missing: report, export, share" in str(error) and "new: Export, Login, Report" in str(
        error
    )


@pytest.mark.parametrize(
    ("types", "share"),
    [
        (["login", "report", "export"], 0.5),  # one value quiet lately: fine
        (["login", "report"], 0.5),  # half is enough at the default share
        (["Login"], 0.0),  # the check switched off
    ],
)
def test_a_vocabulary_mostly_present_or_a_check_switched_off_passes(tmp_path, types, share):
    with raw_with(tmp_path, types) as raw:
        check_vocabulary(raw, TRAINED, AS_OF, FeaturesConfig(min_vocabulary_share=share))


def test_rows_outside_the_window_do_not_count(tmp_path):
    # the model's names appear only after the as-of date: the window before it has new names only
    raw = raw_with(tmp_path, ["Login", "Report", "login", "report", "export", "share"])
    with raw, pytest.raises(io.DataContractError):
        check_vocabulary(raw, TRAINED, date(2024, 6, 3), FeaturesConfig())
