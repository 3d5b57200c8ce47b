"""The experiment's read-out: when each randomised row's surrogate is read."""

from __future__ import annotations

import pandas as pd

from pipeline.shared.experiment import _last_day


def test_a_rows_window_ends_the_day_before_its_contract_does():
    # given three accounts decided on 1 February and read 60 days later (2 April)
    contracts = pd.DataFrame(
        {
            "contract_id": ["a1", "b1", "c1"],
            "account_id": ["a", "b", "c"],
            "start_date": pd.to_datetime(["2025-03-15", "2025-06-01", "2024-01-01"]),
            "end_date": pd.to_datetime(["2026-03-15", "2026-06-01", "2025-01-01"]),
            "arr": [10_000.0, 20_000.0, 5_000.0],
            "renewed": [None, None, False],
            "renewal_arr": [None, None, None],
        }
    )
    rows = pd.DataFrame(
        {"account_id": ["a", "b", "c"], "decided_at": pd.to_datetime(["2026-02-01"] * 3)}
    )
    after = rows["decided_at"] + pd.Timedelta(days=60)
    # when the last day of each row's window is found
    last = _last_day(contracts, rows, after)
    # then a contract ending inside the window is read on its last day (a churn is the
    # account's health as it left, not 0); a longer one at the window's end; an account
    # without a contract in force at the decision, at the window's end too
    assert last.tolist() == list(pd.to_datetime(["2026-03-14", "2026-04-02", "2026-04-02"]))
