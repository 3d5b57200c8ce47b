"""The featuretools benchmark's parent-side helpers on tiny files (featuretools is not run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.lab import bench_featuretools as bench

ROOT = Path(__file__).resolve().parents[2]


def reference_frame() -> pd.DataFrame:
    """Two rows shaped like the reference build's output, two types x two features."""
    return pd.DataFrame(
        {
            "account_id": [1, 2],
            "as_of": pd.to_datetime(["2024-01-01", "2024-01-01"]),
            "login__cnt_7d": [3, 0],
            "login__days_since_last": [1.5, np.nan],
            "search__cnt_7d": [1, 2],
            "search__days_since_last": [0.25, 4.0],
        }
    )


def test_compare_reports_differences_nulls_and_missing_columns(tmp_path: Path) -> None:
    """The comparison reports the worst difference per feature, one-sided nulls, lost columns."""
    # given DFS output that is off by 0.5 in one count, null where the reference is not, and lacks
    # one reference column
    ref = reference_frame()
    ours = ref.drop(columns="search__days_since_last").assign(
        login__cnt_7d=[3.5, 0.0], login__days_since_last=[1.5, 7.0]
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    ours.to_parquet(tmp_path / "dfs.parquet")

    # when
    result = bench.compare_with_reference(tmp_path / "dfs.parquet", tmp_path / "ref.parquet")

    # then
    assert result["max_abs_diff"] == {"cnt_7d": 0.5, "days_since_last": 0.0}
    assert result["null_mismatches"] == 1
    assert result["not_computed_by_dfs"] == ["search__days_since_last"]
    assert result["rows_reference"] == result["rows_dfs"] == 2


def test_compare_identical_outputs_is_exact(tmp_path: Path) -> None:
    """Identical outputs compare as zero difference, no null mismatch, nothing missing."""
    # given
    reference_frame().to_parquet(tmp_path / "ref.parquet")
    reference_frame().to_parquet(tmp_path / "dfs.parquet")

    # when
    result = bench.compare_with_reference(tmp_path / "dfs.parquet", tmp_path / "ref.parquet")

    # then
    assert set(result["max_abs_diff"].values()) == {0.0}
    assert result["null_mismatches"] == 0
    assert result["not_computed_by_dfs"] == []


def fake_venv(venv: Path, pins: tuple[str, ...]) -> Path:
    """A venv as ``make bench-featuretools-env`` leaves it: a python and the lock of its pins."""
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / "requirements.lock").write_text("\n".join(pins) + "\n")
    return venv


def test_existing_venv_with_matching_pins_is_used(tmp_path: Path) -> None:
    """A venv made with exactly the pinned requirements passes the check."""
    # given a venv whose lock file lists exactly the pinned requirements
    venv = fake_venv(tmp_path / "venv", bench.REQUIREMENTS)

    # when / then: no error, and nothing is created or installed
    assert bench.ensure_venv(venv) is None
    assert sorted(p.name for p in venv.iterdir()) == ["bin", "requirements.lock"]


def test_missing_venv_names_the_make_target_and_creates_nothing(tmp_path: Path) -> None:
    """No venv: the error says which make target creates it; the package installs nothing."""
    # given no venv at the path
    venv = tmp_path / "venv"

    # when / then
    with pytest.raises(FileNotFoundError, match=r"make bench-featuretools-env"):
        bench.ensure_venv(venv)
    assert not venv.exists(), "the bench must not create the venv at run time"


def test_venv_made_with_other_pins_is_refused(tmp_path: Path) -> None:
    """A venv locked to other pins (an older REQUIREMENTS) must be re-created, not used."""
    # given a venv locked to an older featuretools
    venv = fake_venv(tmp_path / "venv", ("featuretools==1.30.0", *bench.REQUIREMENTS[1:]))

    # when / then
    with pytest.raises(FileNotFoundError, match=r"other pins.*make bench-featuretools-env"):
        bench.ensure_venv(venv)


def test_make_target_reads_the_pins_from_this_module() -> None:
    """The Makefile target the error names exists and takes its pins from REQUIREMENTS."""
    # given the Makefile
    makefile = (ROOT / "Makefile").read_text()

    # then: one place for the pins, and the advice points at a real target
    assert f"\n{bench.ENV_TARGET}:" in makefile, f"no `{bench.ENV_TARGET}` target in the Makefile"
    assert "from pipeline.lab.bench_featuretools import REQUIREMENTS" in makefile


def test_slice_of_more_accounts_than_the_log_has_is_refused(tmp_path: Path) -> None:
    """A slice larger than the log is refused, naming the ``--accounts`` value."""
    # given a log of two accounts
    events = tmp_path / "events.parquet"
    pd.DataFrame(
        {
            "account_id": [1, 2],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "event_type": ["login", "search"],
            "quantity": [1.0, 2.0],
        }
    ).to_parquet(events)

    # when / then
    with pytest.raises(ValueError, match="--accounts 3"):
        bench.write_slice(events, 3, seed=0, out=tmp_path / "slice.parquet")


def test_slice_keeps_every_event_of_the_drawn_accounts(tmp_path: Path) -> None:
    """The slice holds all events of each drawn account, and counts them right."""
    # given a log of three accounts
    events = tmp_path / "events.parquet"
    pd.DataFrame(
        {
            "account_id": [1, 2, 2, 3, 3, 3],
            "ts": pd.date_range("2024-01-01", periods=6, freq="D"),
            "event_type": ["login"] * 6,
            "quantity": [1.0] * 6,
        }
    ).to_parquet(events)

    # when
    figures = bench.write_slice(events, 2, seed=0, out=tmp_path / "slice.parquet")

    # then
    kept = pd.read_parquet(tmp_path / "slice.parquet")["account_id"].value_counts()
    assert len(kept) == 2
    assert all(kept[account] == account for account in kept.index), "an account lost events"
    assert figures["slice_events"] == kept.sum()
    assert figures["log_accounts"] == 3 and figures["log_events"] == 6
