"""Is the model still fit for the data? Drift against training, and performance before outcomes.

- :func:`feature_profile` summarises the training features (quantile bins for numbers, shares
  for categories); it travels with the model, so scoring needs no training data.
- :func:`population_stability` compares today's features with that profile (PSI per feature).
- :func:`drift_report` puts both together for one scoring run: PSI of every feature and of the
  score, flagged above the threshold.
- :func:`expected_auc` is the ROC AUC the model should reach if its calibrated probabilities
  are right, an estimate of current performance before renewals land; realised AUC replaces it
  once outcomes are known.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.config import ScoreConfig

MISSING = "(missing)"
FLOOR = 1e-4  # share given to an empty bin, so the PSI stays finite


def feature_profile(X: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """One row per (feature, bin): ``feature``, ``bin`` (label), ``upper`` edge, ``share``.

    Numbers get quantile bins plus a bin for missing values; categories one bin per value.
    """
    rows = []
    for column in X.columns:
        values = X[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            shares = values.astype(object).fillna(MISSING).value_counts(normalize=True)
            rows += [(column, str(k), np.nan, float(v)) for k, v in shares.items()]
            continue
        numbers = values.to_numpy(dtype=float)
        present = numbers[~np.isnan(numbers)]
        edges = (
            np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
            if len(present)
            else np.array([])
        )
        counts = _bin_counts(numbers, edges)
        uppers = [*edges.tolist(), np.inf, np.nan]
        for i, (upper, count) in enumerate(zip(uppers, counts, strict=True)):
            rows.append((column, MISSING if i == len(uppers) - 1 else f"b{i}", upper,
                         count / max(len(numbers), 1)))  # fmt: skip
    return pd.DataFrame(rows, columns=["feature", "bin", "upper", "share"])


def population_stability(profile: pd.DataFrame, X: pd.DataFrame) -> pd.Series:
    """PSI of each profiled feature of ``X`` against the training profile (0 = same)."""
    out = {}
    for column, part in profile.groupby("feature", sort=False):
        if column not in X.columns:
            continue
        expected = part["share"].to_numpy()
        if part["upper"].isna().all():  # categorical
            observed_shares = X[column].astype(object).fillna(MISSING).astype(str)
            observed_shares = observed_shares.value_counts(normalize=True)
            observed = observed_shares.reindex(part["bin"]).fillna(0).to_numpy()
            unseen = 1 - observed.sum()  # values the training data never had
            expected = np.append(expected, 0.0)
            observed = np.append(observed, max(unseen, 0.0))
        else:
            edges = part["upper"].to_numpy()[:-2]
            counts = _bin_counts(X[column].to_numpy(dtype=float), edges)
            observed = counts / max(len(X), 1)
        out[column] = _psi(expected, observed)
    return pd.Series(out, name="psi", dtype=float)


def psi_of_scores(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of the current win probabilities against the training distribution."""
    profile = feature_profile(pd.DataFrame({"p": np.asarray(reference, float)}), bins)
    return float(population_stability(profile, pd.DataFrame({"p": current})).iloc[0])


def drift_report(
    snapshot: pd.DataFrame,
    scores: pd.DataFrame,
    features: Sequence[str],
    profile: pd.DataFrame | None,
    reference_scores: np.ndarray | None,
    cfg: ScoreConfig,
    *,
    horizon_days: int,
) -> pd.DataFrame:
    """PSI of every feature and of the win probability against training, most drifted first.

    Measured on the accounts whose renewal is within the horizon, the population the model
    learned from (on every account when fewer than 100 are), and flagged above
    ``cfg.psi_threshold``.

    Args:
        snapshot: the features of every scored account (``account_id``, ``days_to_renewal``).
        scores: the scores of the same accounts (``account_id``, ``win_probability``).
        features: the model's feature names.
        profile: the training features' profile (:func:`feature_profile`); None: no feature rows.
        reference_scores: the training win probabilities; None: no score row.
        cfg: the ``score`` section (``psi_threshold``).
        horizon_days: the furthest renewal the model learned on.

    Returns:
        ``kind`` (``feature`` / ``score``), ``name``, ``psi`` and ``flagged``, by PSI descending.
    """
    # the model learned from snapshots within the horizon of a renewal: compare like with like
    due = snapshot["days_to_renewal"].notna() & (snapshot["days_to_renewal"] <= horizon_days)
    if due.sum() < 100:
        due = pd.Series(True, index=snapshot.index)
    snapshot, scores = (
        snapshot[due.to_numpy()],
        scores.set_index("account_id").loc[snapshot.loc[due, "account_id"]],
    )
    rows = []
    if profile is not None:
        psi = population_stability(profile, snapshot[list(features)])
        rows += [("feature", name, value) for name, value in psi.items()]
    if reference_scores is not None:
        value = psi_of_scores(reference_scores, scores["win_probability"])
        rows.append(("score", "win_probability", value))
    drift = pd.DataFrame(rows, columns=["kind", "name", "psi"])
    return drift.assign(flagged=drift["psi"] > cfg.psi_threshold).sort_values(
        "psi", ascending=False, kind="stable"
    )


def expected_auc(win_probability: np.ndarray) -> float:
    """ROC AUC expected if each account renews with its calibrated probability.

    Over pairs (renewer i, churner j) weighted by ``p_i · (1 − p_j)``, the share ranked right
    (ties count half); O(n log n) by sorting.
    """
    p = np.sort(np.asarray(win_probability, dtype=float))
    if len(p) < 2:
        return float("nan")
    churn = 1 - p
    _values, start = np.unique(p, return_index=True)
    churn_by_value = np.add.reduceat(churn, start)
    renew_by_value = np.add.reduceat(p, start)
    below = np.cumsum(churn_by_value) - churn_by_value  # churn mass strictly below each value
    right = np.sum(renew_by_value * (below + 0.5 * churn_by_value))
    right -= 0.5 * np.sum(p * churn)  # an account is not paired with itself
    pairs = p.sum() * churn.sum() - np.sum(p * churn)
    return float(right / pairs) if pairs > 0 else float("nan")


def _bin_counts(numbers: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (``x <= edge``), then above the last edge, then missing."""
    missing = np.isnan(numbers)
    which = np.searchsorted(edges, numbers[~missing], side="left")
    counts = np.bincount(which, minlength=len(edges) + 1).astype(float)
    return np.append(counts, missing.sum())


def _psi(expected: np.ndarray, observed: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, float), FLOOR)
    o = np.maximum(np.asarray(observed, float), FLOOR)
    used = (np.asarray(expected) > 0) | (np.asarray(observed) > 0)
    return float(np.sum(((o - e) * np.log(o / e))[used]))
