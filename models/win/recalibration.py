"""Recalibration from renewals closed since training, without refitting the members.

A win model's ranking ages slowly; its calibration can drift fast (the book's renewal rate
moves with the economy, a pricing change, a new segment). Two numbers learned on renewals that
closed after training (a Platt map of the model's own calibrated log-odds,
``logit p' = intercept + slope · logit p``) correct that, and need far fewer outcomes than a
refit: :func:`fit_correction`. :func:`measure_correction` says whether they help, on the same
renewals, cross-fitted over accounts, with a 95 % interval from a paired bootstrap over them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from models.errors import ModelInputError
from models.win.calibration import EPS, UNPENALISED, Recalibrated
from models.win.metrics import expected_calibration_error

FOLDS = 5


@dataclass(frozen=True)
class Correction:
    """A recalibration's two numbers and their measured effect on the closed renewals.

    ``gain``: log loss per renewal before minus after (positive: the correction helps),
    cross-fitted over accounts, with ``low``/``high`` its 95 % interval from a paired bootstrap
    over accounts. ``ece_before``/``ece_after`` and the mean ``predicted_before``/
    ``predicted_after`` against ``realised`` on the same rows (the after figures cross-fitted
    too). ``renewals``, ``non_renewals`` and ``accounts``: the counts it rests on; ``after``
    the cross-fitted corrected probability of each row.
    """

    intercept: float
    slope: float
    gain: float
    low: float
    high: float
    log_loss_before: float
    log_loss_after: float
    ece_before: float
    ece_after: float
    predicted_before: float
    predicted_after: float
    realised: float
    renewals: int
    non_renewals: int
    accounts: int
    after: np.ndarray = field(repr=False)  # the cross-fitted corrected probability per row

    @property
    def helps(self) -> bool:
        """True when the gain's whole interval lies above 0."""
        return self.low > 0


def fit_correction(p: np.ndarray, renewed: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the Platt map of ``logit(p)`` fitted to ``renewed``."""
    z = logit(np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS))[:, None]
    model = LogisticRegression(C=UNPENALISED).fit(z, np.asarray(renewed, dtype=int))
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def measure_correction(
    p: np.ndarray,
    renewed: np.ndarray,
    groups: np.ndarray,
    replicates: int = 200,
    seed: int = 0,
    min_rarer: int = 30,
) -> Correction:
    """Fit the correction on all of (p, renewed) and measure it, cross-fitted over accounts.

    Args:
        p: The deployed model's win probability per closed renewal (its snapshots).
        renewed: 1 = renewed, 0 = churned.
        groups: Account id per row: folds and bootstrap resamples keep an account whole.
        replicates: Bootstrap resamples for the gain's interval.
        seed: The bootstrap's seed.
        min_rarer: The fewest rows of the rarer outcome to fit two numbers from.

    Raises:
        ModelInputError: fewer than ``min_rarer`` rows of either outcome, or fewer accounts
            than folds.
    """
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    renewed = np.asarray(renewed, dtype=int)
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
    rarer = int(min(renewed.sum(), renewed.size - renewed.sum()))
    if rarer < min_rarer or uniques.size < FOLDS:
        raise ModelInputError(
            f"{renewed.size:,} closed renewals ({int((renewed == 0).sum()):,} non-renewals, "
            f"{uniques.size:,} accounts) since training; recalibration needs at least "
            f"{min_rarer} of each outcome (recalibrate.min_rarer_outcome) over {FOLDS} accounts "
            "or more"
        )
    after = np.empty_like(p)
    for fit_rows, held_rows in GroupKFold(n_splits=FOLDS).split(p, renewed, codes):
        a, b = fit_correction(p[fit_rows], renewed[fit_rows])
        after[held_rows] = Recalibrated._map(p[held_rows], a, b)
    loss_before, loss_after = _row_loss(renewed, p), _row_loss(renewed, after)
    diff = loss_before - loss_after
    rng = np.random.default_rng(seed)
    draws = np.empty(replicates)
    for r in range(replicates):
        counts = np.bincount(rng.integers(0, uniques.size, uniques.size), minlength=uniques.size)
        weights = counts[codes]
        draws[r] = np.sum(weights * diff) / max(np.sum(weights), 1)
    low, high = np.quantile(draws, [0.025, 0.975])
    intercept, slope = fit_correction(p, renewed)
    return Correction(
        intercept=intercept,
        slope=slope,
        gain=float(diff.mean()),
        low=float(low),
        high=float(high),
        log_loss_before=float(loss_before.mean()),
        log_loss_after=float(loss_after.mean()),
        ece_before=expected_calibration_error(renewed, p),
        ece_after=expected_calibration_error(renewed, after),
        predicted_before=float(p.mean()),
        predicted_after=float(after.mean()),
        realised=float(renewed.mean()),
        renewals=int(renewed.size),
        non_renewals=int((renewed == 0).sum()),
        accounts=int(uniques.size),
        after=after,
    )


def _row_loss(renewed: np.ndarray, p: np.ndarray) -> np.ndarray:
    return -(renewed * np.log(p) + (1 - renewed) * np.log(1 - p))
