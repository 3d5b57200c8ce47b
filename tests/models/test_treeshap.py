"""The table-driven TreeSHAP gives LightGBM's own ``pred_contrib`` on every kind of split."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.explain.treeshap import LAYOUT, tree_contributions, tree_tables
from models.win.ensemble import TreeMember
from models.win.stumps import stump_contributions, stump_tables

CATEGORIES = [f"c{i}" for i in range(45)]  # more than 32: bitsets of two words


def frame(rows: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Numbers with NaN and exact zeros, a small integer feature and a many-valued category."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "usage": rng.normal(size=rows),
            "tickets": rng.integers(0, 5, rows).astype(float),
            "nps": rng.normal(size=rows),
            "plan": pd.Categorical(rng.choice(CATEGORIES, rows), categories=CATEGORIES),
        }
    )
    X.loc[X.index[::7], "usage"] = np.nan
    X.loc[X.index[::5], "nps"] = 0.0
    z = X["usage"].fillna(-1) * X["nps"] - 0.4 * X["tickets"] + X["plan"].isin(CATEGORIES[:9])
    y = pd.Series((z + rng.normal(size=rows) > 0).astype(int), name="renewed")
    return X, y


def hostile(X: pd.DataFrame, booster: lgb.Booster) -> pd.DataFrame:
    """Rows at the model's own numeric thresholds, missing and unseen categories, NaN, zero."""
    out = X.copy()
    dump = booster.trees_to_dataframe()
    numeric = dump[dump["decision_type"] == "<="]
    for column in ["usage", "tickets", "nps"]:
        cuts = numeric.loc[numeric["split_feature"] == column, "threshold"].to_numpy(float)
        if len(cuts):
            out.loc[out.index[1::4], column] = np.resize(cuts, len(out.index[1::4]))
    out.loc[out.index[::6], "nps"] = np.nan
    out.loc[out.index[::9], "tickets"] = 0.0
    out.loc[out.index[::11], "plan"] = np.nan
    return out


@pytest.mark.parametrize(
    "extra",
    [
        {},  # NaN as missing
        {"zero_as_missing": True},  # zero (and NaN) as missing
        {"use_missing": False},  # NaN read as zero and compared
        {"num_leaves": 63, "max_depth": 12, "min_child_samples": 3},  # deep, features repeat
        {"max_cat_to_onehot": 64},  # one-vs-rest categorical splits
        {"cat_smooth": 1, "min_data_per_group": 3, "max_cat_threshold": 40},  # many-category
    ],
    ids=["nan", "zero", "no-missing", "deep", "one-hot", "many-categories"],
)
@pytest.mark.parametrize("leaves", [15, 8], ids=["by-leaves", "by-tree"])
def test_equals_lightgbm_pred_contrib(extra, leaves):
    # given a model of this kind (trees of 15 leaves explained leaf by leaf, of 8 by their own
    # tables) and rows that hit every edge of its splits
    if "num_leaves" in extra and leaves != 15:
        pytest.skip("the model sets its own leaves: the by-leaves case already covers it")
    X, y = frame()
    params = {"n_estimators": 60, "num_leaves": leaves, "min_child_samples": 10, **extra}
    booster = lgb.LGBMClassifier(**params, verbose=-1, random_state=0).fit(X, y).booster_
    rows = hostile(X, booster)
    tables = tree_tables(booster)
    assert tables is not None
    by_tree = tables.tree_table_start >= 0
    if "num_leaves" not in extra:
        assert by_tree.all() if leaves == 8 else not by_tree.any()
    # when explained by the tables
    got = tree_contributions(tables, rows, n_jobs=2)
    # then the values are LightGBM's own TreeSHAP, and rows add up to the raw score
    native = booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(got, native, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(rows, raw_score=True), atol=1e-10)
    if extra.get("num_leaves") == 63:  # the case the tables exist for: repeated features
        assert tables.leaf_width.max() < np.diff(tables.path_start).max()


def test_a_model_of_single_leaf_trees_has_only_its_expected_value():
    # given trees that could not split (every split's gain below the bar)
    X, y = frame(rows=300)
    booster = lgb.LGBMClassifier(n_estimators=5, min_split_gain=1e9, verbose=-1).fit(X, y).booster_
    tables = tree_tables(booster)
    got = tree_contributions(tables, X)
    np.testing.assert_allclose(got, booster.predict(X, pred_contrib=True), atol=1e-12)
    assert (got[:, :-1] == 0).all()


def test_a_plain_matrix_is_read_like_lightgbm_reads_it():
    X, y = frame(rows=600)
    numeric = X.drop(columns="plan")
    booster = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(numeric, y).booster_
    tables = tree_tables(booster)
    matrix = numeric.to_numpy()
    np.testing.assert_allclose(
        tree_contributions(tables, matrix), booster.predict(matrix, pred_contrib=True), atol=1e-12
    )
    with pytest.raises(ValueError, match="3 columns"):
        tree_contributions(tables, matrix[:, :2])


def test_tables_beyond_the_memory_cap_are_refused_and_multiclass_is_not_supported():
    X, y = frame(rows=600)
    booster = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y).booster_
    assert tree_tables(booster, max_bytes=8) is None
    three = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, np.arange(len(X)) % 3)
    with pytest.raises(NotImplementedError, match="multiclass"):
        tree_tables(three.booster_)


def test_tree_member_uses_the_tables_and_keeps_them_through_pickle():
    # given a fitted LightGBM member, explained once
    X, y = frame(rows=800)
    member = TreeMember({"n_estimators": 30, "num_leaves": 7}, seed=0).fit(X, y.to_numpy())
    first = member.contributions(X)
    assert member.shap_tables_ is not None
    # when pickled (as the registered model is) and explained again
    again = pickle.loads(pickle.dumps(member))
    # then the same values, which are pred_contrib's
    np.testing.assert_array_equal(again.contributions(X), first)
    native = member.model_.booster_.predict(X, pred_contrib=True)
    np.testing.assert_allclose(first, native, atol=1e-12)
    # and tables pickled in an older layout are rebuilt, not misread
    old = pickle.loads(pickle.dumps(member))
    object.__delattr__(old.shap_tables_, "layout")
    np.testing.assert_array_equal(old.contributions(X), first)
    assert old.shap_tables_.layout == LAYOUT
    # and a refit builds tables for its own trees
    member.fit(X.iloc[:400], y.to_numpy()[:400])
    assert not hasattr(member, "shap_tables_")
    native = member.model_.booster_.predict(X, pred_contrib=True)
    np.testing.assert_allclose(member.contributions(X), native, atol=1e-12)


def test_stumps_read_tiny_values_as_zero_like_lightgbm():
    # given stumps that split "nps <= -1e-35" (negatives apart from the exact zeros)
    X, _ = frame()
    y = (X["nps"] >= 0).astype(int)
    booster = lgb.LGBMClassifier(n_estimators=20, max_depth=1, num_leaves=2, verbose=-1)
    booster = booster.fit(X, y).booster_
    cuts = booster.trees_to_dataframe()["threshold"].dropna().astype(float)
    assert np.isclose(cuts, -1e-35, rtol=1e-6, atol=0).any()
    # and rows right at that threshold, which LightGBM reads as 0.0
    rows = hostile(X, booster)
    rows.loc[rows.index[::3], "nps"] = -1e-35
    # then the closed form gives pred_contrib's values
    native = booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(stump_contributions(stump_tables(booster), rows), native, atol=1e-12)


def test_small_and_large_trees_of_one_model_are_each_explained_their_way():
    # given a model whose later trees stop early for want of rows (some by their own tables,
    # some leaf by leaf)
    X, y = frame()
    params = {"n_estimators": 60, "num_leaves": 15, "min_child_samples": 100, "random_state": 0}
    booster = lgb.LGBMClassifier(**params, verbose=-1).fit(X, y).booster_
    tables = tree_tables(booster)
    by_tree = tables.tree_table_start >= 0
    assert 0 < by_tree.sum() < len(by_tree)
    # then together they give LightGBM's own values
    rows = hostile(X, booster)
    native = booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(tree_contributions(tables, rows), native, rtol=0, atol=1e-12)
