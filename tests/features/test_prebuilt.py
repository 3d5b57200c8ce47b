"""A prebuilt snapshot table becomes the features stage's frame: roles, types, label, catalog."""

import numpy as np
import pandas as pd
import pytest

from features.config import PrebuiltTable
from features.prebuilt import prebuilt_scoring_set, prebuilt_training_set

SPEC = PrebuiltTable(
    id_column="customerID", label_column="Churn", churn_value="Yes", arr_column="Monthly Charges"
)


def telco_like() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customerID": ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"],
            "tenure": [1, 34, 2, 45, 8, 22],
            "Contract": ["Month-to-month", "One year", "Month-to-month", "Two year", None, "x"],
            "Monthly Charges": [29.85, 56.95, 53.85, 42.3, 70.7, 99.65],
            "TotalCharges": ["29.85", "1889.5", " ", "1840.75", "151.65", "820.5"],
            "Paperless": [True, False, True, False, True, True],
            "note": ["n1", "n2", "n3", "n4", "n5", "n6"],
            "signup": pd.to_datetime(["2020-01-01"] * 6),
            "country": ["US"] * 6,
            "Churn": ["No", "No", "Yes", "No", "Yes", " yes "],
        }
    )


def test_roles_types_and_label_are_inferred_without_hand_work():
    # given a table with numbers as text, blanks, booleans, an id-like column, a date and a constant
    frame = telco_like()
    original = frame.copy()
    # when it is typed as a training set
    built = prebuilt_training_set(frame, SPEC)
    table = built.table
    # then keys, label and ARR come first, mapped from the named columns
    assert list(table.columns[:6]) == [
        "account_id", "as_of", "renewed", "arr", "contract_id", "days_to_renewal"
    ]  # fmt: skip
    assert table["account_id"].tolist() == ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"]
    assert table["renewed"].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # " yes " is churn too
    assert table["arr"].tolist() == [29.85, 56.95, 53.85, 42.3, 70.7, 99.65]
    assert table["as_of"].isna().all() and table["days_to_renewal"].isna().all()
    # numbers written as text are numbers (the blank is missing), booleans 0/1, text categories
    assert table["totalcharges"].tolist()[:2] == [29.85, 1889.5]
    assert np.isnan(table.loc[2, "totalcharges"])
    assert table["paperless"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert isinstance(table["contract"].dtype, pd.CategoricalDtype)
    assert set(table["contract"].cat.categories) == {"Month-to-month", "One year", "Two year", "x"}
    # ARR is also a feature, under a column-name-safe name
    assert table["monthly_charges"].tolist() == table["arr"].tolist()
    # an identifier-like text column, a date and a constant are left out, with their reasons
    assert set(built.skipped) == {"note", "signup", "country"}
    assert "distinct values" in built.skipped["note"]
    assert "date" in built.skipped["signup"] and built.skipped["country"] == "constant"
    catalog = built.catalog.set_index("name")
    assert catalog.loc["totalcharges", "source_column"] == "TotalCharges"
    assert catalog.loc["contract", "categorical"]
    assert set(catalog["component"]) == {"profile"}
    assert "Churn" not in set(catalog["source_column"]), "the label is never a feature"
    pd.testing.assert_frame_equal(frame, original)  # the input is not mutated


def test_scoring_applies_the_training_types_and_ignores_the_label():
    built = prebuilt_training_set(telco_like(), SPEC)
    later = (
        telco_like()
        .drop(columns="Churn")
        .assign(
            TotalCharges=[1, 2, 3, 4, 5, 6], Contract=["Two year", "new kind", None, "x", "x", "x"]
        )
    )
    scored = prebuilt_scoring_set(later, SPEC, built.catalog)
    assert scored["renewed"].isna().all()
    assert list(scored.columns[6:]) == built.catalog["name"].tolist()
    assert scored["totalcharges"].dtype == float
    assert scored["contract"].astype(object).tolist()[:2] == ["Two year", "new kind"]


def test_scoring_names_a_trained_column_that_is_absent():
    built = prebuilt_training_set(telco_like(), SPEC)
    with pytest.raises(ValueError, match=r"trained on are absent: \['tenure'\]"):
        prebuilt_scoring_set(telco_like().drop(columns="tenure"), SPEC, built.catalog)


def test_time_column_parses_and_repeated_snapshots_are_refused():
    frame = telco_like().assign(snap=["2025-01-01"] * 3 + ["2025-02-01"] * 3)
    spec = SPEC.model_copy(update={"as_of_column": "snap"})
    built = prebuilt_training_set(frame, spec)
    assert built.table["as_of"].tolist()[2:4] == [pd.Timestamp("2025-01-01"),
                                                  pd.Timestamp("2025-02-01")]  # fmt: skip
    twice = frame.assign(customerID=["a"] * 6, snap=["2025-01-01"] * 6)
    with pytest.raises(ValueError, match=r"\(id, as_of\) repeats"):
        prebuilt_training_set(twice, spec)
    with pytest.raises(ValueError, match="'snap' has values that are not dates: \\['soon'\\]"):
        prebuilt_training_set(frame.assign(snap=["soon", *frame["snap"][1:]]), spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            SPEC.model_copy(update={"label_column": "Exited"}),
            r"no column \{'label_column': 'Exited'",
        ),
        (SPEC.model_copy(update={"churn_value": "Gone"}), "never equals churn value 'Gone'"),
        (SPEC.model_copy(update={"churn_value": None}), r"has values \[' yes ', 'No', 'Yes'\]"),
        (SPEC.model_copy(update={"drop_columns": ["nope"]}), r"drop_columns not in the table"),
        (SPEC.model_copy(update={"components": {"tenure": "vibes"}}), "'vibes' is not a component"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        prebuilt_training_set(telco_like(), spec)


def test_a_zero_one_label_needs_no_churn_value_and_blank_labels_stay_unknown():
    frame = telco_like().assign(Churn=[1, 1, 0, None, 0, 1])
    built = prebuilt_training_set(frame, SPEC.model_copy(update={"churn_value": None}))
    assert built.table["renewed"].tolist()[:3] == [1.0, 1.0, 0.0]
    assert np.isnan(built.table["renewed"][3])


def test_scoring_takes_each_ids_latest_snapshot_and_never_a_future_one():
    from features.prebuilt import latest_snapshots

    frame = pd.concat(
        [telco_like().assign(snap=day) for day in ("2025-01-01", "2025-02-01")]
        + [telco_like().assign(snap="2025-03-01", tenure=999)]
    )
    spec = SPEC.model_copy(update={"as_of_column": "snap"})
    built = prebuilt_training_set(frame.reset_index(drop=True), spec)
    scoring = prebuilt_scoring_set(frame.reset_index(drop=True), spec, built.catalog)
    latest = latest_snapshots(scoring, pd.Timestamp("2025-02-15"))
    assert latest["account_id"].tolist() == ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"]
    assert (latest["as_of"] == pd.Timestamp("2025-02-01")).all()
    assert 999 not in latest["tenure"].tolist(), "a snapshot after as_of is the future"
    with pytest.raises(ValueError, match=r"\(id, as_of\) repeats"):
        prebuilt_scoring_set(pd.concat([telco_like(), telco_like()]), SPEC, built.catalog)
    with pytest.raises(ValueError, match="no snapshot is dated on or before 2024-12-01"):
        latest_snapshots(scoring, pd.Timestamp("2024-12-01"))


def test_label_side_columns_are_never_features():
    built = prebuilt_training_set(telco_like().assign(renewal_arr=1.0, outcome="churn"), SPEC)
    assert {"renewal_arr", "outcome"} <= set(built.skipped)
    assert "label-side" in built.skipped["outcome"]


def test_scoring_reads_booleans_written_as_text_and_blanks_as_unknown():
    built = prebuilt_training_set(telco_like(), SPEC)
    later = telco_like().assign(Paperless=["True", "false", "", "TRUE", "False", "true"],
                                Contract=["One year", " ", "x", "x", "x", "x"])  # fmt: skip
    scored = prebuilt_scoring_set(later, SPEC, built.catalog)
    assert scored["paperless"].tolist()[:2] == [1.0, 0.0] and np.isnan(scored["paperless"][2])
    assert pd.isna(scored["contract"][1]), "a blank is unknown, not a category of its own"
