"""The spine: (account_id, as_of) snapshots with their renewal label, from contracts alone.

A snapshot exists when the account's active contract ends within ``(as_of, as_of + horizon]``;
its label is whether that contract renewed. Outcomes come from the contract's own ``renewed`` /
``renewal_arr`` columns where given, else from succession: a following contract of the same
account starting within ``grace_days`` of the end means renewed. A contract whose end plus grace
lies after the data's end has no known outcome (right-censored) whether or not a successor has
started already: it is scored, never trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.errors import FeatureInputError

FREQUENCIES = {"weekly": "W-MON", "monthly": "MS", "quarterly": "QS"}
LABEL_COLUMNS = ("renewed", "renewal_arr", "outcome", "contract_id", "end_date")
OUTCOMES = ("churn", "contraction", "flat", "expansion")
FLAT_BAND = 0.03


def as_of_grid(start: pd.Timestamp, end: pd.Timestamp, frequency: str) -> pd.DatetimeIndex:
    """Regular as-of dates from ``start`` to ``end`` inclusive (weekly, monthly or quarterly).

    Raises:
        ValueError: unknown frequency or an empty range.
    """
    if frequency not in FREQUENCIES:
        raise ValueError(f"frequency {frequency!r} is not one of {', '.join(FREQUENCIES)}")
    grid = pd.date_range(start.normalize(), end, freq=FREQUENCIES[frequency])
    if grid.empty:
        raise FeatureInputError(
            f"no {frequency} as-of date between {start.date()} and {end.date()}"
        )
    return grid


def contract_outcomes(
    contracts: pd.DataFrame, grace_days: int, data_end: pd.Timestamp
) -> pd.DataFrame:
    """Each contract with its outcome: renewed (1.0 / 0.0 / NaN if unknown), renewal ARR, class.

    Given ``renewed`` / ``renewal_arr`` values win; otherwise a successor starting within
    ``grace_days`` of the end (before or after) means renewed, with its ARR as renewal ARR.
    """
    ordered = contracts.sort_values(["account_id", "start_date", "contract_id"], kind="stable")
    nxt_start = ordered.groupby("account_id")["start_date"].shift(-1)
    nxt_arr = ordered.groupby("account_id")["arr"].shift(-1)
    grace = pd.Timedelta(days=grace_days)
    succeeded = (nxt_start - ordered["end_date"]).abs() <= grace
    # censored alike: inside the grace window a renewal is as unknown as a churn (a successor
    # seen early would otherwise label the data's last weeks renewals only)
    known = ordered["end_date"] + grace <= data_end
    derived = np.where(known, np.where(succeeded, 1.0, 0.0), np.nan)
    # an outcome given for a contract that ends after the data's end is not known yet
    given = _given(ordered, "renewed").where(ordered["end_date"] <= data_end, np.nan)
    renewed = np.where(given.notna(), given.astype(float), derived)
    given_arr = _given(ordered, "renewal_arr").where(ordered["end_date"] <= data_end).astype(float)
    derived_arr = np.where(renewed == 1.0, nxt_arr.fillna(ordered["arr"]), 0.0)
    renewal_arr = np.where(given_arr.notna(), given_arr, derived_arr)
    renewal_arr = np.where(np.isnan(renewed), np.nan, renewal_arr)
    return ordered.assign(
        renewed=renewed,
        renewal_arr=renewal_arr,
        outcome=outcome_class(renewed, ordered["arr"].to_numpy(float), renewal_arr),
    )


def _given(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), np.nan)


def outcome_class(renewed: np.ndarray, arr: np.ndarray, renewal_arr: np.ndarray) -> np.ndarray:
    """Churn / contraction / flat / expansion (±3 % is flat); empty where the outcome is unknown."""
    ratio = np.divide(renewal_arr, arr, out=np.ones_like(arr, dtype=float), where=arr > 0)
    cls = np.select(
        [renewed == 0.0, ratio < 1 - FLAT_BAND, ratio > 1 + FLAT_BAND],
        ["churn", "contraction", "expansion"],
        default="flat",
    ).astype(object)
    cls[np.isnan(renewed)] = None
    return cls


def make_training_spine(
    contracts: pd.DataFrame,
    grid: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    horizon_days: int,
    grace_days: int,
    data_end: pd.Timestamp,
) -> pd.DataFrame:
    """Snapshots whose active contract ends within the horizon, with label columns beside them.

    One row per (account_id, as_of): where several active contracts end within the horizon,
    the earliest-ending one is the renewal at stake. Censored snapshots are kept with a NaN
    label (for scoring and evaluation), and dropped by callers that train.
    """
    outcomes = contract_outcomes(contracts, grace_days, data_end)
    horizon = pd.Timedelta(days=horizon_days)
    frames = []
    for as_of in pd.DatetimeIndex(grid):
        active = outcomes[
            (outcomes["start_date"] <= as_of)
            & (outcomes["end_date"] > as_of)
            & (outcomes["end_date"] <= as_of + horizon)
        ]
        frames.append(active.assign(as_of=as_of))
    spine = pd.concat(frames, ignore_index=True) if frames else outcomes.iloc[0:0]
    return _one_per_account(spine)


def make_scoring_spine(contracts: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One snapshot per account with a contract in force at ``as_of`` (the one ending first)."""
    active = contracts[(contracts["start_date"] <= as_of) & (contracts["end_date"] > as_of)]
    spine = active.assign(as_of=as_of, renewed=np.nan, renewal_arr=np.nan, outcome=None)
    return _one_per_account(spine)


def _one_per_account(spine: pd.DataFrame) -> pd.DataFrame:
    ordered = spine.sort_values(["as_of", "account_id", "end_date", "contract_id"], kind="stable")
    first = ordered.drop_duplicates(["account_id", "as_of"], keep="first")
    days = (first["end_date"] - first["as_of"]).dt.days
    columns = ["account_id", "as_of", "contract_id", "end_date", "arr", "renewed"]
    columns += ["renewal_arr", "outcome"]
    return first[columns].assign(days_to_renewal=days.astype(int)).reset_index(drop=True)
