"""Out-of-time split: test on the latest period, train a horizon before it, labelled rows only."""

import numpy as np
import pandas as pd
import pytest

from models.win.validation import out_of_time_split


def test_split_leaves_a_gap_of_one_horizon_and_skips_unlabelled_rows():
    as_of = pd.Series(pd.date_range("2024-01-01", "2025-12-01", freq="MS").repeat(2))
    labelled = pd.Series(np.ones(len(as_of), dtype=bool)).where(as_of < "2025-12-01", False)
    train, test = out_of_time_split(as_of, labelled, horizon_days=180, test_days=90)
    # last labelled as_of 2025-11-01 → test after 2025-08-03, train up to 2025-02-04
    assert as_of[test].min() == pd.Timestamp("2025-09-01")
    assert as_of[test].max() == pd.Timestamp("2025-11-01")
    assert as_of[train].max() == pd.Timestamp("2025-02-01")
    assert not set(train) & set(test)


def test_empty_split_is_named():
    as_of = pd.Series(pd.to_datetime(["2025-01-01", "2025-02-01"]))
    with pytest.raises(ValueError, match="split is empty") as caught:
        out_of_time_split(as_of, pd.Series([True, True]), horizon_days=180, test_days=30)
    # says what it found, what it needs and which keys to set
    assert "span 31 days" in str(caught.value) and "30 + 180 = 210" in str(caught.value)
    assert "features.horizon_days" in str(caught.value) and "train.test_days" in str(caught.value)
    with pytest.raises(ValueError, match="no labelled"):
        out_of_time_split(as_of, pd.Series([False, False]), horizon_days=180, test_days=30)


def test_holdout_keeps_every_id_on_one_side_and_skips_unlabelled_rows():
    from models.win.validation import holdout_split

    # given 40 ids with two rows each, a quarter churned, and two unlabelled rows
    ids = pd.Series(np.repeat([f"a{i}" for i in range(40)], 2))
    renewed = pd.Series(np.repeat(np.arange(40) % 4 != 0, 2).astype(float))
    labelled = pd.Series(np.ones(80, dtype=bool)).where(np.arange(80) >= 2, False)
    # when a quarter of the ids is held out
    train, test = holdout_split(ids, labelled, renewed, share=0.25, seed=0)
    # then no id is on both sides, no unlabelled row is used, and the split is stratified
    assert not set(ids[train]) & set(ids[test])
    assert {0, 1}.isdisjoint({*train, *test})
    assert len(test) == pytest.approx(20, abs=2)
    assert renewed[test].mean() == pytest.approx(0.75, abs=0.1)
    again = holdout_split(ids, labelled, renewed, share=0.25, seed=0)
    assert (again[1] == test).all(), "same seed, same split"
    with pytest.raises(ValueError, match="holdout share must be in"):
        holdout_split(ids, labelled, renewed, share=0.9, seed=0)
