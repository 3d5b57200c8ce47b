"""evaluate-plays' pieces that need no world: the exact-averages policy's effects."""

import numpy as np

from pipeline.lab.evaluate_plays import exact_averages, share_interval


def test_exact_averages_keep_the_true_means_and_rank_by_the_slope():
    # given three accounts' model probabilities and their true effects of two kinds
    p = np.array([0.5, 0.9, 0.99])
    true = np.array([[0.02, -0.01], [0.04, 0.00], [0.00, -0.02]])
    # when the true averages are spread by the shipped per-account rule
    spread = exact_averages(p, true)
    # then each kind keeps its true mean, and accounts weigh by p(1 - p): 0.25, 0.09, 0.0099
    np.testing.assert_allclose(spread.mean(axis=0), [0.02, -0.01])
    slope = np.array([0.25, 0.09, 0.0099])
    np.testing.assert_allclose(spread[:, 0], 0.02 * slope / slope.mean())
    np.testing.assert_allclose(spread[:, 1] / spread[:, 0], [-0.5] * 3)


def test_a_value_share_carries_a_bootstrap_interval_over_accounts():
    rng = np.random.default_rng(3)
    oracle = rng.gamma(2.0, 1000.0, 2000)
    policy = oracle * 0.6 + rng.normal(0, 300, 2000)  # 0.6 of the oracle, noisily per account
    low, high = share_interval(policy, oracle, replicates=100, seed=1)
    share = policy.sum() / oracle.sum()
    assert low < share < high and high - low < 0.05
    assert low > 0.55 and high < 0.65
    # a share whose denominator is always zero has no interval
    assert np.isnan(share_interval(policy, np.zeros(2000), replicates=10)[0])
