"""Exact path-dependent TreeSHAP for a LightGBM model, several times faster than ``pred_contrib``.

LightGBM's ``pred_contrib`` runs the original TreeSHAP (Lundberg et al., 2020: Algorithm 2),
``O(L·D²)`` per tree and row. This is the precomputation of FastTreeSHAP v2 (Yang, 2022), which
moves the work that does not depend on the row into the model: ``O(L·D)`` per tree and row.

For a leaf with value ``v`` whose path splits on the distinct features ``U`` (``d = |U|``), let
``z_j`` be the product of the cover fractions (child count / parent count) of the splits on
feature ``j`` along the path, and ``o_j(x)`` one when ``x`` follows every split on ``j`` the
leaf's way, else zero. The path-dependent value function restricted to the leaf is
``f(S) = v · Π_{j∈S} o_j · Π_{j∉S} z_j``, and the leaf's share of feature ``i``'s Shapley value

    φ_i = v · (o_i − z_i) · Σ_{S ⊆ P∖{i}} w(|S|, d) · Π_{j ∈ U∖S∖{i}} z_j,
    w(s, d) = s! (d − s − 1)! / d!,

depends on the row only through the set ``P = {j : o_j = 1}``. So every leaf gets a table of
``2^d × d`` values, filled once per model; explaining a row is, per tree, one decision per
split, then per leaf a ``d``-bit pattern and ``d`` additions. The sum over subsets is computed
with elementary symmetric polynomials of the ``z_j`` in ``P``.

Splits are decided exactly as LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` do (see :mod:`models.win.stumps` for the missing-value rules), covers
are LightGBM's ``internal_count`` / ``leaf_count``, and the expected value is
``Tree::ExpectedValue``, so the result equals ``booster.predict(X, pred_contrib=True)`` to
floating-point rounding (tested on models with missing values, zero-as-missing, categorical
splits, repeated features on a path and single-leaf trees).

A small tree goes one step further. A row's pattern at every leaf depends on the row only
through the tree's split decisions, so a tree of ``s`` splits over ``D`` distinct features gets one
table of ``2^s × D`` values: each decision vector's whole contribution, the leaves' tables summed.
Explaining a row is then, per tree, ``s`` decisions and ``D`` additions, not a pattern and ``d``
additions per leaf. Trees whose table would pass ``TREE_TABLE_BYTES`` (more than about 10 splits)
keep the leaves' tables.

The tables cost ``Σ_leaves 2^d · d + Σ_small trees 2^s · D`` floats; a model whose tables would
exceed ``max_bytes`` (deep trees) is refused by :func:`tree_tables`, and its member falls back to
``pred_contrib``.

Usage::

    tables = tree_tables(booster)          # once per model; None when too deep
    phi = tree_contributions(tables, X)    # X as LightGBM's predict takes it
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numba
import numpy as np
import pandas as pd

from models.win.stumps import K_ZERO_THRESHOLD, lightgbm_matrix

MAX_BYTES = 256 * 2**20
# a tree's own table (2^splits × its distinct features) up to this size: it stays in cache for
# the block of rows, and the tree needs no per-leaf patterns (1,024 × 11 floats fit)
TREE_TABLE_BYTES = 96 * 2**10
BLOCK = 128  # rows explained together, tree by tree
LAYOUT = 3  # the tables' layout; tables pickled with an older one are rebuilt
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class TreeTables:
    """Flat arrays of every tree's splits and leaves, and the leaves' contribution tables."""

    n_features: int
    pandas_categorical: list[list] | None
    expected_value: float
    tree_node_start: np.ndarray  # (T+1,) each tree's splits: node_* [start, end)
    tree_leaf_start: np.ndarray  # (T+1,) each tree's leaves: leaf_* [start, end)
    node_feature: np.ndarray
    node_categorical: np.ndarray
    node_missing: np.ndarray  # 0 None, 1 Zero, 2 NaN
    node_default_left: np.ndarray
    node_threshold: np.ndarray
    node_plain: np.ndarray  # a numeric split without zero-as-missing: x ≤ threshold, or NaN's way
    node_nan_left: np.ndarray  # where a NaN goes at a plain split
    node_cat_start: np.ndarray  # categorical splits: words of cat_bits [start, start + words)
    node_cat_words: np.ndarray
    cat_bits: np.ndarray  # uint32 bitsets of the categories sent left
    path_start: np.ndarray  # (leaves+1,) each leaf's path: path_* [start, end)
    path_node: np.ndarray  # the split, numbered within its tree
    path_left: np.ndarray  # the leaf lies left of it
    path_slot: np.ndarray  # which of the leaf's distinct features the split is on
    leaf_width: np.ndarray  # d: distinct features on the path
    leaf_feature_start: np.ndarray  # leaf_features [start, start + d)
    leaf_features: np.ndarray
    leaf_table_start: np.ndarray  # table [start, start + 2^d · d): row = pattern, column = slot
    table: np.ndarray
    tree_table_start: np.ndarray  # (T,) tree_table [start, start + 2^s · D), or −1: by leaves
    tree_feature_start: np.ndarray  # (T+1,) each tree's distinct features: tree_features
    tree_features: np.ndarray
    tree_table: np.ndarray  # row = the tree's split decisions (bit g: split g goes left)
    max_nodes: int
    layout: int  # LAYOUT when built (no default: a table pickled before it has none)

    @property
    def nbytes(self) -> int:
        """Bytes the contribution tables take, the figure ``max_bytes`` is checked against."""
        return int(self.table.nbytes + self.tree_table.nbytes)


def current(tables: TreeTables | None) -> bool:
    """Whether ``tables`` (as kept in a pickled model) have today's layout."""
    return tables is None or getattr(tables, "layout", 0) == LAYOUT


def tree_tables(booster: lgb.Booster, max_bytes: int = MAX_BYTES) -> TreeTables | None:
    """Precompute the contribution tables of a binary or regression LightGBM model.

    Uses the trees ``booster.predict`` uses by default. Returns None when the tables would take
    more than ``max_bytes`` (then use ``pred_contrib``).

    Raises:
        NotImplementedError: multiclass, random-forest or linear-tree models.
    """
    model = booster.dump_model()
    if model.get("num_tree_per_iteration", 1) != 1:
        raise NotImplementedError("multiclass models are not supported")
    if model.get("average_output", False):
        raise NotImplementedError("random-forest (average_output) models are not supported")
    nodes: list[tuple] = []  # (feature, categorical, missing, default_left, threshold, codes)
    leaves: list[tuple] = []  # (value, path [(node, left, feature, fraction)])
    tree_node_start, tree_leaf_start = [0], [0]
    expected = 0.0
    for tree in model["tree_info"]:
        root = tree["tree_structure"]
        if "leaf_value" in root:  # no split: only the expected value moves
            expected += float(root["leaf_value"])
        else:
            expected += _parse_tree(root, nodes, leaves, tree_node_start[-1])
        tree_node_start.append(len(nodes))
        tree_leaf_start.append(len(leaves))
    widths = [len({f for _, _, f, _ in path}) for _, path in leaves]
    tree_floats = _tree_sizes(nodes, tree_node_start)
    if 8 * (sum(2**d * d for d in widths) + sum(tree_floats)) > max_bytes:
        return None
    return _flatten(
        model, nodes, leaves, widths, tree_floats, tree_node_start, tree_leaf_start, expected
    )


def _tree_sizes(nodes: list[tuple], tree_node_start: list[int]) -> list[int]:
    """Floats of each tree's own table (``2^s · D``), 0 where it would pass the cap."""
    sizes = []
    for t in range(len(tree_node_start) - 1):
        splits = tree_node_start[t + 1] - tree_node_start[t]
        distinct = len({n[0] for n in nodes[tree_node_start[t] : tree_node_start[t + 1]]})
        floats = 2**splits * distinct if splits else 0
        sizes.append(floats if 0 < 8 * floats <= TREE_TABLE_BYTES else 0)
    return sizes


def _parse_tree(root: dict, nodes: list[tuple], leaves: list[tuple], first: int) -> float:
    """Append one tree's splits and leaves (paths numbered within the tree); return
    ``Tree::ExpectedValue``: Σ leaf_count / root internal_count × leaf value."""
    total = float(root["internal_count"])
    expected = 0.0
    stack = [(root, [])]
    while stack:
        node, path = stack.pop()
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise NotImplementedError("linear trees are not supported")
            expected += float(node["leaf_count"]) / total * float(node["leaf_value"])
            leaves.append((float(node["leaf_value"]), path))
            continue
        local = len(nodes) - first
        categorical = node["decision_type"] == "=="
        codes = [int(c) for c in str(node["threshold"]).split("||")] if categorical else []
        nodes.append(
            (
                int(node["split_feature"]),
                categorical,
                _MISSING[str(node.get("missing_type", "None"))],
                bool(node.get("default_left", True)),
                np.nan if categorical else float(node["threshold"]),
                codes,
            )
        )
        count = float(node["internal_count"])
        feature = int(node["split_feature"])
        for child, left in ((node["right_child"], False), (node["left_child"], True)):
            cover = float(child.get("internal_count", child.get("leaf_count", 0)))
            fraction = cover / count if count > 0 else 0.0
            stack.append((child, [*path, (local, left, feature, fraction)]))
    return expected


def _flatten(
    model: dict,
    nodes: list[tuple],
    leaves: list[tuple],
    widths: list[int],
    tree_sizes: list[int],
    tree_node_start: list[int],
    tree_leaf_start: list[int],
    expected: float,
) -> TreeTables:
    cat_start, cat_words, bits = [], [], []
    for *_, codes in nodes:
        cat_start.append(len(bits))
        if codes:
            words = np.zeros(max(codes) // 32 + 1, dtype=np.uint32)
            for c in codes:
                words[c // 32] |= np.uint32(1) << np.uint32(c % 32)
            bits.extend(words.tolist())
        cat_words.append(len(bits) - cat_start[-1])
    path_start, path_node, path_left, path_slot = [0], [], [], []
    feature_start, features, z_start, z = [0], [], [0], []
    for _, path in leaves:
        distinct = list(dict.fromkeys(f for _, _, f, _ in path))
        fraction = dict.fromkeys(distinct, 1.0)
        for node, left, feature, share in path:
            path_node.append(node)
            path_left.append(left)
            path_slot.append(distinct.index(feature))
            fraction[feature] *= share
        path_start.append(len(path_node))
        features.extend(distinct)
        feature_start.append(len(features))
        z.extend(fraction[f] for f in distinct)
        z_start.append(len(z))
    width = np.asarray(widths, dtype=np.int64)
    table_start = np.concatenate([[0], np.cumsum(2**width * width)]).astype(np.int64)
    table = np.empty(int(table_start[-1]))
    values = np.asarray([v for v, _ in leaves], dtype=float)
    _fill_tables(width, np.asarray(z_start, dtype=np.int64), np.asarray(z), values,
                 table_start, table)  # fmt: skip
    # the small trees' own tables: each decision vector's contribution, its leaves' summed
    tree_floats = np.asarray(tree_sizes, dtype=np.int64)
    tree_table_start = np.where(tree_floats > 0, np.cumsum(tree_floats) - tree_floats, -1)
    tree_feature_start, tree_features, leaf_tree_slot = [0], [], []
    for t in range(len(tree_node_start) - 1):
        owned = list(
            dict.fromkeys(n[0] for n in nodes[tree_node_start[t] : tree_node_start[t + 1]])
        )
        tree_features.extend(owned)
        tree_feature_start.append(len(tree_features))
        for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
            leaf_tree_slot.extend(
                owned.index(f) for f in features[feature_start[leaf] : feature_start[leaf + 1]]
            )
    tree_table = np.zeros(int(tree_floats.sum()))
    flat = {
        "path_start": np.asarray(path_start, dtype=np.int64),
        "path_node": np.asarray(path_node, dtype=np.int64),
        "path_left": np.asarray(path_left, dtype=np.bool_),
        "path_slot": np.asarray(path_slot, dtype=np.int64),
        "leaf_feature_start": np.asarray(feature_start, dtype=np.int64),
    }
    _fill_tree_tables(
        np.asarray(tree_node_start, dtype=np.int64), np.asarray(tree_leaf_start, dtype=np.int64),
        tree_table_start, np.asarray(tree_feature_start, dtype=np.int64), flat["path_start"],
        flat["path_node"], flat["path_left"], flat["path_slot"], width,
        flat["leaf_feature_start"], np.asarray(leaf_tree_slot, dtype=np.int64), table_start,
        table, tree_table,
    )  # fmt: skip
    sizes = np.diff(tree_node_start)
    return TreeTables(
        n_features=int(model["max_feature_idx"]) + 1,
        pandas_categorical=model.get("pandas_categorical"),
        expected_value=float(expected),
        tree_node_start=np.asarray(tree_node_start, dtype=np.int64),
        tree_leaf_start=np.asarray(tree_leaf_start, dtype=np.int64),
        node_feature=np.asarray([n[0] for n in nodes], dtype=np.int64),
        node_categorical=np.asarray([n[1] for n in nodes], dtype=np.bool_),
        node_missing=np.asarray([n[2] for n in nodes], dtype=np.int8),
        node_default_left=np.asarray([n[3] for n in nodes], dtype=np.bool_),
        node_threshold=np.asarray([n[4] for n in nodes], dtype=float),
        node_plain=np.asarray([not n[1] and n[2] != _MISSING["Zero"] for n in nodes], bool),
        # a NaN is read as 0 unless missing values have their own way (see _goes_left)
        node_nan_left=np.asarray(
            [n[3] if n[2] == _MISSING["NaN"] else n[4] >= 0.0 for n in nodes], dtype=np.bool_
        ),
        node_cat_start=np.asarray(cat_start, dtype=np.int64),
        node_cat_words=np.asarray(cat_words, dtype=np.int64),
        cat_bits=np.asarray(bits, dtype=np.uint32),
        **flat,
        leaf_width=width,
        leaf_features=np.asarray(features, dtype=np.int64),
        leaf_table_start=table_start,
        table=table,
        tree_table_start=tree_table_start.astype(np.int64),
        tree_feature_start=np.asarray(tree_feature_start, dtype=np.int64),
        tree_features=np.asarray(tree_features, dtype=np.int64),
        tree_table=tree_table,
        max_nodes=int(sizes.max()) if len(sizes) else 0,
        layout=LAYOUT,
    )


def tree_contributions(
    tables: TreeTables, X: pd.DataFrame | np.ndarray, n_jobs: int | None = None
) -> np.ndarray:
    """SHAP values of X, laid out like ``booster.predict(X, pred_contrib=True)``.

    Returns float64 of shape (rows, n_features + 1), the expected value in the last column;
    rows sum to the raw score. ``n_jobs`` threads (default: numba's own setting).
    """
    matrix = np.ascontiguousarray(
        lightgbm_matrix(tables.n_features, tables.pandas_categorical, X), dtype=np.float64
    )
    out = np.zeros((matrix.shape[0], tables.n_features + 1))
    previous = numba.get_num_threads()
    if n_jobs is not None:
        numba.set_num_threads(max(1, min(n_jobs, numba.config.NUMBA_NUM_THREADS)))
    try:
        _explain(
            matrix, out, tables.expected_value, tables.tree_node_start, tables.tree_leaf_start,
            tables.node_feature, tables.node_categorical, tables.node_missing,
            tables.node_default_left, tables.node_threshold, tables.node_plain,
            tables.node_nan_left, tables.node_cat_start,
            tables.node_cat_words, tables.cat_bits, tables.path_start, tables.path_node,
            tables.path_left, tables.path_slot, tables.leaf_width, tables.leaf_feature_start,
            tables.leaf_features, tables.leaf_table_start, tables.table, tables.tree_table_start,
            tables.tree_feature_start, tables.tree_features, tables.tree_table,
            max(tables.max_nodes, 1),
        )  # fmt: skip
    finally:
        numba.set_num_threads(previous)
    return out


@numba.njit(cache=True)
def _fill_tables(  # pragma: no cover - jitted
    width: np.ndarray,
    z_start: np.ndarray,
    z: np.ndarray,
    values: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
) -> None:
    for leaf in range(len(width)):
        d = width[leaf]
        zs = z[z_start[leaf] : z_start[leaf] + d]
        weight = np.empty(d)  # w(s, d) = s! (d - s - 1)! / d!
        weight[0] = 1.0 / d
        for s in range(d - 1):
            weight[s + 1] = weight[s] * (s + 1) / (d - s - 1)
        poly = np.empty(d + 1)
        for pattern in range(1 << d):
            for i in range(d):
                # Σ over S ⊆ Q = pattern ∖ {i} of w(|S|) · Π_{j ∉ S, j ≠ i} z_j, by the
                # elementary symmetric polynomials of the z_j in Q
                poly[:] = 0.0
                poly[0] = 1.0
                size = 0
                outside = 1.0
                for j in range(d):
                    if j == i:
                        continue
                    if (pattern >> j) & 1:
                        size += 1
                        for m in range(size, 0, -1):
                            poly[m] += poly[m - 1] * zs[j]
                    else:
                        outside *= zs[j]
                total = 0.0
                for s in range(size + 1):
                    total += weight[s] * poly[size - s]
                one = float((pattern >> i) & 1)
                table[table_start[leaf] + pattern * d + i] = (
                    values[leaf] * (one - zs[i]) * outside * total
                )


@numba.njit(cache=True)
def _fill_tree_tables(  # pragma: no cover - jitted
    tree_node_start: np.ndarray, tree_leaf_start: np.ndarray, tree_table_start: np.ndarray,
    tree_feature_start: np.ndarray, path_start: np.ndarray, path_node: np.ndarray,
    path_left: np.ndarray, path_slot: np.ndarray, leaf_width: np.ndarray,
    leaf_feature_start: np.ndarray, leaf_tree_slot: np.ndarray, leaf_table_start: np.ndarray,
    table: np.ndarray, tree_table: np.ndarray,
) -> None:  # fmt: skip
    for t in range(len(tree_table_start)):
        if tree_table_start[t] < 0:
            continue
        splits = tree_node_start[t + 1] - tree_node_start[t]
        width = tree_feature_start[t + 1] - tree_feature_start[t]
        for decisions in range(1 << splits):  # bit g: split g of the tree goes left
            row = tree_table_start[t] + decisions * width
            for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
                d = leaf_width[leaf]
                pattern = (1 << d) - 1
                for p in range(path_start[leaf], path_start[leaf + 1]):
                    if ((decisions >> path_node[p]) & 1 == 1) != path_left[p]:
                        pattern &= ~(1 << path_slot[p])
                base = leaf_table_start[leaf] + pattern * d
                f0 = leaf_feature_start[leaf]
                for k in range(d):
                    tree_table[row + leaf_tree_slot[f0 + k]] += table[base + k]


@numba.njit(cache=True, inline="always")
def _goes_left(  # pragma: no cover - jitted
    x: float,
    categorical: bool,
    missing: int,
    default_left: bool,
    threshold: float,
    cat_start: int,
    cat_words: int,
    cat_bits: np.ndarray,
) -> bool:
    if categorical:  # NaN, negative or unknown codes go right
        if np.isnan(x):
            return False
        code = int(x)  # C++ static_cast<int>: truncated toward zero
        if code < 0 or (code >> 5) >= cat_words:
            return False
        return (cat_bits[cat_start + (code >> 5)] >> np.uint32(code & 31)) & np.uint32(1) == 1
    if np.isnan(x) and missing != 2:
        x = 0.0
    if missing == 1 and -K_ZERO_THRESHOLD <= x <= K_ZERO_THRESHOLD:
        return default_left
    if missing == 2 and np.isnan(x):
        return default_left
    return x <= threshold


@numba.njit(cache=True, inline="always")
def _split_left(  # pragma: no cover - jitted
    x: float, g: int, node_plain: np.ndarray, node_nan_left: np.ndarray,
    node_categorical: np.ndarray, node_missing: np.ndarray, node_default_left: np.ndarray,
    node_threshold: np.ndarray, node_cat_start: np.ndarray, node_cat_words: np.ndarray,
    cat_bits: np.ndarray,
) -> bool:  # fmt: skip
    """Whether ``x`` goes left at node ``g``: most splits are plain (``x ≤ threshold``, or where
    a NaN goes) and take no branch on the split's kind; the rest take LightGBM's general rule."""
    if node_plain[g]:
        return x <= node_threshold[g] if x == x else node_nan_left[g]
    return _goes_left(
        x,
        node_categorical[g],
        node_missing[g],
        node_default_left[g],
        node_threshold[g],
        node_cat_start[g],
        node_cat_words[g],
        cat_bits,
    )


@numba.njit(cache=True, parallel=True)
def _explain(  # pragma: no cover - jitted; the tables as flat arrays for numba
    X: np.ndarray, out: np.ndarray, expected: float, tree_node_start: np.ndarray,
    tree_leaf_start: np.ndarray, node_feature: np.ndarray, node_categorical: np.ndarray,
    node_missing: np.ndarray, node_default_left: np.ndarray, node_threshold: np.ndarray,
    node_plain: np.ndarray, node_nan_left: np.ndarray, node_cat_start: np.ndarray,
    node_cat_words: np.ndarray, cat_bits: np.ndarray, path_start: np.ndarray,
    path_node: np.ndarray, path_left: np.ndarray, path_slot: np.ndarray,
    leaf_width: np.ndarray, leaf_feature_start: np.ndarray,
    leaf_features: np.ndarray, leaf_table_start: np.ndarray, table: np.ndarray,
    tree_table_start: np.ndarray, tree_feature_start: np.ndarray, tree_features: np.ndarray,
    tree_table: np.ndarray, max_nodes: int,
) -> None:  # fmt: skip
    rows = X.shape[0]
    last = out.shape[1] - 1
    trees = len(tree_node_start) - 1
    blocks = (rows + BLOCK - 1) // BLOCK
    # rows in blocks, each block tree by tree: a tree's tables stay in cache for BLOCK rows
    for b in numba.prange(blocks):
        left = np.empty(max_nodes, dtype=np.bool_)
        stop = min(rows, (b + 1) * BLOCK)
        for t in range(trees):
            first = tree_node_start[t]
            if tree_table_start[t] >= 0:  # a small tree: its decisions index its own table
                f0 = tree_feature_start[t]
                width = tree_feature_start[t + 1] - f0
                for r in range(b * BLOCK, stop):
                    decisions = 0
                    for g in range(first, tree_node_start[t + 1]):
                        goes = _split_left(
                            X[r, node_feature[g]], g, node_plain, node_nan_left, node_categorical,
                            node_missing, node_default_left, node_threshold, node_cat_start,
                            node_cat_words, cat_bits,
                        )  # fmt: skip
                        decisions |= np.int64(goes) << (g - first)
                    base = tree_table_start[t] + decisions * width
                    for k in range(width):
                        out[r, tree_features[f0 + k]] += tree_table[base + k]
                continue
            for r in range(b * BLOCK, stop):
                for g in range(first, tree_node_start[t + 1]):
                    left[g - first] = _split_left(
                        X[r, node_feature[g]], g, node_plain, node_nan_left, node_categorical,
                        node_missing, node_default_left, node_threshold, node_cat_start,
                        node_cat_words, cat_bits,
                    )  # fmt: skip
                for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
                    d = leaf_width[leaf]
                    pattern = (1 << d) - 1
                    for p in range(path_start[leaf], path_start[leaf + 1]):
                        if left[path_node[p]] != path_left[p]:
                            pattern &= ~(1 << path_slot[p])
                    base = leaf_table_start[leaf] + pattern * d
                    f0 = leaf_feature_start[leaf]
                    for k in range(d):
                        out[r, leaf_features[f0 + k]] += table[base + k]
        for r in range(b * BLOCK, stop):
            out[r, last] += expected
