"""Exact, vectorised SHAP values for a LightGBM ensemble of stumps (depth-1 trees).

For a tree with one split on feature f, leaves (v_L, n_L) and (v_R, n_R) where n
is the training data count of each leaf (LightGBM's ``leaf_count``), TreeSHAP
gives exactly

    phi_f(x)   = leaf(x) - (n_L * v_L + n_R * v_R) / (n_L + n_R)
    expected  += (n_L * v_L + n_R * v_R) / (n_L + n_R)

and zero for every other feature. An ensemble is additive, so the contribution
of feature f is the sum over the stumps that split on f. That sum is a step
function of x_f, so it is precomputed once per feature:

* numerical feature: sorted split thresholds t_0 < ... < t_{M-1} and M+1 step
  values; a row falls in step ``searchsorted(t, x, side="left")`` (LightGBM
  sends x left when ``x <= threshold``);
* categorical feature: one value per category code, plus one for anything that
  every split sends right (NaN, negative, unseen codes).

Missing values follow LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` (include/LightGBM/tree.h, v4.x):

* numerical, ``missing_type == "NaN"``: NaN takes the default direction;
* numerical, ``missing_type == "Zero"``: NaN is read as 0, and 0 (|x| <= 1e-35f)
  takes the default direction;
* numerical, ``missing_type == "None"``: NaN is read as 0 and compared as usual;
* categorical: NaN or a negative code goes right; the code is ``int(x)``
  (truncated toward zero), left if it is in the split's category set;
* any |x| <= 1e-35 is read as 0.0 before a split sees it (the dense-row reader
  of LightGBM's C API drops such values as zeros).

The result matches ``booster.predict(X, pred_contrib=True)`` for a binary or
regression model: shape (rows, features + 1), the expected value in the last
column, in raw-score (log-odds) units. Differences are floating-point rounding
only (the per-feature sums are added in a different order).

Usage::

    tables = stump_tables(booster)          # once per model
    phi = stump_contributions(tables, X)    # X: pandas DataFrame or 2-D array
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

# LightGBM's kZeroThreshold is the float 1e-35f, compared after promotion to double.
K_ZERO_THRESHOLD = float(np.float32(1e-35))


@dataclass(frozen=True)
class NumericTable:
    """Summed contribution of all numerical stumps on one feature."""

    feature: int
    thresholds: np.ndarray  # (M,) sorted, unique split thresholds
    steps: np.ndarray  # (M+1,) contribution of a non-missing x in step searchsorted(thresholds, x)
    zero_values: (
        np.ndarray | None
    )  # (M+1,) the same for |x| <= 1e-35 when a stump treats zero as missing
    nan_value: float  # contribution of x = NaN


@dataclass(frozen=True)
class CategoricalTable:
    """Summed contribution of all categorical stumps on one feature."""

    feature: int
    by_code: np.ndarray  # (C,) contribution of category code c, 0 <= c < C
    other_value: float  # NaN, negative or code >= C: every split sends it right


@dataclass(frozen=True)
class StumpTables:
    """A stump ensemble's contributions as step tables per feature, plus the expected value."""

    n_features: int
    feature_names: list[str]
    expected_value: float
    numeric: list[NumericTable]
    categorical: list[CategoricalTable]
    pandas_categorical: list[list] | None  # categories of each pandas category column, as trained


@dataclass(frozen=True)
class _Stump:
    """One depth-1 tree, reduced to what its SHAP value needs."""

    feature: int
    categorical: bool
    threshold: float  # numerical split: left when x <= threshold
    left_codes: frozenset[int]  # categorical split: left when int(x) is in this set
    missing_type: str  # "None", "Zero" or "NaN" (numerical splits)
    default_left: bool
    left_delta: float  # v_L - cover-weighted mean
    right_delta: float  # v_R - cover-weighted mean

    def delta(self, left: np.ndarray | bool) -> np.ndarray | float:
        return np.where(left, self.left_delta, self.right_delta)

    def default_delta(self) -> float:
        return self.left_delta if self.default_left else self.right_delta


def _parse_stump(tree: dict) -> tuple[_Stump | None, float]:
    """Return (stump or None for a single-leaf tree, this tree's expected value)."""
    root = tree["tree_structure"]
    if "leaf_value" in root:  # a tree without a split only shifts the expected value
        return None, float(root["leaf_value"])
    left, right = root["left_child"], root["right_child"]
    if "leaf_value" not in left or "leaf_value" not in right:
        raise ValueError(f"tree {tree['tree_index']} is deeper than one split")
    if "leaf_coeff" in left or "leaf_coeff" in right:
        raise NotImplementedError("linear trees are not supported")
    v_l, v_r = float(left["leaf_value"]), float(right["leaf_value"])
    # Same weights as LightGBM's Tree::ExpectedValue: leaf_count / internal_count of the root.
    total = float(root["internal_count"])
    mean = (left["leaf_count"] / total) * v_l + (right["leaf_count"] / total) * v_r
    categorical = root["decision_type"] == "=="
    stump = _Stump(
        feature=int(root["split_feature"]),
        categorical=categorical,
        threshold=np.nan if categorical else float(root["threshold"]),
        left_codes=(
            frozenset(int(c) for c in str(root["threshold"]).split("||"))
            if categorical
            else frozenset()
        ),
        missing_type=str(root.get("missing_type", "None")),
        default_left=bool(root.get("default_left", True)),
        left_delta=v_l - mean,
        right_delta=v_r - mean,
    )
    return stump, mean


def _numeric_table(feature: int, stumps: list[_Stump]) -> NumericTable:
    thresholds = np.unique([s.threshold for s in stumps])
    steps = np.arange(len(thresholds) + 1)  # step i: thresholds[i-1] < x <= thresholds[i]
    values = np.zeros(len(steps))
    zero_values = np.zeros(len(steps))
    nan_value = 0.0
    for s in stumps:
        pos = np.searchsorted(thresholds, s.threshold)  # x <= threshold  <=>  step <= pos
        goes_left = steps <= pos
        values += s.delta(goes_left)
        if s.missing_type == "Zero":
            zero_values += s.default_delta()
            nan_value += s.default_delta()  # NaN is read as 0, which is "missing"
        else:
            zero_values += s.delta(goes_left)
            if s.missing_type == "NaN":
                nan_value += s.default_delta()
            else:  # "None": NaN is read as 0 and compared with the threshold
                nan_value += s.delta(s.threshold >= 0.0)
    has_zero_missing = any(s.missing_type == "Zero" for s in stumps)
    return NumericTable(
        feature, thresholds, values, zero_values if has_zero_missing else None, float(nan_value)
    )


def _categorical_table(feature: int, stumps: list[_Stump]) -> CategoricalTable:
    n_codes = 1 + max(max(s.left_codes) for s in stumps)
    codes = np.arange(n_codes)
    values = np.zeros(n_codes)
    other = 0.0
    for s in stumps:
        values += s.delta(np.isin(codes, list(s.left_codes)))
        other += s.right_delta
    return CategoricalTable(feature, values, float(other))


def stump_tables(booster: lgb.Booster) -> StumpTables:
    """Precompute per-feature SHAP step tables from a LightGBM Booster of stumps.

    Uses the same trees as ``booster.predict`` with its default ``num_iteration``.
    Raises ValueError if a tree has more than one split.
    """
    model = booster.dump_model()
    if model.get("num_tree_per_iteration", 1) != 1:
        raise NotImplementedError("multiclass models are not supported")
    if model.get("average_output", False):
        raise NotImplementedError("random-forest (average_output) models are not supported")
    by_feature: dict[int, list[_Stump]] = {}
    expected = 0.0
    for tree in model["tree_info"]:
        stump, mean = _parse_stump(tree)
        expected += mean
        if stump is not None:
            by_feature.setdefault(stump.feature, []).append(stump)

    numeric, categorical = [], []
    for feature, stumps in sorted(by_feature.items()):
        kinds = {s.categorical for s in stumps}
        if kinds == {True}:
            categorical.append(_categorical_table(feature, stumps))
        elif kinds == {False}:
            numeric.append(_numeric_table(feature, stumps))
        else:  # LightGBM never mixes the two on one feature
            raise ValueError(f"feature {feature} has both numerical and categorical splits")
    return StumpTables(
        n_features=int(model["max_feature_idx"]) + 1,
        feature_names=list(model["feature_names"]),
        expected_value=float(expected),
        numeric=numeric,
        categorical=categorical,
        pandas_categorical=model.get("pandas_categorical"),
    )


def _column_getter(
    n_features: int, pandas_categorical: list[list] | None, X: pd.DataFrame | np.ndarray
) -> tuple[int, Callable[[int], np.ndarray]]:
    """Return (n_rows, get(feature) -> float64 column) reading X the way LightGBM's predict does.

    A DataFrame is read by position (as LightGBM does); its pandas category
    columns, in frame order, are re-coded against the categories stored in the
    model, with unseen or missing values becoming NaN. A value within 1e-35 of zero
    is read as 0.0, as LightGBM's dense-row reader does before any split sees it.
    """
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != n_features:
            raise ValueError(f"X has {X.shape[1]} columns, the model {n_features}")
        cat_positions = [i for i, dt in enumerate(X.dtypes) if isinstance(dt, pd.CategoricalDtype)]
        trained = pandas_categorical or []
        if len(cat_positions) != len(trained):
            raise ValueError("X's category columns do not match the model's pandas_categorical")
        categories = dict(zip(cat_positions, trained, strict=True))

        def get(feature: int) -> np.ndarray:
            col = X.iloc[:, feature]
            if feature in categories:
                codes = pd.Categorical(col, categories=categories[feature]).codes.astype(np.float64)
                codes[codes < 0] = np.nan
                return codes
            return _as_lightgbm_reads(col.to_numpy(dtype=np.float64, na_value=np.nan))

        return len(X), get

    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"X must be 2-D with {n_features} columns")
    return arr.shape[0], lambda feature: _as_lightgbm_reads(arr[:, feature])


def _as_lightgbm_reads(values: np.ndarray) -> np.ndarray:
    """Tiny values become 0.0: ``RowFunctionFromDenseMatric`` keeps only |x| > kZeroThreshold."""
    tiny = np.abs(values) <= K_ZERO_THRESHOLD  # False for NaN
    if tiny.any():
        values = values.copy()
        values[tiny] = 0.0
    return values


def lightgbm_matrix(
    n_features: int, pandas_categorical: list[list] | None, X: pd.DataFrame | np.ndarray
) -> np.ndarray:
    """X as the float64 matrix LightGBM's predict reads (category columns as trained codes)."""
    rows, column = _column_getter(n_features, pandas_categorical, X)
    out = np.empty((rows, n_features))
    for feature in range(n_features):
        out[:, feature] = column(feature)
    return out


def stump_contributions(tables: StumpTables, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """SHAP values of X, laid out like ``booster.predict(X, pred_contrib=True)``.

    Returns float64 of shape (rows, n_features + 1); the last column is the
    expected value. Rows sum to the raw score (log-odds for a binary model).
    """
    n_rows, column = _column_getter(tables.n_features, tables.pandas_categorical, X)
    out = np.zeros((n_rows, tables.n_features + 1))
    out[:, -1] = tables.expected_value

    for t in tables.numeric:
        x = column(t.feature)
        step = np.searchsorted(t.thresholds, x, side="left")  # NaN sorts last; overwritten below
        phi = t.steps[step]
        if t.zero_values is not None:
            is_zero = np.abs(x) <= K_ZERO_THRESHOLD
            phi[is_zero] = t.zero_values[step[is_zero]]
        phi[np.isnan(x)] = t.nan_value
        out[:, t.feature] = phi

    for t in tables.categorical:
        x = column(t.feature)
        with np.errstate(invalid="ignore"):
            code = np.trunc(x)  # C++ static_cast<int>: -0.5 -> 0, still a valid code
            valid = (code >= 0) & (code < len(t.by_code))  # False for NaN
        phi = np.full(n_rows, t.other_value)
        phi[valid] = t.by_code[code[valid].astype(np.intp)]
        out[:, t.feature] = phi
    return out
