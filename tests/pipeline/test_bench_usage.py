"""The usage benchmark's parent-side helpers on tiny frames (no build is run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.lab import bench

AS_OF = pd.Timestamp("2024-01-01")


def reference_frame() -> pd.DataFrame:
    """Two accounts shaped like the reference build's output, one type, one window."""
    return pd.DataFrame(
        {
            "account_id": [1, 2],
            "as_of": [AS_OF, AS_OF],
            "login__cnt_30d": [3, 0],
            "login__sum_30d": [4.5, 0.0],
            "login__cnt_90d": [6, 0],
            "login__days_since_last": [1.5, np.nan],
            "login__trend_30_90": [1.5, np.nan],
        }
    )


def family_frame() -> pd.DataFrame:
    """The same figures named as the usage family names them."""
    return pd.DataFrame(
        {
            "account_id": ["1", "2"],
            "as_of": [AS_OF, AS_OF],
            "login_30d": [3.0, 0.0],
            "login_qty_30d": [4.5, 0.0],
            "login_90d": [6.0, 0.0],
            "days_since_login": [1.5, np.nan],
        }
    )


def test_compare_checks_counts_sums_recency_and_trend(tmp_path: Path) -> None:
    """Counts, quantity sums, recency and trend are all compared with the reference."""
    # given the reference's output and the family's, equal but for a quantity sum off by 0.25
    reference_frame().to_parquet(tmp_path / "ref.parquet")
    ours = family_frame().assign(login_qty_30d=[4.75, 0.0])

    # when
    worst = bench._compare_with_reference(ours, tmp_path / "ref.parquet")

    # then
    assert worst == pytest.approx(0.25), "quantity sums are compared"
    assert bench._compare_with_reference(family_frame(), tmp_path / "ref.parquet") == 0.0


def test_compare_flags_a_null_on_one_side_only(tmp_path: Path) -> None:
    """A value missing on one side only makes the difference infinite."""
    # given a recency the family leaves unknown where the reference knows it
    reference_frame().to_parquet(tmp_path / "ref.parquet")
    ours = family_frame().assign(days_since_login=[np.nan, np.nan])

    # when / then
    assert bench._compare_with_reference(ours, tmp_path / "ref.parquet") == float("inf")


def test_compare_on_a_slice_of_accounts_uses_only_those(tmp_path: Path) -> None:
    """On a slice of accounts, the reference's other accounts are not counted as missing."""
    # given the family run on account 1 only (a Spark slice)
    reference_frame().to_parquet(tmp_path / "ref.parquet")
    ours = family_frame().iloc[[0]]

    # when / then: account 2's rows of the reference are not counted as missing
    assert bench._compare_with_reference(ours, tmp_path / "ref.parquet") == 0.0


def test_missing_log_says_how_to_generate_it(tmp_path: Path) -> None:
    """A missing event log is reported with the command that generates it."""
    # given no log at the path, and a reference script
    script = tmp_path / "usage_reference.py"
    script.write_text("")

    # when / then
    with pytest.raises(FileNotFoundError, match=r"usage_reference\.py gen .*events\.parquet"):
        bench.run_usage_bench(tmp_path / "events.parquet", reference_script=script)


def test_a_measurement_runs_in_a_child_interpreter(tmp_path: Path) -> None:
    """The child is started by this package's module path and its JSON line comes back."""
    # given a stand-in for the reference script: two as-of dates, a build of three accounts
    script = tmp_path / "usage_reference.py"
    script.write_text("SNAPS = ['2024-01-01', '2024-02-01']\n\ndef build(events, out, threads):\n"
                      "    return 6\n")  # fmt: skip
    spec = {"events": str(tmp_path / "events.parquet"), "reference_out": str(tmp_path / "o")}

    # when
    figures = bench._child("usage-reference", {**spec, "script": str(script)})

    # then
    assert figures["build"] == "reference"
    assert figures["accounts"] == 3
