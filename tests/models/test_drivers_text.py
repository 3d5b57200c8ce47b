"""Drivers in plain words, filled a feature at a time: the same frame, byte for byte, as the
account-at-a-time implementation it replaced (kept below as the reference)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.explain.drivers import _pieces, _ranked, describe, describe_all, top_drivers
from models.scoring.accounts import _text

SPECS = ["", ".0f", ".1f", "+.0f", ".0%", "+.0%", ",.0f", ",.1f", "f", "-.1f", " .0%", "g", ".2e"]


def reference_top_drivers(points, values, descriptions, components, k=3):
    """The implementation before templates were filled per feature (one describe per row)."""
    names = np.asarray(points.columns)
    matrix = points.to_numpy()
    ascending = np.argsort(matrix, axis=1, kind="stable")
    descending = np.argsort(-matrix, axis=1, kind="stable")
    parts = []
    for kind, order in (("risk", ascending[:, :k]), ("strength", descending[:, :k])):
        rows, ranks = np.indices(order.shape).reshape(2, -1)
        cols = order[rows, ranks]
        got = matrix[rows, cols]
        keep = got < 0 if kind == "risk" else got > 0
        parts.append(
            pd.DataFrame(
                {
                    "row": points.index.to_numpy()[rows[keep]],
                    "kind": kind,
                    "rank": ranks[keep] + 1,
                    "feature": names[cols[keep]],
                    "points": got[keep],
                    "_i": rows[keep],
                    "_j": cols[keep],
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    value_matrix = values[list(names)].to_numpy(dtype=object)
    picked = value_matrix[frame["_i"].to_numpy(), frame["_j"].to_numpy()]
    texts = np.empty(len(frame), dtype=object)
    columns_used = frame["_j"].to_numpy()
    for j in np.unique(columns_used):
        where = np.flatnonzero(columns_used == j)
        template = descriptions.get(names[j], names[j])
        texts[where] = [describe(template, v) for v in picked[where]]
    frame = frame.assign(
        component=[components.get(f, "other") for f in frame["feature"]], value=picked, text=texts
    ).sort_values(["_i", "kind", "rank"], kind="stable")
    columns = ["row", "kind", "rank", "feature", "component", "value", "points", "text"]
    return frame[columns].reset_index(drop=True)


AWKWARD = [0.0, -0.0, 1.0, 2.0, -1.0, 0.5, 1.5, 2.5, -2.5, 0.25, 0.35, 0.05, 0.15, 2.675, 0.125,
           0.005, 0.995, 0.9999, -0.04, -0.004, 999.95, 999.5, 1234.5, 1e15, 1e16, 2.0**50,
           2.0**53 + 2, 1e22, 1e-5, 5e-324, 123456789.125, -9876543.21, np.inf, -np.inf,
           np.nan]  # fmt: skip


def _sample(rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, dict, dict]:
    """Values of every kind of feature the catalog holds, and their descriptions."""
    rng = np.random.default_rng(seed)

    def pick(options):
        return np.asarray(options, dtype=object)[rng.integers(0, len(options), rows)]

    def floats(scale):
        drawn = rng.normal(0, scale, rows)
        awkward = rng.random(rows) < 0.3
        drawn[awkward] = rng.choice(AWKWARD, awkward.sum())
        return drawn

    tickets = rng.poisson(1.2, rows)
    days = np.where(rng.random(rows) < 0.2, np.nan, np.rint(rng.exponential(40, rows)))
    values = pd.DataFrame(
        {
            "tickets_30d": tickets,  # int counts: 0, 1 (singular) and more
            "seats": tickets.astype("float64"),  # whole numbers stored as floats
            "days_since_login": days,  # days since, blank when never
            "usage_rate": floats(0.4),
            "arr_change": floats(0.2),
            "arr_usd": np.abs(floats(2e5)),
            "overdue_usd": floats(3e6),
            "csat": floats(2.0),
            "nps_change": floats(3.0),
            "raw_float": floats(1e3),
            "ratio_g": floats(10.0),
            "tiny_e": floats(1e-3),
            "float32": floats(10.0).astype("float32"),
            "segment": pd.Categorical(pick(["smb", "mid_market", "enterprise", None])),
            "plan_code": pd.Categorical(pick([1, 2, 3])),
            "nps_text": pd.Categorical(pick(["promoter", "detractor", "n/a"])),
            "has_champion": rng.random(rows) < 0.5,
            "contacts": pd.array(pick([1, 2, None]), dtype="Int64"),
            "free_text": pick(["a", "b\\c", None, "{x}"]),
            "no_template": floats(1.0),
            "literal_braces": floats(1.0),
            "repr_value": floats(1.0),
            "int_as_percent": rng.integers(-3, 4, rows),
            "width": floats(100.0),
        }
    )
    descriptions = {
        "tickets_30d": "{value} support ticket{s} in the last 30 days",  # a plural
        "seats": "{value:.0f} seats under contract",
        "days_since_login": "{value:.0f} day{s} since anyone used the product",
        "usage_rate": "usage over the last 30 days is {value:.0%} of the 60 before",
        "arr_change": "ARR changed {value:+.0%} at the last renewal",
        "arr_usd": "ARR is {value:,.0f}",
        "overdue_usd": "{value:,.1f} overdue ({value:,.0f} rounded)",
        "csat": "support satisfaction (CSAT) averaged {value:.1f}",
        "nps_change": "NPS moved by {value:+.0f} since the previous answer",
        "raw_float": "{value}",
        "ratio_g": "ratio = {value:g}",
        "tiny_e": "tiny {value:.2e} and {value:f}",
        "float32": "{value} / {value:.1f}",
        "segment": "segment is {value}",
        "plan_code": "plan {value:.0f}",
        "nps_text": "the latest NPS answer was {value:.0f}",  # a number format on text
        "has_champion": "a champion is known: {value:.0f} (1 = yes)",
        "contacts": "{value} contacts known",
        "free_text": "said {value}",
        "literal_braces": "{{braces}} kept: {value:.1f}",
        "repr_value": "{value!r} as written",
        "int_as_percent": "{value:.0%} and {value:+,.1f}",
        "width": "[{value:>9.2f}]",
    }  # "no_template" has none: its name is its text
    components = {name: name.split("_")[0] for name in list(values.columns)[::2]}
    return values, descriptions, components


def _points(values: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Points with ties within rows (rounded), zeros and both signs."""
    rng = np.random.default_rng(seed)
    drawn = np.round(rng.normal(0, 2, values.shape), 1)
    drawn[rng.random(values.shape) < 0.2] = 0.0
    return pd.DataFrame(drawn, columns=values.columns, index=values.index * 10 + 7)


def test_drivers_are_the_reference_frame_byte_for_byte():
    # given every kind of feature value (blank, zero, negative, ties on the last digit, text)
    values, descriptions, components = _sample()
    points = _points(values)
    before = values.copy()
    for k in (1, 3, 5):
        # when the drivers are put in words a feature at a time
        got = top_drivers(points, values, descriptions, components, k)
        # then the frame is the reference's: same rows, order, dtypes, values and text
        expected = reference_top_drivers(points, values, descriptions, components, k)
        pd.testing.assert_frame_equal(got, expected)
        assert got["text"].tolist() == expected["text"].tolist()
    pd.testing.assert_frame_equal(values, before)


@pytest.mark.parametrize("kind", ["risk", "strength"])
def test_one_kind_alone_is_that_kinds_rows_of_both(kind):
    # given every kind of value, ranked among some of the columns
    values, descriptions, components = _sample()
    points = _points(values)
    among = list(values.columns[1::2])
    for k in (1, 3):
        # when only one kind is put in words
        got = top_drivers(points, values, descriptions, components, k, columns=among,
                          kinds=[kind])  # fmt: skip
        # then it is those rows of the frame with both kinds, in the same order and words
        both = top_drivers(points, values, descriptions, components, k, columns=among)
        expected = both[both["kind"] == kind].reset_index(drop=True)
        assert len(got) > len(values) // 2
        pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(ValueError, match="kinds"):
        top_drivers(points, values, descriptions, components, 3, kinds=["growth"])


def test_values_shown_once_per_distinct_value_read_as_each_row_shown_alone():
    # given every kind of value (blank, zero and minus zero, ties, text, integers)
    values, descriptions, components = _sample()
    points = _points(values)
    shown: list[object] = []

    def text(value: object) -> str | None:
        shown.append(value)
        return _text(value)

    # when the drivers' values are shown as text while they are put in words
    got = top_drivers(points, values, descriptions, components, 3, value_text=text)
    # then every row reads as the value shown on its own, the rest of the frame unchanged
    raw = top_drivers(points, values, descriptions, components, 3)
    pd.testing.assert_frame_equal(got, raw.assign(value=raw["value"].map(_text)))
    assert len(shown) < len(got)
    # and a feature whose value repeats is shown once, however many rows it drives
    shown.clear()
    repeated = pd.DataFrame({"seats": np.full(500, 12.0), "segment": pd.Categorical(["smb"] * 500)})
    many = top_drivers(_points(repeated), repeated, {}, {}, 1, value_text=text)
    assert len(many) > 400 and sorted(map(str, shown)) == ["12.0", "smb"]


def test_every_feature_of_the_sample_is_put_in_words():
    values, descriptions, components = _sample()
    got = top_drivers(_points(values), values, descriptions, components, 5)
    assert set(got["feature"]) == set(values.columns), "the sample should reach every template"
    texts = set(got["text"])
    assert "… days since anyone used the product (not known)" in texts


def test_counts_read_whole_names_read_spoken_and_blanks_read_in_their_own_words():
    """Plain words, as a CS leader read them: "145.0 'dashboard_view' events", "industry:
    financial_services", "ARR changed unknown at the last renewal"."""
    assert describe("{value} dashboard view events", 145.0) == "145 dashboard view events"
    assert describe("{value} events", 12345.0) == "12,345 events"
    assert describe("{value} events", np.int64(7)) == "7 events"
    assert describe("{value} per seat", 2.25) == "2.2 per seat"  # to one decimal, half to even
    assert describe("industry: {value}", "financial_services") == "industry: financial services"
    said = "ARR changed {value:+.0%} at the last renewal"
    assert describe(said, np.nan, "no earlier renewal") == "no earlier renewal"
    assert describe(said, None) == "ARR changed … at the last renewal (not known)"
    assert describe(said, 0.25) == "ARR changed +25% at the last renewal"
    # "1 invoices fell due": {s} is a plural's s, left out when the number reads 1
    assert describe("{value} invoice{s} overdue", 1.0) == "1 invoice overdue"
    assert describe("{value} invoice{s} overdue", 2) == "2 invoices overdue"
    assert describe("{value} invoice{s} overdue", 1.4) == "1.4 invoices overdue"
    assert describe("{value:.0f} day{s} ago", 1.4) == "1 day ago", "as printed: rounded"
    assert describe("{value} invoice{s} overdue", None) == "… invoices overdue (not known)"
    # and the vectorised fill reads the same, blanks included
    values = pd.Series([145.0, np.nan, 12345.0, 2.5, -0.0])
    got = describe_all("{value} events", values, "no events yet").tolist()
    assert got == ["145 events", "no events yet", "12,345 events", "2.5 events", "-0 events"]


def test_ties_and_wide_k_follow_column_order():
    # given rows whose points tie, zero rows, NaN points and k beyond the column count
    points = pd.DataFrame(
        {"a": [-1.0, 0.0, 2.0, np.nan], "b": [-1.0, 0.0, 2.0, -1.0], "c": [-1.0, 0.0, 2.0, 1.0]}
    )
    values = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0.5, 0.25, np.nan, 1.0], "c": ["x"] * 4})
    words = {"a": "{value} a", "b": "{value:.1f} b"}
    for k in (1, 2, 3, 4):
        got = top_drivers(points, values, words, {}, k)
        pd.testing.assert_frame_equal(got, reference_top_drivers(points, values, words, {}, k))
    first = top_drivers(points, values, words, {}, 2)
    assert first.loc[first["row"] == 0, "feature"].tolist() == ["a", "b"], "ties by column order"


def test_no_drivers_gives_the_reference_empty_frame():
    points = pd.DataFrame({"a": [0.0, 0.0], "b": [0.0, 0.0]})
    values = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    got = top_drivers(points, values, {}, {})
    expected = reference_top_drivers(points, values, {}, {})
    # the reference's empty component column came out float64 (pandas' dtype of []): now object
    pd.testing.assert_frame_equal(got, expected.astype({"component": object}))
    assert got.empty


def test_a_missing_value_column_raises_naming_it():
    points = pd.DataFrame({"a": [1.0], "gone": [-1.0]})
    with pytest.raises(KeyError, match="gone"):
        top_drivers(points, pd.DataFrame({"a": [1.0]}), {}, {})


@settings(max_examples=300, deadline=None)
@given(
    numbers=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30),
    spec=st.sampled_from(SPECS),
)
def test_numbers_read_as_python_formats_them(numbers, spec):
    # given any floats, including near-ties on the last digit shown, and a catalog format
    template = f"x {{value:{spec}}} y" if spec else "x {value} y"
    values = pd.Series(numbers + [round(n, 2) + 0.005 for n in numbers if abs(n) < 1e12])
    # when they are described all at once, then each text is describe's
    assert describe_all(template, values).tolist() == [describe(template, v) for v in values]


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=30),
    spec=st.sampled_from(SPECS),
)
def test_integers_read_as_python_formats_them(numbers, spec):
    template = f"{{value:{spec}}}" if spec else "{value} items"
    values = pd.Series(numbers, dtype="int64")
    assert describe_all(template, values).tolist() == [describe(template, v) for v in
                                                        values.to_numpy(dtype=object)]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    numbers=st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([1.0, -1.0, 0.5, 1.5, -0.5, -1.5, 0.99, 1.49, -0.0, 2.5]),
        ),
        min_size=1,
        max_size=30,
    ),
    spec=st.sampled_from(SPECS),
)
def test_plurals_read_as_describe_reads_them(numbers, spec):
    # given a count's plural under every format: exactly one under a bare {value}, else rounded
    template = f"{{value:{spec}}} day{{s}} ({{s}})" if spec else "{value} ticket{s}"
    values = pd.Series(numbers)
    # when they are described all at once, then each text is describe's
    assert describe_all(template, values).tolist() == [describe(template, v) for v in values]
    # and "{s}" in escaped braces is no plural: such a template is left to describe itself
    assert _pieces("{value} of {{s}}") is None


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_ranking_is_a_stable_sort_each_way_without_nan(order, k):
    # given rows with ties, NaN, rows of fewer values than k and a subset of columns
    rng = np.random.default_rng(k)
    matrix = np.round(rng.normal(0, 1, (1500, 12)), 1)
    matrix[rng.random(matrix.shape) < 0.15] = np.nan
    matrix[::50, 2:] = np.nan  # two values at most
    matrix = np.asarray(matrix, order=order)
    for among in (None, np.array([11, 0, 5, 3, 8, 2, 9])):
        seen = matrix if among is None else matrix[:, among]
        # when ranked, then each side is the stable argsort's first k among the values present
        got = _ranked(matrix, k, among)
        shown = min(k, seen.shape[1])
        for r, row in enumerate(seen):
            present = np.flatnonzero(~np.isnan(row))
            low = present[np.argsort(row[present], kind="stable")][:shown]
            high = present[np.argsort(-row[present], kind="stable")][:shown]
            pad = [-1] * (shown - len(low))
            assert got[r].tolist() == [*low, *pad, *high, *pad], (r, row)
