"""A prebuilt snapshot table (one row per account and as-of date) as a training or scoring set.

Teams that already keep one row per account snapshot skip the raw tables: this module turns such
a table into the same frame the feature families produce (``account_id``, ``as_of``,
``renewed``, ``arr``, ``days_to_renewal``, then the features) and its catalog, so training,
scoring and explanations run unchanged. Column types are inferred once, at training time, and
recorded in the catalog; scoring applies the catalog, so both see exactly the same features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.base import COMPONENTS, Feature, slug
from features.build import make_catalog
from features.config import PrebuiltTable
from features.errors import FeatureInputError

FAMILY = "table"
RESERVED = {
    "account_id", "as_of", "renewed", "arr", "renewal_arr", "outcome", "contract_id",
    "days_to_renewal",
}  # fmt: skip
LABEL_SIDE = {"renewed", "renewal_arr", "outcome", "churn", "churned"}
NUMERIC_TEXT_SHARE = 0.95  # text columns this share of whose non-blank values parse as numbers
TRUE_SPELLINGS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_SPELLINGS = frozenset({"false", "f", "no", "n", "0", "0.0"})
SHOWN = 5  # offending values and rows named in an error


@dataclass(frozen=True)
class PrebuiltSet:
    """The table in the features stage's shape, its catalog, and what was left out and why."""

    table: pd.DataFrame
    catalog: pd.DataFrame
    skipped: dict[str, str]


def prebuilt_training_set(frame: pd.DataFrame, spec: PrebuiltTable) -> PrebuiltSet:
    """Infer each column's role and type, map the label to ``renewed`` and build the catalog.

    Args:
        frame: one row per snapshot, as read from the team's export.
        spec: which columns hold the id, the label, ARR and the as-of date.

    Returns:
        The training set (key, label and ARR columns first, then the features) and its catalog.

    Raises:
        ValueError: a named column is absent, the label has values other than the churn value
            and its complement, a number is infinite, or an (id, as_of) pair repeats.
    """
    _require(frame, spec, label=True)
    base = _base_columns(frame, spec, label=True)
    features: list[Feature] = []
    columns: dict[str, pd.Series] = {}
    skipped: dict[str, str] = {}
    taken = set(RESERVED)
    for column in _feature_columns(frame, spec):
        if slug(column) in LABEL_SIDE:
            skipped[column] = "label-side (an outcome is never a feature)"
            continue
        values, reason = _infer(frame[column], spec.max_categories)
        if values is None:
            skipped[column] = reason
            continue
        if not isinstance(values.dtype, pd.CategoricalDtype):
            _require_finite(values, column)
        name = _unique_name(slug(column), taken)
        taken.add(name)
        columns[name] = values
        features.append(_feature(name, column, values, spec))
    if not features:
        raise FeatureInputError(f"prebuilt table: no usable feature columns ({skipped})")
    table = pd.concat([base, pd.DataFrame(columns, index=frame.index)], axis=1)
    return PrebuiltSet(table.reset_index(drop=True), make_catalog(table, features), skipped)


def prebuilt_scoring_set(
    frame: pd.DataFrame, spec: PrebuiltTable, catalog: pd.DataFrame
) -> pd.DataFrame:
    """Another table of the same form, typed as the catalog says (its label, if any, ignored).

    Raises:
        ValueError: a column the model was trained on is absent, or a number is infinite.
    """
    _require(frame, spec, label=False)
    sources = dict(zip(catalog["name"], catalog["source_column"], strict=True))
    absent = [s for s in sources.values() if s not in frame.columns]
    if absent:
        raise FeatureInputError(
            f"prebuilt table: columns the model was trained on are absent: {absent}"
        )
    base = _base_columns(frame, spec, label=False)
    columns = {}
    for row in catalog.itertuples():
        values = frame[row.source_column]
        if row.categorical:
            text = values.astype("string").str.strip()
            columns[row.name] = text.where(text != "").astype("category")
        else:
            columns[row.name] = _require_finite(_as_number(values), row.source_column)
    table = pd.concat([base, pd.DataFrame(columns, index=frame.index)], axis=1)
    return table.reset_index(drop=True)


def latest_snapshots(table: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per id to score at ``as_of``: its latest snapshot dated at or before it.

    Rows dated after ``as_of`` are the future and never scored. A table without dates has one
    row per id already (:func:`prebuilt_scoring_set` refuses repeats).

    Raises:
        ValueError: no row is dated on or before ``as_of``.
    """
    if table["as_of"].isna().all():
        return table
    timely = table[table["as_of"].notna() & (table["as_of"] <= as_of)]
    if timely.empty:
        raise FeatureInputError(f"prebuilt table: no snapshot is dated on or before {as_of.date()}")
    ordered = timely.sort_values(["account_id", "as_of"], kind="stable")
    return ordered.drop_duplicates("account_id", keep="last").reset_index(drop=True)


def _require(frame: pd.DataFrame, spec: PrebuiltTable, label: bool) -> None:
    named = {"id_column": spec.id_column, "arr_column": spec.arr_column,
             "as_of_column": spec.as_of_column}  # fmt: skip
    if label:
        named["label_column"] = spec.label_column
        named["renewal_arr_column"] = spec.renewal_arr_column
    missing = {k: v for k, v in named.items() if v is not None and v not in frame.columns}
    if missing:
        found = ", ".join(map(str, frame.columns[:20]))
        raise FeatureInputError(f"prebuilt table: no column {missing} (columns found: {found})")
    if frame[spec.id_column].isna().any():
        rows = frame.index[frame[spec.id_column].isna()][:5].tolist()
        raise FeatureInputError(
            f"prebuilt table: column {spec.id_column!r} is empty in rows {rows}"
        )


def _base_columns(frame: pd.DataFrame, spec: PrebuiltTable, label: bool) -> pd.DataFrame:
    ids = frame[spec.id_column].astype("string").str.strip().astype(object)
    if spec.as_of_column is None:
        as_of = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    else:
        as_of = pd.to_datetime(frame[spec.as_of_column], errors="coerce", utc=True, format="mixed")
        bad = as_of.isna() & frame[spec.as_of_column].notna()
        if bad.any():
            rows = frame.loc[bad, spec.as_of_column].head(5).tolist()
            raise FeatureInputError(
                f"prebuilt table: column {spec.as_of_column!r} has values that are not dates: "
                f"{rows}"
            )
        as_of = as_of.dt.tz_localize(None).astype("datetime64[ns]")
    keys = pd.DataFrame({"account_id": ids, "as_of": as_of})
    repeated = keys.duplicated(keep=False)
    if repeated.any():
        example = keys[repeated].head(3).to_dict("records")
        raise FeatureInputError(f"prebuilt table: (id, as_of) repeats, e.g. {example}")
    arr = (
        pd.Series(1.0, index=frame.index)
        if spec.arr_column is None
        else _require_finite(_as_number(frame[spec.arr_column]), spec.arr_column)
        .fillna(0.0)
        .clip(lower=0)
    )
    renewed = (
        _renewed(frame[spec.label_column], spec) if label else pd.Series(np.nan, index=frame.index)
    )
    out = keys.assign(
        renewed=renewed,
        arr=arr.astype(float),
        contract_id=ids,
        days_to_renewal=np.nan,
    )
    if label and spec.renewal_arr_column is not None:
        column = spec.renewal_arr_column
        value = _require_finite(_as_number(frame[column]), column)
        negative = value < 0
        if negative.any():
            rows = (np.flatnonzero(negative.to_numpy())[:SHOWN] + 1).tolist()
            raise FeatureInputError(
                f"prebuilt table: column {column!r} (data.prebuilt.renewal_arr_column) has "
                f"negative renewal ARR in rows {rows}; expected the ARR the renewal came in at"
            )
        # a churn renewed at nothing; unknown where the outcome is
        out["renewal_arr"] = np.where(renewed == 0, 0.0, value.where(renewed == 1)).astype(float)
    return out


def _renewed(label: pd.Series, spec: PrebuiltTable) -> pd.Series:
    """1 = renewed, 0 = churned, NaN = not known yet (kept for scoring, never trained on).

    Without a churn value the label reads 1 = renewed, 0 = churned (true / false too). With one,
    the label is the churn value or its opposite, in any spelling of either (yes / y / true /
    t / 1 against no / n / false / f / 0); for a churn value with no known opposite ("Attrited
    Customer"), the one other value the column holds. Anything else is refused, never counted
    as renewed.

    Raises:
        ValueError: a value is neither, naming the column, the values, the rows (first = 1)
            and the values accepted.
    """
    text = label.astype("string").str.strip().str.lower()
    known = (text.notna() & (text != "")).fillna(False).astype(bool)
    if spec.churn_value is None:
        churn, renew = {"0", "0.0", "false"}, {"1", "1.0", "true"}
        accepted = (
            "1 = renewed / 0 = churned (or true / false), or set data.prebuilt.churn_value to "
            "the churn value"
        )
    else:
        churn = _spellings(spec.churn_value)
        if not text[known].isin(churn).any():
            seen = sorted(map(str, label[known].unique()[:SHOWN]))
            raise FeatureInputError(
                f"prebuilt table: label column {spec.label_column!r} never equals churn value "
                f"{spec.churn_value!r}; values seen: {seen}"
            )
        churn, renew = _sides(churn, set(text[known].unique()))
        accepted = (
            f"churn = {' / '.join(sorted(churn))}; renewed = {' / '.join(sorted(renew))}"
            if renew
            else f"the churn value {spec.churn_value!r} and one other value meaning renewed"
        )
    bad = known & ~text.isin(churn | renew)
    if bad.any():
        seen = sorted(map(str, label[bad].unique()[:SHOWN]))
        rows = (np.flatnonzero(bad.to_numpy()) + 1)[:SHOWN].tolist()
        raise FeatureInputError(
            f"prebuilt table: label column {spec.label_column!r} has values {seen} in "
            f"{bad.sum():,} row(s), e.g. rows {rows} (first row = 1); expected {accepted}"
        )
    return text.isin(renew).astype(float).where(known)


def _sides(churn: set[str], seen: set[str]) -> tuple[set[str], set[str]]:
    """The spellings that mean churn and those that mean renewed, given the churn value's
    spellings and the values seen (renewed is empty when it cannot be told)."""
    if churn <= TRUE_SPELLINGS:
        return set(TRUE_SPELLINGS), set(FALSE_SPELLINGS)
    if churn <= FALSE_SPELLINGS:
        return set(FALSE_SPELLINGS), set(TRUE_SPELLINGS)
    others = seen - churn
    return churn, others if len(others) == 1 else set()


def _spellings(value: str | int | float | bool) -> set[str]:
    """How the churn value may be written (YAML reads an unquoted Yes as true)."""
    if isinstance(value, bool):
        return set(TRUE_SPELLINGS if value else FALSE_SPELLINGS)
    text = str(value).strip().lower()
    return {text, str(float(value))} if isinstance(value, int | float) else {text}


def _require_finite(values: pd.Series, column: str) -> pd.Series:
    """``values`` unchanged; infinity (read from "inf" in a CSV) is refused, naming the rows."""
    infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
    if infinite.any():
        rows = (np.flatnonzero(infinite) + 1)[:SHOWN].tolist()
        raise FeatureInputError(
            f"prebuilt table: column {column!r} is infinite in {infinite.sum():,} row(s), e.g. "
            f"rows {rows} (first row = 1); expected finite numbers (blank for unknown)"
        )
    return values


def _feature_columns(frame: pd.DataFrame, spec: PrebuiltTable) -> list[str]:
    roles = {spec.id_column, spec.label_column, spec.as_of_column, spec.renewal_arr_column,
             *spec.drop_columns}  # fmt: skip
    unknown = [c for c in spec.drop_columns if c not in frame.columns]
    if unknown:
        raise FeatureInputError(
            f"prebuilt table: data.prebuilt.drop_columns not in the table: {unknown}"
        )
    return [c for c in frame.columns if c not in roles]


def _infer(values: pd.Series, max_categories: int) -> tuple[pd.Series | None, str]:
    """The column as a feature (numeric or category), or None and the reason it was left out."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float), ""
    if pd.api.types.is_datetime64_any_dtype(values):
        return None, "a date (derive a duration such as days since it, then it is a feature)"
    if pd.api.types.is_numeric_dtype(values):
        if _is_constant(values):
            return None, "constant"
        return values.astype(float), ""
    text = values.astype("string").str.strip()
    present = text.notna() & (text != "")
    if not present.any():
        return None, "empty"
    numbers = pd.to_numeric(text.where(present), errors="coerce")
    if numbers[present].notna().mean() >= NUMERIC_TEXT_SHARE:
        if _is_constant(numbers):
            return None, "constant"
        return numbers.astype(float), ""
    distinct = text[present].nunique()
    if distinct <= 1:
        return None, "constant"
    if distinct > max_categories or distinct == present.sum():
        return None, (
            f"text with {distinct:,} distinct values (an identifier or free text; "
            f"data.prebuilt.max_categories is {max_categories})"
        )
    return text.where(present).astype("category"), ""


def _is_constant(values: pd.Series) -> bool:
    present = values.dropna()
    return present.empty or bool((present == present.iloc[0]).all())


def _as_number(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.strip()
    words = text.str.lower().map({"true": "1", "false": "0"}).fillna(text)  # booleans as text
    return pd.to_numeric(words.where(words != ""), errors="coerce").astype(float)


def _unique_name(name: str, taken: set[str]) -> str:
    if name in taken:
        name = f"x_{name}"
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _feature(name: str, column: str, values: pd.Series, spec: PrebuiltTable) -> Feature:
    component = spec.components.get(column, "profile")
    if component not in COMPONENTS:
        raise FeatureInputError(
            f"data.prebuilt.components.{column}: {component!r} is not a component; one of "
            f"{', '.join(COMPONENTS)}"
        )
    categorical = isinstance(values.dtype, pd.CategoricalDtype)
    template = f"{column} is {{value}}" if categorical else f"{column} = {{value:g}}"
    return Feature(name, FAMILY, component, template, None, categorical, column)
