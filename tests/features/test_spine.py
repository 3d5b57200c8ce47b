"""Spine and labels: snapshots within the horizon, outcomes given or derived, censoring."""

import numpy as np
import pandas as pd
import pytest

from features.spine import (
    as_of_grid,
    contract_outcomes,
    make_scoring_spine,
    make_training_spine,
)

T = pd.Timestamp


def contracts() -> pd.DataFrame:
    # A1 renews (successor 5 days late), A2 churns, A3 monthly renewing, A4 ends after data end
    return pd.DataFrame(
        {
            "contract_id": ["a1", "a1b", "a2", "a3m1", "a3m2", "a4"],
            "account_id": ["A1", "A1", "A2", "A3", "A3", "A4"],
            "start_date": [T("2024-01-01"), T("2025-01-06"), T("2024-03-01"), T("2024-11-01"),
                           T("2024-12-01"), T("2024-08-01")],
            "end_date": [T("2025-01-01"), T("2026-01-06"), T("2025-03-01"), T("2024-12-01"),
                         T("2025-01-01"), T("2025-08-01")],
            "arr": [1000.0, 1200.0, 500.0, 120.0, 120.0, 50_000.0],
        }
    )  # fmt: skip


DATA_END = T("2025-05-01")


def test_outcomes_are_derived_from_succession_within_grace():
    out = contract_outcomes(contracts(), grace_days=30, data_end=DATA_END).set_index("contract_id")
    assert out.loc["a1", "renewed"] == 1.0
    assert out.loc["a1", "renewal_arr"] == 1200.0
    assert out.loc["a1", "outcome"] == "expansion"
    assert out.loc["a2", "renewed"] == 0.0, "no successor and end + grace before the data's end"
    assert out.loc["a2", "outcome"] == "churn"
    assert out.loc["a3m1", "renewed"] == 1.0
    assert out.loc["a3m1", "outcome"] == "flat"
    # no successor yet, but the end (plus grace) is after the data's end: unknown, not churn
    assert np.isnan(out.loc["a1b", "renewed"])
    assert np.isnan(out.loc["a4", "renewed"])
    assert pd.isna(out.loc["a4", "outcome"])
    # a3m2 ended 2025-01-01 with no successor, known by the data's end: churn
    assert out.loc["a3m2", "renewed"] == 0.0


def test_given_outcomes_win_over_succession():
    given = contracts().assign(
        renewed=[False, None, True, None, None, None],
        renewal_arr=[0.0, None, 400.0, None, None, None],
    )
    out = contract_outcomes(given, grace_days=30, data_end=DATA_END).set_index("contract_id")
    assert out.loc["a1", "renewed"] == 0.0
    assert out.loc["a2", "renewed"] == 1.0
    assert out.loc["a2", "renewal_arr"] == 400.0
    assert out.loc["a2", "outcome"] == "contraction"


def test_training_spine_takes_contracts_ending_within_the_horizon():
    grid = as_of_grid(T("2024-09-01"), T("2025-03-01"), "monthly")
    spine = make_training_spine(
        contracts(), grid, horizon_days=180, grace_days=30, data_end=DATA_END
    )
    a1 = spine[spine["account_id"] == "A1"]
    # a1 ends 2025-01-01: snapshots from 2024-09-01 (122 days ahead) to 2024-12-01, not at the end
    assert a1["as_of"].dt.strftime("%Y-%m").tolist() == ["2024-09", "2024-10", "2024-11", "2024-12"]
    assert a1["days_to_renewal"].tolist() == [122, 92, 61, 31]
    assert (a1["renewed"] == 1.0).all()
    # the monthly account: one snapshot per month, for the contract in force
    a3 = spine[spine["account_id"] == "A3"].set_index("as_of")
    assert a3.loc[T("2024-11-01"), "contract_id"] == "a3m1"
    assert a3.loc[T("2024-12-01"), "contract_id"] == "a3m2"
    assert a3.loc[T("2024-12-01"), "renewed"] == 0.0
    # A4 ends 2025-08-01: 2025-02-01 is 181 days before it, so its first snapshot is 2025-03-01
    a4 = spine[spine["account_id"] == "A4"]
    assert a4["as_of"].min() == T("2025-03-01")
    assert a4["renewed"].isna().all()
    assert not spine.duplicated(["account_id", "as_of"]).any()


def test_label_columns_sit_beside_the_key_only():
    grid = as_of_grid(T("2024-09-01"), T("2024-10-01"), "monthly")
    spine = make_training_spine(contracts(), grid, 180, 30, DATA_END)
    assert list(spine.columns) == [
        "account_id", "as_of", "contract_id", "end_date", "arr", "renewed", "renewal_arr",
        "outcome", "days_to_renewal",
    ]  # fmt: skip


def test_scoring_spine_has_one_row_per_account_in_force():
    spine = make_scoring_spine(contracts(), T("2024-12-15"))
    assert spine["account_id"].tolist() == ["A1", "A2", "A3", "A4"]
    assert spine.set_index("account_id").loc["A3", "contract_id"] == "a3m2"
    assert spine["renewed"].isna().all()


def test_inputs_are_not_mutated():
    frame = contracts()
    before = frame.copy()
    make_training_spine(frame, as_of_grid(T("2024-09-01"), T("2025-01-01"), "monthly"), 180, 30,
                        DATA_END)  # fmt: skip
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize(("frequency", "count"), [("weekly", 5), ("monthly", 2), ("quarterly", 1)])
def test_grid_frequencies(frequency, count):
    assert len(as_of_grid(T("2024-01-01"), T("2024-02-01"), frequency)) == count


def test_bad_frequency_is_named():
    with pytest.raises(ValueError, match="'daily'"):
        as_of_grid(T("2024-01-01"), T("2024-02-01"), "daily")


def test_renewals_inside_the_grace_window_are_censored_like_churns():
    # B1 ends 10 days before the data's end and its successor has started: renewed, but a churn
    # of the same date could not be seen yet, so both are unknown (else the data's last weeks
    # would be labelled renewals only)
    frame = pd.DataFrame(
        {
            "contract_id": ["b1", "b1n", "b2"],
            "account_id": ["B1", "B1", "B2"],
            "start_date": [T("2024-04-21"), T("2025-04-21"), T("2024-04-21")],
            "end_date": [T("2025-04-21"), T("2026-04-21"), T("2025-04-21")],
            "arr": [100.0, 100.0, 100.0],
        }
    )
    out = contract_outcomes(frame, grace_days=30, data_end=DATA_END).set_index("contract_id")
    assert np.isnan(out.loc["b1", "renewed"]) and np.isnan(out.loc["b2", "renewed"])
    later = contract_outcomes(frame, grace_days=30, data_end=T("2025-05-21"))
    assert later.set_index("contract_id")["renewed"].loc[["b1", "b2"]].tolist() == [1.0, 0.0]
