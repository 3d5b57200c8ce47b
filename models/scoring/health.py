"""From win probabilities to what a CS team acts on: health, band, ARR at risk, priority."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.config import PriorityWeights, ScoreConfig


def health_score(win_probability: np.ndarray) -> np.ndarray:
    """Health 0–100: the calibrated win probability in points (monotone, rounded half-even)."""
    p = np.asarray(win_probability, dtype=float)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("win probabilities must lie in [0, 1] with no missing values")
    return np.rint(100 * p).astype("int64")


def health_band(health: np.ndarray, cfg: ScoreConfig) -> np.ndarray:
    """``red`` below ``bands.red_below``, ``yellow`` below ``bands.yellow_below``, else green."""
    health = np.asarray(health)
    return np.select(
        [health < cfg.bands.red_below, health < cfg.bands.yellow_below],
        ["red", "yellow"],
        "green",
    ).astype(object)


BAND_ORDER = {"red": 0, "yellow": 1, "green": 2}


def health_interval(
    low: np.ndarray, high: np.ndarray, health: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The win probability's interval in health points, rounded once as the health is and
    widened to hold the health itself (rounding each end apart could leave it outside)."""
    lo = np.rint(100 * np.asarray(low, dtype=float)).astype("int64")
    hi = np.rint(100 * np.asarray(high, dtype=float)).astype("int64")
    health = np.asarray(health, dtype="int64")
    return np.minimum(lo, health), np.maximum(hi, health)


def value_of_acting(
    arr_at_risk: np.ndarray,
    expansion: np.ndarray | None,
    opportunity: np.ndarray | None,
    days_to_renewal: np.ndarray,
    weights: PriorityWeights,
) -> np.ndarray:
    """Each account's value of acting, in currency (:class:`~models.config.PriorityWeights`);
    a missing expansion, opportunity or renewal date counts as 0 (no time weighting)."""
    value = weights.arr_at_risk * np.asarray(arr_at_risk, dtype=float)
    for weight, part in ((weights.expansion, expansion), (weights.opportunity, opportunity)):
        if weight and part is not None:
            value = value + weight * np.nan_to_num(np.asarray(part, dtype=float))
    if weights.half_life_days:
        days = np.clip(np.nan_to_num(np.asarray(days_to_renewal, dtype=float)), 0, None)
        value = value * 0.5 ** (days / weights.half_life_days)
    return value


def priority_rank(value: np.ndarray, arr: np.ndarray, account_id: np.ndarray) -> np.ndarray:
    """A unique rank, 1 = act first: most value (``arr_at_risk``, or any value of acting),
    then most ARR, then account id."""
    frame = pd.DataFrame(
        {"risk": np.asarray(value, float), "arr": np.asarray(arr, float),
         "id": np.asarray(account_id).astype(str)}
    )  # fmt: skip
    order = frame.sort_values(
        ["risk", "arr", "id"], ascending=[False, False, True], kind="stable"
    ).index.to_numpy()
    rank = np.empty(len(frame), dtype="int64")
    rank[order] = np.arange(1, len(frame) + 1)
    return rank
