"""Explanations people read: exact log-odds contributions turned into points of health.

The ensemble's contributions (:meth:`models.win.ensemble.HealthEnsemble.contributions`) add up to
its log-odds exactly. People read health (0–100), not log-odds, so each account's contributions
are rescaled to points that add up to its health minus the portfolio's base health, the health
of an account whose every feature sits at the training average (the ``_base`` log-odds through
the calibrator). The calibrator is monotone, so a feature that lowers the log-odds always costs
points. Points summed per component give the learned scorecard ("usage −12, support −5").
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

BASE = "_base"
PLACEHOLDER = re.compile(r"\{value[^}]*\}")


def health_points(
    contributions: pd.DataFrame, win_probability: np.ndarray, base_probability: float
) -> pd.DataFrame:
    """Per-feature points of health; each row sums to ``100 · (p − p_base)``.

    Args:
        contributions: log-odds contributions per feature, plus the ``_base`` column.
        win_probability: the calibrated win probability of each row.
        base_probability: the calibrated probability of the ``_base`` log-odds.

    Raises:
        ValueError: the row counts differ.
    """
    phi = contributions.drop(columns=BASE, errors="ignore")
    p = np.asarray(win_probability, dtype=float)
    if len(p) != len(phi):
        raise ValueError(f"{len(p)} probabilities for {len(phi)} rows of contributions")
    total = phi.to_numpy().sum(axis=1)
    gap = 100.0 * (p - base_probability)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.abs(total) > 1e-12, gap / total, 0.0)
    return pd.DataFrame(phi.to_numpy() * scale[:, None], columns=phi.columns, index=phi.index)


def component_points(points: pd.DataFrame, components: dict[str, str]) -> pd.DataFrame:
    """Points summed per component (one column per component, in first-seen order)."""
    owner = [components.get(c, "other") for c in points.columns]
    return points.T.groupby(owner, sort=False).sum().T


def describe(template: str, value: object) -> str:
    """A catalog description with the account's value filled in ("unknown" for a blank)."""
    try:
        if value is None or value is pd.NA or value != value:  # NaN is not equal to itself
            return PLACEHOLDER.sub("unknown", template)
        return template.format(value=value)
    except (ValueError, TypeError):  # a numeric format on a text value, or the reverse
        return PLACEHOLDER.sub(str(value), template)


def top_drivers(
    points: pd.DataFrame,
    values: pd.DataFrame,
    descriptions: dict[str, str],
    components: dict[str, str],
    k: int = 3,
) -> pd.DataFrame:
    """The ``k`` largest risks (negative points) and strengths (positive) per row, in words.

    Returns one row per (row, driver): ``row`` (the index label of ``points``), ``kind``
    (``risk`` / ``strength``), ``rank`` (1 = largest), ``feature``, ``component``, ``value``,
    ``points`` and ``text``. Ties are broken by column order, so the order is deterministic.
    """
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
    for j in np.unique(columns_used):  # one template at a time: formatting is the cost
        where = np.flatnonzero(columns_used == j)
        template = descriptions.get(names[j], names[j])
        texts[where] = [describe(template, v) for v in picked[where]]
    frame = frame.assign(
        component=[components.get(f, "other") for f in frame["feature"]], value=picked, text=texts
    ).sort_values(["_i", "kind", "rank"], kind="stable")
    columns = ["row", "kind", "rank", "feature", "component", "value", "points", "text"]
    return frame[columns].reset_index(drop=True)
