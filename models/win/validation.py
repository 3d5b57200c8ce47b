"""Splits that respect time: out-of-time test on the latest period, with a gap of one horizon;
grouped by id where a table has no time. Never a random split of rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from models.errors import ModelInputError


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
        raise ModelInputError("no labelled snapshots to split")
    last = as_of[known].max()
    test_start = last - pd.Timedelta(days=test_days)
    train_end = test_start - pd.Timedelta(days=horizon_days)
    dates = as_of.to_numpy()
    test = np.flatnonzero(known & (dates > np.datetime64(test_start)))
    train = np.flatnonzero(known & (dates <= np.datetime64(train_end)))
    if test.size == 0 or train.size == 0:
        first = as_of[known].min()
        span = (last - first).days
        raise ModelInputError(
            f"out-of-time split is empty: {train.size} train rows up to {train_end.date()}, "
            f"{test.size} test rows after {test_start.date()}. Labelled as-of dates span "
            f"{span} days ({first.date()} to {last.date()}); the split needs more than "
            f"train.test_days + features.horizon_days = {test_days} + {horizon_days} = "
            f"{test_days + horizon_days}. Shorten them to the contracts' terms (monthly "
            "subscriptions: e.g. features.horizon_days: 35, train.test_days: 60, "
            "features.frequency: weekly; see docs/training.md#short-contracts)"
        )
    return train, test


def holdout_split(
    groups: pd.Series, labelled: pd.Series, renewed: pd.Series, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of (train, test) for a table with no time: a stratified holdout of whole
    ids (every row of an id on one side), the closest honest split when as-of dates are absent.

    Raises:
        ValueError: ``share`` is not in (0, 0.5], or too few labelled rows to split.
    """
    if not 0 < share <= 0.5:
        raise ValueError(f"holdout share must be in (0, 0.5], got {share}")
    known = np.flatnonzero(labelled.to_numpy(dtype=bool))
    y = renewed.to_numpy()[known].astype(int)
    folds = round(1 / share)
    if known.size < 2 * folds or np.bincount(y, minlength=2).min() < folds:
        raise ModelInputError(
            f"too few labelled rows ({known.size}, {int((y == 0).sum())} churned) for a "
            f"1/{folds} holdout"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fit, held = next(splitter.split(known, y, groups.to_numpy()[known]))
    return np.sort(known[fit]), np.sort(known[held])
