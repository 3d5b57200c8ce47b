"""Splits that respect time: out-of-time test on the latest period, with a gap of one horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd


def out_of_time_split(
    as_of: pd.Series, labelled: pd.Series, horizon_days: int, test_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of (train, test): test = labelled snapshots in the last ``test_days`` of
    labelled as-of dates; train = labelled snapshots at least one horizon before the test starts,
    so no training label is decided inside the test period.

    Raises:
        ValueError: nothing is labelled, or the split leaves train or test empty.
    """
    known = labelled.to_numpy(dtype=bool)
    if not known.any():
        raise ValueError("no labelled snapshots to split")
    last = as_of[known].max()
    test_start = last - pd.Timedelta(days=test_days)
    train_end = test_start - pd.Timedelta(days=horizon_days)
    dates = as_of.to_numpy()
    test = np.flatnonzero(known & (dates > np.datetime64(test_start)))
    train = np.flatnonzero(known & (dates <= np.datetime64(train_end)))
    if test.size == 0 or train.size == 0:
        raise ValueError(
            f"out-of-time split is empty: {train.size} train rows up to {train_end.date()}, "
            f"{test.size} test rows after {test_start.date()}"
        )
    return train, test
