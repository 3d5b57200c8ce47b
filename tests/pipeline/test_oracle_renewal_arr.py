"""The oracle's renewal ARR: outcome probabilities and expected ratio against the world's code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from features.spine import outcome_class
from pipeline import synthetic
from pipeline.config import load_params
from pipeline.synthetic.oracle import (
    SNAPSHOTS,
    RenewalMoments,
    renewal_outcome_from_state,
    renewal_outcome_moments,
)
from pipeline.synthetic.simulation import _Luck, _renewal_multiplier
from pipeline.synthetic.world import (
    BETA,
    BUDGET_DECAY,
    BUDGET_HAZARD,
    BUDGET_SHOCK,
    CHAMPION_HAZARD,
    CHAMPION_SHOCK,
    DISCOUNT_SHARE,
    GAMMA_ADOPTION,
    RHO,
    SIGMA,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRAWS = 200_000
ARR = 100_000.0
FIELDS = ("p_renew", "p_expand", "p_contract", "expected_ratio")


def simulate_renewals(
    rng: np.random.Generator,
    health: np.ndarray,
    base: float,
    adoption: float,
    budget: np.ndarray,
    term: int,
    discounted: bool,
) -> dict[str, np.ndarray]:
    """One renewal per draw as ``World._renewals`` makes it: outcome indicators and the ratio."""
    n = health.size
    luck = _Luck.draw(rng, n)
    renewed = base + BETA * health + GAMMA_ADOPTION * adoption + luck.renewal > 0
    mult = _renewal_multiplier(
        health, np.full(n, adoption), budget, np.full(n, discounted), renewed,
        np.full(n, term), luck, np.arange(n),
    )  # fmt: skip
    arr = np.full(n, ARR)
    outcome = outcome_class(renewed.astype(float), arr, np.round(arr * mult, -1))
    return {
        "p_renew": renewed.astype(float),
        "p_expand": (outcome == "expansion").astype(float),
        "p_contract": (outcome == "contraction").astype(float),
        "expected_ratio": mult,
    }


def assert_matches(quadrature: RenewalMoments, draws: dict[str, np.ndarray]) -> None:
    """Each quadrature figure lies within 4 Monte-Carlo standard errors of the draws' mean."""
    for name in FIELDS:
        expected = np.asarray(getattr(quadrature, name)).item()
        sample = draws[name]
        se = sample.std() / np.sqrt(sample.size)
        assert abs(sample.mean() - expected) <= 4 * se + 1e-6, (
            f"{name}: quadrature {expected:.5f}, Monte Carlo {sample.mean():.5f} ± {se:.5f}"
        )


# base (segment + term offset), adoption, health mean and variance at the end, budget, term,
# discounted
STATES = {
    "healthy annual": (1.0, 0.5, 0.8, 0.20, 0.0, 12, False),
    "at-risk monthly, stressed, discounted": (1.55, -0.5, -0.8, 0.15, 0.6, 1, True),
    "budget cut, discounted annual": (1.0, 0.0, 0.0, 0.30, 1.0, 12, True),
    "thriving two-year": (1.1, 1.0, 1.5, 0.10, 0.0, 24, False),
    "quarterly": (1.35, 0.2, 0.3, 0.25, 0.2, 3, False),
}


@pytest.mark.parametrize("state", STATES.values(), ids=STATES.keys())
def test_outcome_moments_match_the_simulations_renewals(state):
    # given a health at the end drawn from N(mean, var) and the world's own renewal code
    base, adoption, mean, var, budget, term, discounted = state
    rng = np.random.default_rng(7)
    health = rng.normal(mean, np.sqrt(var), DRAWS)
    draws = simulate_renewals(rng, health, base, adoption, np.full(DRAWS, budget), term, discounted)
    # when the oracle integrates the same by quadrature, then the two agree
    assert_matches(
        renewal_outcome_moments(base, adoption, mean, var, budget, term, discounted), draws
    )


# base, adoption, health now, mu, months to the end month, pending effect, champion in place,
# budget stress now, term, discounted
FROM_STATE = {
    "recent budget cut, six months out": (1.0, 0.0, -0.2, 0.1, 6, 0.0, True, 0.9, 12, False),
    "play pending, no champion, discounted": (1.2, 0.5, 0.6, 0.4, 3, 0.15, False, 0.0, 24, True),
    "monthly, next month": (1.55, -0.3, -0.5, -0.2, 1, 0.0, True, 0.3, 1, False),
}


@pytest.mark.parametrize("state", FROM_STATE.values(), ids=FROM_STATE.keys())
def test_outcome_from_state_matches_stepping_the_dynamics(state):
    # given one account's hidden state, stepped forward as World.step does (no new play)
    base, adoption, h0, mu, steps, pending, champion, b0, term, discounted = state
    rng = np.random.default_rng(11)
    health, budget = np.full(DRAWS, h0), np.full(DRAWS, b0)
    has_champion = np.full(DRAWS, champion)
    for month in range(1, steps + 1):
        cut = rng.random(DRAWS) < BUDGET_HAZARD
        left = has_champion & (rng.random(DRAWS) < CHAMPION_HAZARD)
        health = (
            mu + RHO * (health - mu) + rng.normal(0, SIGMA, DRAWS)
            - CHAMPION_SHOCK * left - BUDGET_SHOCK * cut + (pending if month == 1 else 0.0)
        )  # fmt: skip
        budget = BUDGET_DECAY * budget + cut
        has_champion &= ~left
    draws = simulate_renewals(rng, health, base, adoption, budget, term, discounted)
    # when the oracle computes the outcome from that state, then the two agree
    moments = renewal_outcome_from_state(
        *(np.array([v]) for v in (base, adoption, h0, mu, steps, pending, champion, b0, term)),
        np.array([discounted]),
    )
    assert_matches(moments, draws)


def test_a_certain_expansion_has_hand_computed_moments():
    # given a renewal that is certain and a resize, when it happens, that is certainly upward
    r = 0.5  # a 6-month term is resized half the time
    lift = np.exp(0.22 + 0.12**2 / 2)
    plain = renewal_outcome_moments(40.0, 0.0, 20.0, 1e-6, 0.0, 6, False)
    discounted = renewal_outcome_moments(40.0, 0.0, 20.0, 1e-6, 0.0, 6, True)
    # then flat draws (at most +2.5 %) stay flat, and a discount makes every one a contraction
    assert float(plain.p_renew) == pytest.approx(1.0)
    assert float(plain.p_expand) == pytest.approx(r * norm.sf(np.log(1.03), 0.22, 0.12))
    assert float(plain.p_contract) == pytest.approx(r * norm.cdf(np.log(0.97), 0.22, 0.12))
    assert float(plain.expected_ratio) == pytest.approx(r * lift + (1 - r) * 1.0125)
    keep = 1 - DISCOUNT_SHARE
    assert float(discounted.p_expand) == pytest.approx(r * norm.sf(np.log(1.03 / keep), 0.22, 0.12))
    assert float(discounted.p_contract) == pytest.approx(
        r * norm.cdf(np.log(0.97 / keep), 0.22, 0.12) + (1 - r)
    )
    assert float(discounted.expected_ratio) == pytest.approx(keep * float(plain.expected_ratio))


@pytest.fixture(scope="module")
def quiet_world(tmp_path_factory) -> pd.DataFrame:
    """The oracle's snapshots of a small world whose CSMs play nothing.

    With no plays the oracle's premise (no new play after as_of) holds, so its figures can be
    compared with the realised outcomes.
    """
    tmp = tmp_path_factory.mktemp("quiet")
    params = load_params(
        ROOT / "params.yaml",
        [
            "synthetic.accounts=400",
            "synthetic.history_months=24",
            "synthetic.prehistory_months=12",
            "synthetic.csm_capacity_per_month=0",
            f"data.raw_dir={tmp}/raw",
            f"data.oracle_dir={tmp}/oracle",
        ],
    )
    synthetic.write_world(
        params.synthetic, params.features, params.data.raw_dir, params.data.oracle_dir
    )
    return pd.read_parquet(params.data.oracle_dir / SNAPSHOTS)


def test_the_snapshots_carry_renewal_arr_columns_nested_in_p_renew(quiet_world):
    s = quiet_world
    assert {"p_expand", "p_contract", "expected_renewal_ratio", "expected_renewal_arr"} <= set(s)
    assert (s["p_expand"] >= 0).all() and (s["p_contract"] >= 0).all()
    assert (s["p_expand"] + s["p_contract"] <= s["p_renew"] + 1e-12).all()
    assert (s["p_renew"] <= 1).all()
    assert (s["expected_renewal_ratio"] >= 0).all()
    assert np.allclose(s["expected_renewal_arr"], s["arr"] * s["expected_renewal_ratio"])


def test_the_oracle_is_calibrated_on_realised_outcomes(quiet_world):
    # given the snapshots whose outcome is known (several per contract, several contracts per
    # account): the interval is cluster-robust by account, like a bootstrap over accounts
    known = quiet_world[quiet_world["renewal_arr"].notna()]
    assert known["contract_id"].nunique() > 500
    realised = {
        "p_renew": known["renewed"].astype(float),
        "p_expand": (known["outcome"] == "expansion").astype(float),
        "p_contract": (known["outcome"] == "contraction").astype(float),
        "expected_renewal_ratio": known["renewal_arr"] / known["arr"],
    }
    for column, outcome in realised.items():
        residual = outcome - known[column]
        se = np.sqrt((residual.groupby(known["account_id"]).sum() ** 2).sum()) / len(known)
        assert abs(residual.mean()) <= 1.96 * se, (
            f"{column}: oracle {known[column].mean():.4f}, realised {outcome.mean():.4f}, "
            f"95 % half-width {1.96 * se:.4f}"
        )
