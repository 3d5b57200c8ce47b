"""Churn, shrink or grow: the renewal ARR per account, beside the win probability.

A two-part model. The win model gives P(renewed). Given renewal, the renewal ARR over today's
ARR falls in one of three classes (the outcome classes of :func:`features.spine.outcome_class`:
contraction below ``1 − FLAT_BAND``, expansion above ``1 + FLAT_BAND``, flat between), and
two calibrated binary ensembles (the win model's own :class:`~models.win.ensemble.HealthEnsemble`,
fitted on the renewed snapshots) give P(expansion | renewed) and P(contraction | renewed), each
with exact per-feature contributions in its own log-odds: "why might this account grow?" reads
like "why is it at risk?". Within each class, the ratio is drawn from the training ratios of
that class (their quantiles travel with the model), so the expected renewal ARR is

    E[renewal ARR] = ARR · p · (q_e · m_e + q_c · m_c + (1 − q_e − q_c) · m_f)

with p the win probability, q the class probabilities given renewal and m the class means; and
a forecast draws every renewal from that mixture for its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from features.spine import FLAT_BAND
from models.errors import ModelInputError
from models.win.ensemble import HealthEnsemble
from models.win.metrics import expected_calibration_error

CLASSES = ("contraction", "flat", "expansion")
QUANTILES = 99  # ratio quantiles kept per class: the forecast's draws within a class


@dataclass(frozen=True)
class SizeOutlook:
    """Per row, given renewal: P(expansion), P(contraction), and the expected ratio."""

    p_expand: np.ndarray
    p_contract: np.ndarray
    expected_ratio: np.ndarray


def size_class(ratio: np.ndarray) -> np.ndarray:
    """0 contraction, 1 flat, 2 expansion, by the renewal ARR over today's ARR."""
    ratio = np.asarray(ratio, dtype=float)
    return np.where(ratio < 1 - FLAT_BAND, 0, np.where(ratio > 1 + FLAT_BAND, 2, 1))


class RenewalSize:
    """The size of a renewal given that it renews: contraction, flat or expansion.

    ``fit(X, ratio, groups, times)`` on renewed snapshots (ratio = renewal ARR / ARR). Learned:
    ``expand_`` and ``contract_`` (calibrated binary ensembles), ``means_`` (mean ratio per
    class), ``quantiles_`` (per class, ``QUANTILES`` ratio quantiles), ``shares_`` (each
    class's share of the training renewals) and ``rows_`` (the counts per class).
    """

    def __init__(self, **ensemble: object) -> None:
        self.ensemble = ensemble  # HealthEnsemble's settings, the same for both class models

    def fit(
        self,
        X: pd.DataFrame,
        ratio: np.ndarray | pd.Series,
        groups: np.ndarray | pd.Series | None = None,
        times: np.ndarray | pd.Series | None = None,
    ) -> RenewalSize:
        """Fit both class models and the per-class ratio distributions.

        Raises:
            ModelInputError: a ratio is missing, not finite or not positive, or a class has
                fewer than 2 renewals (nothing to learn it from).
        """
        ratio = np.asarray(ratio, dtype=float)
        if ratio.shape != (len(X),) or not np.isfinite(ratio).all() or (ratio <= 0).any():
            raise ModelInputError(
                "renewal ARR over ARR must be a positive finite number for every renewed "
                "snapshot (renewal_arr and arr known and above 0)"
            )
        cls = size_class(ratio)
        counts = np.bincount(cls, minlength=3)
        if (counts < 2).any():
            raise ModelInputError(
                "renewal sizes: "
                + ", ".join(f"{n:,} {c}" for c, n in zip(CLASSES, counts, strict=True))
                + "; each needs at least 2 renewals to be learned"
            )
        self.rows_ = dict(zip(CLASSES, counts.tolist(), strict=True))
        self.shares_ = dict(zip(CLASSES, (counts / counts.sum()).tolist(), strict=True))
        self.means_ = {c: float(ratio[cls == k].mean()) for k, c in enumerate(CLASSES)}
        grid = (np.arange(QUANTILES) + 0.5) / QUANTILES
        self.quantiles_ = {c: np.quantile(ratio[cls == k], grid) for k, c in enumerate(CLASSES)}
        self.expand_ = HealthEnsemble(**self.ensemble).fit(X, (cls == 2).astype(int), groups, times)
        self.contract_ = HealthEnsemble(**self.ensemble).fit(
            X, (cls == 0).astype(int), groups, times
        )
        return self

    def predict(self, X: pd.DataFrame) -> SizeOutlook:
        """P(expansion), P(contraction) and the expected ratio, each given renewal."""
        return self.outlook(
            self.expand_.predict_proba(X)[:, 1], self.contract_.predict_proba(X)[:, 1]
        )

    def outlook(self, up: np.ndarray, down: np.ndarray) -> SizeOutlook:
        """The outlook from the two class models' probabilities (given renewal), when the
        caller already has them (scoring gets P(expansion) from its exact contributions)."""
        # two separate models: their sum can pass 1 where both are sure; scale them back
        total = up + down
        scale = np.where(total > 1, 1 / np.maximum(total, 1e-12), 1.0)
        up, down = up * scale, down * scale
        m = self.means_
        expected = up * m["expansion"] + down * m["contraction"] + (1 - up - down) * m["flat"]
        return SizeOutlook(up, down, expected)


def refit(model: RenewalSize, X: pd.DataFrame, ratio: np.ndarray | pd.Series) -> RenewalSize:
    """Refit both class models' members and the per-class ratios on more renewals (every
    labelled one), keeping the stacking weights and calibrators learned out of fold."""
    ratio = np.asarray(ratio, dtype=float)
    cls = size_class(ratio)
    model.expand_.refit_members(X, (cls == 2).astype(int))
    model.contract_.refit_members(X, (cls == 0).astype(int))
    grid = (np.arange(QUANTILES) + 0.5) / QUANTILES
    counts = np.bincount(cls, minlength=3)
    model.rows_ = dict(zip(CLASSES, counts.tolist(), strict=True))
    model.shares_ = dict(zip(CLASSES, (counts / counts.sum()).tolist(), strict=True))
    model.means_ = {c: float(ratio[cls == k].mean()) for k, c in enumerate(CLASSES)}
    model.quantiles_ = {c: np.quantile(ratio[cls == k], grid) for k, c in enumerate(CLASSES)}
    return model


@dataclass(frozen=True)
class RenewalDollars:
    """Per account, in currency: the expected renewal ARR and its parts (churned ARR,
    contraction, expansion), with the probabilities behind them."""

    expected_renewal_arr: np.ndarray
    expected_churned_arr: np.ndarray
    expected_contraction_arr: np.ndarray
    expected_expansion_arr: np.ndarray
    p_expand: np.ndarray  # P(renews and grows), not given renewal
    p_contract: np.ndarray  # P(renews and shrinks)


def renewal_dollars(
    arr: np.ndarray, p_win: np.ndarray, outlook: SizeOutlook, means: dict[str, float]
) -> RenewalDollars:
    """The expected renewal ARR of each account and its parts, from its ARR, its win
    probability and its size outlook (``means``: the mean ratio of each class)."""
    arr, p = np.asarray(arr, dtype=float), np.asarray(p_win, dtype=float)
    up, down = p * outlook.p_expand, p * outlook.p_contract
    return RenewalDollars(
        expected_renewal_arr=arr * p * outlook.expected_ratio,
        expected_churned_arr=arr * (1 - p),
        expected_contraction_arr=arr * down * (1 - means["contraction"]),
        expected_expansion_arr=arr * up * (means["expansion"] - 1),
        p_expand=up,
        p_contract=down,
    )


def nrr_errors(
    expected: np.ndarray, realised: np.ndarray, arr: np.ndarray, periods: np.ndarray
) -> tuple[float, pd.DataFrame]:
    """Forecast against realised net revenue retention per period, and the ARR-weighted mean
    absolute error in NRR points (100 × ratio).

    Returns:
        The weighted error, and one row per period: ``arr``, ``forecast_nrr``,
        ``realised_nrr`` (both in %), ``error`` (points).
    """
    frame = pd.DataFrame({"period": np.asarray(periods), "expected": expected,
                          "realised": realised, "arr": arr})  # fmt: skip
    sums = frame.groupby("period", sort=True)[["expected", "realised", "arr"]].sum()
    sums = sums[sums["arr"] > 0]
    table = pd.DataFrame({
        "arr": sums["arr"],
        "forecast_nrr": 100 * sums["expected"] / sums["arr"],
        "realised_nrr": 100 * sums["realised"] / sums["arr"],
    })  # fmt: skip
    table["error"] = (table["forecast_nrr"] - table["realised_nrr"]).abs()
    if table.empty:
        return float("nan"), table.reset_index()
    weighted = float(np.average(table["error"], weights=table["arr"]))
    return weighted, table.reset_index()


def evaluate(
    model: RenewalSize,
    X: pd.DataFrame,
    frame: pd.DataFrame,
    p_win: np.ndarray,
    replicates: int = 200,
    seed: int = 0,
) -> tuple[dict[str, float], pd.DataFrame]:
    """The size model on labelled snapshots (a test period), with 95 % intervals over accounts.

    Args:
        model: The fitted size model.
        X: The features of the snapshots.
        frame: Their ``account_id``, ``as_of``, ``arr``, ``renewed``, ``renewal_arr`` and,
            when present, ``segment``.
        p_win: The win model's probability per snapshot.
        replicates: Bootstrap resamples of accounts behind each interval.
        seed: The bootstrap's seed.

    Returns:
        Metrics: ``expansion_auc`` and ``expansion_ece`` (given renewal), the same for
        contraction, ``renewal_arr_spearman`` (expected against realised renewal ARR, churn =
        0), ``nrr_error`` (ARR-weighted mean absolute error of the book's NRR per as-of date,
        in points) and ``nrr_error_segment_max`` (the worst segment's), each with ``_low`` and
        ``_high``, and the counts; and the per-date NRR table (``segment`` "(all)" for the book).
    """
    arr = frame["arr"].to_numpy(dtype=float)
    renewed = frame["renewed"].to_numpy(dtype=float) == 1
    realised_arr = np.where(renewed, frame["renewal_arr"].to_numpy(dtype=float), 0.0)
    ratio = np.divide(realised_arr, arr, out=np.ones_like(arr), where=arr > 0)
    cls = size_class(ratio)
    outlook = model.predict(X)
    dollars = renewal_dollars(arr, p_win, outlook, model.means_)
    # a table without as-of dates is one period: its whole test
    periods = frame["as_of"].astype(str).where(frame["as_of"].notna(), "all").to_numpy()
    segments = frame["segment"].astype(str).to_numpy() if "segment" in frame else None
    codes, uniques = pd.factorize(frame["account_id"], sort=True)

    def figures(rows: np.ndarray) -> dict[str, float]:
        ren = rows[renewed[rows]]
        out = {}
        for name, k, q in (
            ("expansion", 2, outlook.p_expand),
            ("contraction", 0, outlook.p_contract),
        ):
            y = (cls[ren] == k).astype(int)
            both = 0 < y.sum() < y.size
            out[f"{name}_auc"] = float(roc_auc_score(y, q[ren])) if both else float("nan")
            out[f"{name}_ece"] = expected_calibration_error(y, q[ren])
        out["renewal_arr_spearman"] = float(
            spearmanr(dollars.expected_renewal_arr[rows], realised_arr[rows]).statistic
        )
        out["nrr_error"], _ = nrr_errors(dollars.expected_renewal_arr[rows], realised_arr[rows],
                                         arr[rows], periods[rows])  # fmt: skip
        if segments is not None:
            out["nrr_error_segment_max"] = max(
                nrr_errors(
                    dollars.expected_renewal_arr[rows][seg],
                    realised_arr[rows][seg],
                    arr[rows][seg],
                    periods[rows][seg],
                )[0]
                for seg in (segments[rows] == s for s in np.unique(segments[rows]))
            )
        return out

    every = np.arange(len(frame))
    point = figures(every)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(replicates):
        counts = np.bincount(rng.integers(0, uniques.size, uniques.size), minlength=uniques.size)
        draws.append(figures(np.repeat(every, counts[codes])))
    sample = pd.DataFrame(draws)
    metrics = dict(point)
    for name in point:
        metrics[f"{name}_low"], metrics[f"{name}_high"] = (
            float(v) for v in np.nanquantile(sample[name], [0.025, 0.975])
        )
    metrics |= {"snapshots": float(len(frame)), "renewals": float(renewed.sum()),
                "expansions": float((renewed & (cls == 2)).sum()),
                "contractions": float((renewed & (cls == 0)).sum()),
                "accounts": float(uniques.size)}  # fmt: skip
    tables = [nrr_errors(dollars.expected_renewal_arr, realised_arr, arr, periods)[1]
              .assign(segment="(all)")]  # fmt: skip
    if segments is not None:
        for s in np.unique(segments):
            seg = segments == s
            tables.append(nrr_errors(dollars.expected_renewal_arr[seg], realised_arr[seg],
                                     arr[seg], periods[seg])[1].assign(segment=s))  # fmt: skip
    return metrics, pd.concat(tables, ignore_index=True)
