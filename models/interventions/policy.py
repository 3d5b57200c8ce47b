"""The learning loop's randomised holdout, and its evaluation once renewals are known (no I/O).

Each run recommends a plan per eligible account (an index into the plan space; 0 = business as
usual, BAU). To measure the uplift of following the recommendations without bias, a share ε of
eligible accounts is held out: a held-out account runs BAU with probability 1 − r, or with
probability r a plan drawn uniformly from its allowed non-BAU plans. The probability of every
action is known exactly, so each row logs the probability of the action it ran:

    π_i(a) = (1 − ε)·1[a = rec_i] + ε·μ_i(a)
    μ_i(a) = (1 − r_i)·1[a = BAU] + r_i·1[a allowed, a ≠ BAU] / m_i

with m_i the number of allowed non-BAU plans and r_i = r if m_i > 0, else 0 (an account with no
allowed non-BAU plan runs BAU when it draws the random arm). μ is the holdout's own
randomisation, π the whole one's. Ineligible accounts run BAU with probability 1.

Draws are hashes of (seed, salt, account id), not a random generator: re-running the same as-of
date (salt) gives the same assignment, another date a fresh one, and an account's draw does not
depend on which other accounts are in the batch.

``holdout_uplift`` then compares the accounts that followed the recommendation (arm ``plan``)
with the randomised BAU holdout (arm ``holdout_bau``): both are random samples of the eligible
accounts with the same probability for every account (1 − ε and ε(1 − r)), so their difference
of renewal rates is an unbiased uplift. It also estimates the value of the rule "run what was
recommended" off-policy, by inverse propensity from the holdout rows alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from models.errors import ModelInputError

BAU = 0
ARMS = ("plan", "holdout_bau", "holdout_random", "ineligible")
_Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Assignment:
    """Per-account result of :func:`assign_holdout`, aligned with the input accounts."""

    arm: np.ndarray  # (n,) object: "plan" | "holdout_bau" | "holdout_random" | "ineligible"
    assigned: np.ndarray  # (n,) int64: the plan to run
    propensity: np.ndarray  # (n,) π_i(assigned_i): probability this action was chosen
    p_recommended: np.ndarray  # (n,) π_i(rec_i): probability the recommended plan was run
    holdout_propensity: np.ndarray  # (n,) μ_i(assigned_i): the same, given the account is held out


def stable_uniform(keys: Sequence[str], seed: int, salt: str) -> np.ndarray:
    """One number in [0, 1) per key, a pure function of (seed, salt, key).

    The top 53 bits of the 8-byte BLAKE2b digest of ``f"{seed}|{salt}|{key}"`` (UTF-8, big
    endian), divided by 2**53. The same inputs always give the same number, so an assignment can
    be re-run exactly; a different salt (the as-of date) gives an independent draw.

    Raises:
        ValueError: ``salt`` contains ``|`` (it would make the hashed text ambiguous).
    """
    if "|" in salt:
        raise ValueError(f"salt must not contain '|', got {salt!r}")
    prefix = f"{seed}|{salt}|"
    digests = b"".join(
        hashlib.blake2b(f"{prefix}{key}".encode(), digest_size=8).digest() for key in keys
    )
    bits = np.frombuffer(digests, dtype=">u8").astype(np.uint64) >> np.uint64(11)
    return bits.astype(float) / 2.0**53


def action_probabilities(
    recommended: np.ndarray,
    allowed: np.ndarray,
    eligible: np.ndarray,
    epsilon: float,
    random_share: float,
) -> np.ndarray:
    """(n, P) matrix of π_i(a), the probability that account i runs plan a (rows sum to 1).

    The whole action distribution, for checks and for evaluating other policies off-policy;
    :func:`assign_holdout` logs the entry of the action each account ran.

    Raises:
        ValueError: see :func:`assign_holdout`.
    """
    recommended, allowed, eligible = _checked_plans(recommended, allowed, eligible)
    _check_share("epsilon", epsilon)
    _check_share("random_share", random_share)
    return _action_probabilities(recommended, allowed, eligible, epsilon, random_share)


def assign_holdout(
    account_ids: Sequence[str],
    recommended: np.ndarray,
    allowed: np.ndarray,
    eligible: np.ndarray,
    epsilon: float,
    random_share: float,
    seed: int,
    salt: str,
) -> Assignment:
    """Hold out a share ``epsilon`` of eligible accounts; log what each runs and its propensity.

    A held-out account runs BAU (probability 1 − ``random_share``) or a uniformly drawn allowed
    non-BAU plan (``random_share``); one with no allowed non-BAU plan runs BAU in both cases but
    keeps the arm it drew, so every eligible account has the same chance of each arm. The draws
    use ``stable_uniform`` with salts ``"<salt>/holdout"``, ``"<salt>/random"`` and
    ``"<salt>/plan"``; the held-out set grows with ``epsilon`` for a fixed salt.

    Args:
        account_ids: unique account ids, one per row.
        recommended: (n,) plan index per account; ignored for ineligible accounts.
        allowed: (n, P) which plans each account may run; BAU (column 0) must be allowed.
        eligible: (n,) accounts taking part; the others run BAU with propensity 1.
        epsilon: share of eligible accounts held out, in [0, 1].
        random_share: share of the held-out accounts given a random plan, in [0, 1].
        seed: from params; with ``salt`` it fixes every draw.
        salt: the as-of date (any text without ``|``).

    Raises:
        ValueError: a share outside [0, 1], mismatched shapes, duplicate ids, or an eligible
            account whose recommended plan or BAU is not allowed (named, with an example).
    """
    recommended, allowed, eligible = _checked_plans(recommended, allowed, eligible)
    _check_share("epsilon", epsilon)
    _check_share("random_share", random_share)
    ids = [str(account_id) for account_id in account_ids]
    if len(ids) != recommended.size:
        raise ValueError(f"{len(ids)} account ids for {recommended.size} recommendations")
    if len(set(ids)) != len(ids):
        raise ValueError("account ids must be unique: a repeated id would repeat its draws")

    others = _non_bau(allowed)
    n_others = others.sum(axis=1)
    held = eligible & (stable_uniform(ids, seed, f"{salt}/holdout") < epsilon)
    randomised = held & (stable_uniform(ids, seed, f"{salt}/random") < random_share)
    # the j-th allowed non-BAU plan, j uniform on 0..m-1 (m = 0 rows are overridden to BAU)
    j = np.minimum(np.floor(stable_uniform(ids, seed, f"{salt}/plan") * n_others), n_others - 1)
    drawn = np.argmax(np.cumsum(others, axis=1) > j[:, None], axis=1)

    arm = np.select(
        [~eligible, ~held, randomised], ["ineligible", "plan", "holdout_random"], "holdout_bau"
    ).astype(object)
    assigned = np.select(
        [arm == "plan", (arm == "holdout_random") & (n_others > 0)], [recommended, drawn], BAU
    ).astype("int64")

    rows = np.arange(recommended.size)
    probs = _action_probabilities(recommended, allowed, eligible, epsilon, random_share)
    given_holdout = _holdout_probabilities(allowed, random_share)[rows, assigned]
    known = (recommended >= 0) & (recommended < allowed.shape[1])
    p_recommended = np.where(known, probs[rows, np.where(known, recommended, BAU)], 0.0)
    return Assignment(
        arm=arm,
        assigned=assigned,
        propensity=probs[rows, assigned],
        p_recommended=p_recommended,
        holdout_propensity=np.where(eligible, given_holdout, 1.0),
    )


def uplift_at_k(outcome: np.ndarray, score: np.ndarray, treated: np.ndarray, k: float) -> float:
    """Renewal rate of the top ``k`` share of the treated by score minus that of the control.

    scikit-uplift's ``uplift_at_k(strategy="by_group")``: each group is ranked by score on its
    own, so the cut is the same share of both. A group's top is int(k·size) rows, as there, but
    at least one; tied scores keep input order.
    """
    outcome, score = np.asarray(outcome, float), np.asarray(score)
    treated = np.asarray(treated, bool)
    rates = []
    for group in (treated, ~treated):
        top = np.argsort(-score[group], kind="stable")[: max(1, int(group.sum() * k))]
        rates.append(outcome[group][top].mean())
    return float(rates[0] - rates[1])


def qini_curve(
    outcome: np.ndarray, score: np.ndarray, treated: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve (Radcliffe 2007): the incremental renewals per account from targeting.

    Targeting the top share x by score gains, per account,

        Q(x) = (R_T(x) − R_C(x)·N_T(x)/N_C(x)) / N

    with R and N the renewals and counts of treated (T) and control (C) among the top x·N
    (0 while N_C = 0). Tied scores are one point, so the curve does not depend on tie order.
    Returns (x, Q) from (0, 0) to (1, overall incremental renewals per account).

    Radcliffe, N. J. (2007). Using control groups to target on predicted lift. Direct Marketing
    Analytics Journal, 3, 14–21. Same points as scikit-uplift's ``qini_curve``, divided by N.
    """
    score = np.asarray(score)
    order = np.argsort(-score, kind="stable")
    y, t, s = np.asarray(outcome, float)[order], np.asarray(treated, bool)[order], score[order]
    cut = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last row of each run of equal scores
    n_treated = np.cumsum(t)[cut]
    n_control = cut + 1 - n_treated
    ratio = np.divide(n_treated, n_control, out=np.zeros(cut.size), where=n_control > 0)
    gain = np.cumsum(y * t)[cut] - np.cumsum(y * ~t)[cut] * ratio
    return np.r_[0.0, (cut + 1) / s.size], np.r_[0.0, gain / s.size]


def holdout_uplift(
    arm: np.ndarray,
    recommended: np.ndarray,
    assigned: np.ndarray,
    holdout_propensity: np.ndarray,
    outcome: np.ndarray,
    score: np.ndarray,
    arr: np.ndarray | None = None,
    ks: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
) -> dict[str, float]:
    """Uplift of following the recommendations, measured against the randomised BAU holdout.

    Rows of arm ``plan`` (treated) are compared with rows of arm ``holdout_bau`` (control):

    * ``uplift``: difference of renewal rates, with its standard error and normal 95 % CI
      (``uplift_se``, ``uplift_ci_low``, ``uplift_ci_high``); with ``arr``, the same for
      ARR-weighted renewal rates (``uplift_arr_weighted`` …), i.e. the share of ARR renewed;
    * ``uplift_at_<k>pct``: :func:`uplift_at_k` for each k of ``ks`` (top share by ``score``);
    * ``qini_auc``: area under :func:`qini_curve`; ``qini_random_auc``: under the straight line
      to its end point (random targeting); ``qini_vs_random`` = the difference (> 0: the score
      ranks uplift better than chance); ``qini_coefficient``: that difference over the perfect
      ranking's (scikit-uplift's ``qini_auc_score``);
    * ``renewal_rate_plan``, ``renewal_rate_holdout_bau`` and ``n_<arm>`` for every arm.

    The value of the rule "run what was recommended" is also estimated off-policy from the
    randomised holdout alone (``holdout_bau`` and ``holdout_random``): rows whose assigned plan
    is the recommended one, weighted by 1 / ``holdout_propensity`` (μ, the probability of that
    plan *given* the account was held out; the unconditional propensity π would be wrong here,
    since it counts the 1 − ε the holdout rows did not draw). ``ips_value`` is the mean weighted
    outcome over the holdout rows, ``snips_value`` the same normalised by the sum of weights,
    each with a standard error (``ips_se``, ``snips_se``; delta method for SNIPS);
    ``n_ips_matched`` counts the rows that ran their recommendation. It should agree with
    ``renewal_rate_plan``, the on-policy estimate of the same value.

    Args:
        arm, recommended, assigned, holdout_propensity: as logged by :func:`assign_holdout`.
        outcome: 1 = renewed, 0 = not.
        score: predicted lift of the recommended plan, for ranking (higher = act first).
        arr: ARR per account, for the ARR-weighted uplift.
        ks: top shares for uplift@k, each in (0, 1].

    Raises:
        ValueError: mismatched lengths, an unknown arm, an outcome not 0/1, a non-finite
            score, a negative ARR, a k outside (0, 1], fewer than two rows in ``plan`` or
            ``holdout_bau``, or no holdout row that ran its recommendation.
    """
    arm = np.asarray(arm, dtype=object)
    recommended, assigned = np.asarray(recommended), np.asarray(assigned)
    mu, score = np.asarray(holdout_propensity, float), np.asarray(score, float)
    y = np.asarray(outcome, float)
    _check_evaluation_inputs(arm, recommended, assigned, mu, y, score, arr, ks)

    treated, control = arm == "plan", arm == "holdout_bau"
    out: dict[str, float] = {f"n_{name}": int((arm == name).sum()) for name in ARMS}
    for name, rows in (("plan", treated), ("holdout_bau", control)):
        if rows.sum() < 2:
            raise ModelInputError(f"arm {name!r} has {int(rows.sum())} rows; the uplift needs 2")
    out["renewal_rate_plan"] = float(y[treated].mean())
    out["renewal_rate_holdout_bau"] = float(y[control].mean())
    out.update(_mean_difference("uplift", y, treated, control, weight=None))
    if arr is not None:
        weight = np.asarray(arr, float)
        out.update(_mean_difference("uplift_arr_weighted", y, treated, control, weight))

    both = treated | control
    y_both, s_both, t_both = y[both], score[both], treated[both]
    for k in ks:
        out[f"uplift_at_{100 * k:g}pct"] = uplift_at_k(y_both, s_both, t_both, k)
    x, gain = qini_curve(y_both, s_both, t_both)
    x_best, gain_best = qini_curve(y_both, y_both * np.where(t_both, 1.0, -1.0), t_both)
    out["qini_auc"] = float(np.trapezoid(gain, x))
    out["qini_random_auc"] = float(gain[-1] / 2)
    out["qini_vs_random"] = out["qini_auc"] - out["qini_random_auc"]
    best_vs_random = float(np.trapezoid(gain_best, x_best)) - out["qini_random_auc"]
    out["qini_coefficient"] = out["qini_vs_random"] / best_vs_random

    out.update(_inverse_propensity_value(arm, recommended, assigned, mu, y))
    return out


def _inverse_propensity_value(
    arm: np.ndarray, recommended: np.ndarray, assigned: np.ndarray, mu: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    held = (arm == "holdout_bau") | (arm == "holdout_random")
    weight = np.where(assigned[held] == recommended[held], 1.0 / mu[held], 0.0)
    if (weight > 0).sum() == 0 or held.sum() < 2:
        raise ModelInputError(
            f"{int(held.sum())} holdout rows, none of which ran its recommended plan: "
            "the inverse-propensity value needs at least one"
        )
    z = weight * y[held]
    snips = z.sum() / weight.sum()
    return {
        "ips_value": float(z.mean()),
        "ips_se": float(z.std(ddof=1) / np.sqrt(z.size)),
        "snips_value": float(snips),
        "snips_se": float(np.sqrt(np.sum(weight**2 * (y[held] - snips) ** 2)) / weight.sum()),
        "n_ips_matched": int((weight > 0).sum()),
    }


def _mean_difference(
    name: str, y: np.ndarray, treated: np.ndarray, control: np.ndarray, weight: np.ndarray | None
) -> dict[str, float]:
    """Difference of (weighted) means with a Welch / linearised standard error and 95 % CI."""
    means, variances = [], []
    for rows in (treated, control):
        w = np.ones(rows.sum()) if weight is None else weight[rows]
        if w.sum() <= 0:
            raise ModelInputError(f"{name}: the rows of one arm have zero total weight")
        mean = np.sum(w * y[rows]) / w.sum()
        if weight is None:
            variance = y[rows].var(ddof=1) / rows.sum()
        else:
            variance = np.sum(w**2 * (y[rows] - mean) ** 2) / w.sum() ** 2
        means.append(mean)
        variances.append(variance)
    diff, se = means[0] - means[1], np.sqrt(variances[0] + variances[1])
    return {
        name: float(diff),
        f"{name}_se": float(se),
        f"{name}_ci_low": float(diff - _Z95 * se),
        f"{name}_ci_high": float(diff + _Z95 * se),
    }


def _action_probabilities(
    recommended: np.ndarray,
    allowed: np.ndarray,
    eligible: np.ndarray,
    epsilon: float,
    random_share: float,
) -> np.ndarray:
    n, n_plans = allowed.shape
    follow = np.zeros((n, n_plans))
    follow[np.flatnonzero(eligible), recommended[eligible]] = 1.0
    probs = (1 - epsilon) * follow + epsilon * _holdout_probabilities(allowed, random_share)
    bau_only = np.zeros(n_plans)
    bau_only[BAU] = 1.0
    return np.where(eligible[:, None], probs, bau_only)


def _holdout_probabilities(allowed: np.ndarray, random_share: float) -> np.ndarray:
    """μ: BAU with probability 1 − r, else a uniform allowed non-BAU plan (r = 0 if none is)."""
    others = _non_bau(allowed)
    n_others = others.sum(axis=1, keepdims=True)
    share = np.where(n_others > 0, random_share, 0.0)
    mu = share * others / np.maximum(n_others, 1)
    mu[:, BAU] = 1 - share[:, 0]
    return mu


def _non_bau(allowed: np.ndarray) -> np.ndarray:
    return allowed & (np.arange(allowed.shape[1]) != BAU)


def _check_share(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _checked_plans(
    recommended: np.ndarray, allowed: np.ndarray, eligible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    recommended, allowed, eligible = (
        np.asarray(recommended),
        np.asarray(allowed),
        np.asarray(eligible),
    )
    if recommended.dtype.kind not in "iu":
        raise ValueError(f"recommended must hold plan indices (integers), got {recommended.dtype}")
    if allowed.dtype != bool or eligible.dtype != bool:
        raise ValueError(
            f"allowed and eligible must be boolean, got {allowed.dtype} and {eligible.dtype}"
        )
    n = recommended.shape[0] if recommended.ndim == 1 else -1
    if allowed.ndim != 2 or allowed.shape[0] != n or allowed.shape[1] < 1 or eligible.shape != (n,):
        raise ValueError(
            f"shapes must be recommended (n,), allowed (n, P), eligible (n,); got "
            f"{recommended.shape}, {allowed.shape}, {eligible.shape}"
        )
    recommended = recommended.astype("int64")
    out_of_range = eligible & ((recommended < 0) | (recommended >= allowed.shape[1]))
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(
            f"{int(out_of_range.sum())} eligible accounts recommend a plan outside "
            f"0..{allowed.shape[1] - 1}, e.g. row {row}: {recommended[row]}"
        )
    for what, bad in (
        ("BAU (plan 0) is not allowed", eligible & ~allowed[:, BAU]),
        (
            "the recommended plan is not allowed",
            eligible & ~allowed[np.arange(n), np.where(eligible, recommended, BAU)],
        ),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{what} for {int(bad.sum())} eligible accounts, e.g. row {row} "
                f"(recommended {recommended[row]})"
            )
    return recommended, allowed, eligible


def _check_evaluation_inputs(
    arm: np.ndarray,
    recommended: np.ndarray,
    assigned: np.ndarray,
    mu: np.ndarray,
    y: np.ndarray,
    score: np.ndarray,
    arr: np.ndarray | None,
    ks: Sequence[float],
) -> None:
    columns = {"recommended": recommended, "assigned": assigned, "holdout_propensity": mu}
    columns |= {"outcome": y, "score": score}
    if arr is not None:
        columns["arr"] = np.asarray(arr, float)
    lengths = {name: len(values) for name, values in columns.items()}
    if set(lengths.values()) != {arm.size}:
        raise ValueError(f"every column needs {arm.size} rows (one per arm), got {lengths}")
    unknown = sorted({str(value) for value in arm} - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; expected {list(ARMS)}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"outcome must be 0/1 (1 = renewed), got {np.unique(y)[:5]}")
    if not np.isfinite(score).all():
        raise ValueError("score has missing or infinite values")
    if arr is not None and not (np.isfinite(columns["arr"]).all() and (columns["arr"] >= 0).all()):
        raise ValueError("arr must be finite and non-negative")
    held = (arm == "holdout_bau") | (arm == "holdout_random")
    if not ((mu[held] > 0) & (mu[held] <= 1)).all():
        raise ValueError("holdout_propensity must be in (0, 1] on holdout rows")
    bad_ks = [k for k in ks if not 0 < k <= 1]
    if bad_ks:
        raise ValueError(f"every k must be in (0, 1], got {bad_ks}")
