"""Exploration across every kind, and the effects its randomised rows identify (no I/O).

The observational log cannot tell a play's effect on the whole book where CSMs choose the kind by
the very reasons that drive its effect (no overlap). A small randomised budget can:

- :func:`explore` draws, among the eligible accounts, an experiment of expected size ``budget``
  plays, an equal part per kind spread over the accounts allowed it, and ``c`` no-play controls
  per play. Every arm's probability is known and logged. Draws are
  hashes of (seed, salt, account id), as in the holdout (:mod:`.policy`).
- :func:`randomised_effects` reads each kind's average effect from those rows alone, by
  inverse-propensity weighted (Hájek) means of the outcome in each arm against the control arm,
  with a linearised standard error. Unbiased whatever drove the CSMs' own choices.
- :func:`ground` corrects an observational per-account estimate by the experiment: it shifts each
  kind's estimates by the gap between the experimental average and the observational average over
  the same randomised rows, and widens their standard error by that gap's; with ``shrink``, each
  gap is first shrunk toward 0 by how sure the experiment is of it, against how far the other
  kinds' biases spread (empirical Bayes). Where no experiment ran for a kind, the observational
  estimate is returned unchanged and marked so. (After Kallus, Puli and Shalit, *Removing hidden
  confounding by experimental grounding*, NeurIPS 2018, with a constant correction: the
  experiment is too small to fit a richer one early on.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from models.interventions.policy import stable_uniform

CONTROL = -1  # the no-play arm
_Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Exploration:
    """Per-account arms of one exploration draw, aligned with the input accounts.

    Attributes:
        arm: (n,) kind index, :data:`CONTROL` for the no-play arm, or -2 outside the experiment.
        propensity: (n,) probability of the arm drawn (NaN outside the experiment).
        entry: the mean probability with which an eligible account took a play.
    """

    arm: np.ndarray
    propensity: np.ndarray
    entry: float

    @property
    def assigned(self) -> np.ndarray:
        """(n,) bool: the account takes part in the experiment (a play or the control)."""
        return self.arm >= CONTROL


def explore(
    account_ids: Sequence[str],
    allowed: np.ndarray,
    budget: float,
    seed: int,
    salt: str,
    controls_per_play: float = 1.0,
    weight: np.ndarray | None = None,
) -> Exploration:
    """Draw randomised arms for an expected ``budget`` plays among the eligible accounts.

    Each kind gets an equal part of the budget, spread over the accounts allowed it in
    proportion to ``weight``: account ``i`` takes kind ``k`` with probability ``p_ik`` (a kind
    few accounts may get is played as often as a common one), the no-play control with
    probability ``controls_per_play · Σ_k p_ik`` (a control uses no capacity, and a larger
    control arm narrows every kind's interval), or neither. The probability of the arm drawn is
    logged as its propensity.

    Args:
        account_ids: unique ids, one per row.
        allowed: (n, kinds) which kinds each account may receive; a row with none is not eligible.
        budget: expected number of randomised plays (e.g. a share of the period's capacity).
        seed: fixes the draws with ``salt``.
        salt: the decision date (a fresh draw per date, the same on a re-run).
        controls_per_play: expected controls per randomised play.
        weight: (n,) relative chance of each account to be drawn (None: alike), e.g. less for
            large accounts, where a play that turns out harmful costs most.

    Raises:
        ValueError: mismatched shapes, repeated ids, or a negative budget or control ratio.
    """
    allowed = np.asarray(allowed, dtype=bool)
    ids = [str(a) for a in account_ids]
    if allowed.ndim != 2 or allowed.shape[0] != len(ids):
        raise ValueError(f"allowed must be (accounts, kinds); got {allowed.shape} for {len(ids)}")
    if len(set(ids)) != len(ids):
        raise ValueError("account ids must be unique: a repeated id would repeat its draws")
    if budget < 0 or controls_per_play < 0:
        raise ValueError(
            f"budget and controls_per_play must be ≥ 0, got {budget}, {controls_per_play}"
        )
    eligible = allowed.any(axis=1)
    w = np.ones(len(ids)) if weight is None else np.asarray(weight, dtype=float)
    if w.shape != (len(ids),) or np.any(~np.isfinite(w) | (w < 0)):
        raise ValueError("weight must be one finite, non-negative number per account")
    # each kind gets an equal part of the budget, spread over the accounts allowed it by weight
    p = allowed * w[:, None]
    reach = p.sum(axis=0)
    kinds = int((reach > 0).sum())
    p = np.divide(p, reach, out=np.zeros_like(p), where=reach > 0) * (budget / max(kinds, 1))
    # no account above probability 1 for its plays and control together
    total = p.sum(axis=1)
    room = np.divide(1.0, (1.0 + controls_per_play) * total, out=np.ones_like(total),
                     where=total > 0)  # fmt: skip
    p *= np.minimum(1.0, room)[:, None]
    play_p = p.sum(axis=1)
    control_p = controls_per_play * play_p
    u = stable_uniform(ids, seed, f"{salt}/explore")
    cum = p.cumsum(axis=1)
    nth = (u[:, None] >= cum).sum(axis=1)
    play = eligible & (u < play_p)
    control = eligible & ~play & (u < play_p + control_p)
    nth = np.minimum(nth, allowed.shape[1] - 1)
    arm = np.where(play, nth, np.where(control, CONTROL, -2))
    chosen = p[np.arange(len(ids)), nth]
    propensity = np.where(play, chosen, np.where(control, control_p, np.nan))
    q = float(play_p[eligible].mean()) if eligible.any() else 0.0
    return Exploration(arm=arm.astype(np.int64), propensity=propensity, entry=q)


def randomised_effects(
    arm: np.ndarray,
    propensity: np.ndarray,
    outcome: np.ndarray,
    kinds: Sequence[str],
    min_rows: int = 10,
    covariates: np.ndarray | None = None,
) -> pd.DataFrame:
    """Each kind's average effect on ``outcome`` from the randomised rows, against the control.

    Args:
        arm: (n,) kind index or :data:`CONTROL`, randomised rows only.
        propensity: (n,) the logged probability of the arm each row ran.
        outcome: (n,) the outcome (a renewal, or a surrogate of it).
        kinds: names of the kind indices.
        min_rows: fewer rows than this in an arm (or the control) gives no estimate (NaN).
        covariates: (n,) or (n, p) measured before the draw (e.g. the win probability at the
            decision), or None. The outcome is first adjusted by its pooled within-arm
            regression on them (:func:`adjust_outcome`): unbiased still, since the draw makes
            them independent of the arm, and narrower where they predict the outcome.

    Returns:
        One row per kind: ``ate``, ``se``, ``lo``, ``hi`` (95 %), ``rows`` and ``control_rows``.
    """
    arm = np.asarray(arm)
    w = 1.0 / np.asarray(propensity, dtype=float)
    y = np.asarray(outcome, dtype=float)
    if not (arm.size == w.size == y.size):
        raise ValueError("arm, propensity and outcome must have one entry per row")
    if np.any(~np.isfinite(w)) or np.any(~np.isfinite(y)):
        raise ValueError("randomised rows need a finite propensity in (0, 1] and outcome")
    if covariates is not None:
        y = adjust_outcome(arm, w, y, covariates)

    def mean_and_var(mask: np.ndarray) -> tuple[float, float]:
        wi, yi = w[mask], y[mask]
        mean = float(np.sum(wi * yi) / np.sum(wi))
        var = float(np.sum(wi**2 * (yi - mean) ** 2) / np.sum(wi) ** 2)
        return mean, var

    control = arm == CONTROL
    rows = []
    for index, kind in enumerate(kinds):
        treated = arm == index
        ate = se = np.nan
        if treated.sum() >= min_rows and control.sum() >= min_rows:
            m1, v1 = mean_and_var(treated)
            m0, v0 = mean_and_var(control)
            ate, se = m1 - m0, float(np.sqrt(v1 + v0))
        rows.append(
            {
                "kind": kind,
                "ate": ate,
                "se": se,
                "lo": ate - _Z95 * se,
                "hi": ate + _Z95 * se,
                "rows": int(treated.sum()),
                "control_rows": int(control.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("kind")


def adjust_outcome(
    arm: np.ndarray, weight: np.ndarray, outcome: np.ndarray, covariates: np.ndarray
) -> np.ndarray:
    """The outcome less what the covariates predict of it, ``y − (x − x̄)·θ``.

    ``θ`` is the weighted least-squares slope of ``y`` on ``x`` with one intercept per arm (so a
    play's effect does not leak into it), ``x̄`` the weighted mean over every row: each arm's mean
    moves only by chance differences in its covariates (CUPED; Deng et al., 2013, with Lin's
    2013 per-arm intercepts). Covariates with a non-finite value or no spread are left out."""
    x = np.asarray(covariates, dtype=float)
    x = x.reshape(len(x), -1)
    if x.shape[0] != outcome.size:
        raise ValueError(
            f"covariates need one row per outcome; got {x.shape[0]} for {outcome.size}"
        )
    keep = np.isfinite(x).all(axis=0) & (x.std(axis=0) > 0)
    x = x[:, keep]
    if not x.shape[1]:
        return outcome
    centred = x - np.average(x, axis=0, weights=weight)
    arms = (arm[:, None] == np.unique(arm)[None, :]).astype(float)
    design = np.hstack([arms, centred]) * np.sqrt(weight)[:, None]
    coef, *_ = np.linalg.lstsq(design, outcome * np.sqrt(weight), rcond=None)
    return outcome - centred @ coef[arms.shape[1] :]


@dataclass(frozen=True)
class Grounded:
    """Per-account effects corrected by the experiment.

    Attributes:
        effect: (n, kinds) corrected point estimates.
        se: (n, kinds) standard errors, widened by the correction's.
        shift: per kind, the correction added (0 where no experiment ran).
        grounded: per kind, whether an experiment corrected it.
        spread: per kind, the standard deviation of the other read-out kinds' biases its
            correction was shrunk with (``shrink=True``); NaN without shrinkage or read-out.
    """

    effect: np.ndarray
    se: np.ndarray
    shift: pd.Series
    grounded: pd.Series
    spread: pd.Series


def bias_spread(gap: np.ndarray, se: np.ndarray) -> float:
    """How far the observational estimates' biases spread across kinds: the maximum-likelihood
    standard deviation τ of a normal bias around 0, each kind's measured gap being its bias plus
    the experiment's noise (``gap ~ N(0, τ² + se²)``); a noisy kind's gap weighs little."""
    gap, se = np.asarray(gap, dtype=float), np.asarray(se, dtype=float)
    if gap.size == 0 or not np.any(gap):
        return 0.0

    def minus_log_likelihood(tau: float) -> float:
        v = tau**2 + se**2 + 1e-12  # a read-out without noise (se 0) stays finite
        return float(np.sum(np.log(v) + gap**2 / v))

    top = float(np.max(np.abs(gap)))
    best = minimize_scalar(minus_log_likelihood, bounds=(0.0, top), method="bounded")
    candidates = {0.0: minus_log_likelihood(0.0), float(best.x): float(best.fun)}
    return min(candidates, key=lambda tau: candidates[tau])


def ground(
    effect: np.ndarray,
    se: np.ndarray,
    kinds: Sequence[str],
    experiment: pd.DataFrame,
    observational_on_experiment: pd.Series,
    shrink: bool = False,
) -> Grounded:
    """Shift each kind's observational estimates by the experiment's view of their bias.

    With ``shrink``, the view is an empirical-Bayes one: each kind's bias is drawn from a normal
    of spread τ (:func:`bias_spread` of the *other* read-out kinds' gaps, so that one kind's
    outlying read-out cannot vouch for itself); the measured gap is that bias plus the
    experiment's noise, and the shift is the bias's posterior mean ``gap · τ² / (τ² + se²)``
    with its posterior variance ``τ² se² / (τ² + se²)`` added to the estimate's. An experiment
    too small to tell a kind's bias from noise then moves it little, and a precise one moves it
    fully; a kind read out alone is not moved. Without ``shrink`` every gap is taken at face
    value.

    Args:
        effect: (n, kinds) observational per-account effects.
        se: (n, kinds) their standard errors.
        kinds: column names of ``effect``.
        experiment: :func:`randomised_effects`' table (``ate``, ``se`` per kind).
        observational_on_experiment: per kind, the observational estimate averaged over the
            randomised rows the experimental average was taken on.
        shrink: shrink each gap toward 0 by how sure the experiment is of it.
    """
    effect = np.asarray(effect, dtype=float).copy()
    se = np.asarray(se, dtype=float).copy()
    shift = pd.Series(0.0, index=list(kinds))
    grounded = pd.Series(False, index=list(kinds))
    read = [
        k for k in kinds
        if k in experiment.index and np.isfinite(experiment.loc[k, ["ate", "se"]]).all()
    ]  # fmt: skip
    gap = pd.Series(
        [float(experiment.loc[k, "ate"] - observational_on_experiment[k]) for k in read],
        index=read,
        dtype=float,
    )
    noise = experiment.loc[read, "se"].astype(float) if read else pd.Series(dtype=float)
    spread = pd.Series(np.nan, index=list(kinds))
    for j, kind in enumerate(kinds):
        if kind not in gap.index:
            continue
        g, s2 = float(gap[kind]), float(noise[kind]) ** 2
        if shrink:
            # the spread of the other kinds' biases: a kind's own gap, however far out, does not
            # set how far that gap is trusted (one noisy read-out cannot pull itself through)
            others = gap.index != kind
            spread[kind] = bias_spread(gap[others].to_numpy(), noise[others].to_numpy())
            tau2 = spread[kind] ** 2
            weight = tau2 / (tau2 + s2) if tau2 + s2 > 0 else 0.0
            g, s2 = g * weight, weight * s2
        shift[kind], grounded[kind] = g, True
        effect[:, j] += g
        se[:, j] = np.sqrt(se[:, j] ** 2 + s2)
    return Grounded(effect=effect, se=se, shift=shift, grounded=grounded, spread=spread)
