"""A stack that is safe on small data: never worse out of sample than its best member beyond
noise, the stack kept where it helps, contributions exact in every mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from models.config import TrainConfig
from models.win.ensemble import HealthEnsemble, _stack, choose_stacking, make_ensemble

SETTINGS = {
    "lightgbm": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 20,
    },
    "additive": {"n_estimators": 100, "learning_rate": 0.1, "min_child_samples": 20},
    "linear": {"C": 0.5},
    "cv_folds": 4,
}


def many_weak_signals(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Renewal linear in 20 weak signals beside 10 noise columns, ~8 % churn: the linear member
    is much better than the trees, and 1,500 rows hold ≈ 120 churns."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 30))
    z = 3.3 + 0.5 * X[:, :20] @ np.linspace(1.0, 0.5, 20)
    renewed = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame(X, columns=[f"signal_{i}" for i in range(30)]), renewed


def steps_and_sums(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Renewal as two steps (trees see them) plus a sum of ten signals (the linear member sees
    it), ~35 % churn: members that complement each other, with plenty of both classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 12))
    z = 1.0 + 2.0 * (X[:, 0] > 0.5) - 2.0 * (X[:, 1] < -0.5) + 0.35 * X[:, 2:].sum(axis=1)
    renewed = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(12)]), renewed


def log_loss_rows(renewed: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(renewed * np.log(p) + (1 - renewed) * np.log(1 - p))


def paired_interval(gain_per_row: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of a mean gain per row (held-out rows resampled)."""
    rng = np.random.default_rng(seed)
    n = gain_per_row.size
    means = [gain_per_row[rng.integers(0, n, n)].mean() for _ in range(1000)]
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


@pytest.fixture(scope="module")
def small_fits():
    X, renewed = many_weak_signals(1500, seed=1)
    held_X, held = many_weak_signals(20_000, seed=12345)
    fits = {
        "ensemble": HealthEnsemble(**SETTINGS, seed=1).fit(X, renewed),
        "old stack": HealthEnsemble(**SETTINGS, stacking="stack", seed=1).fit(X, renewed),
    }
    for name in ("lightgbm", "linear", "additive"):
        fits[name] = HealthEnsemble(**SETTINGS, members=(name,), seed=1).fit(X, renewed)
    losses = {n: log_loss_rows(held, m.predict_proba(held_X)[:, 1]) for n, m in fits.items()}
    return fits, losses, X, renewed


def test_on_100_churns_the_ensemble_is_within_noise_of_its_best_member_out_of_sample(small_fits):
    # given ≈ 120 churns, the linear member far better than the trees, and a stack that
    # overfits: it gives the stumps weight and loses to the linear member out of sample
    fits, losses, _, renewed = small_fits
    assert 80 <= (1 - renewed).sum() <= 160
    members = {n: losses[n].mean() for n in ("lightgbm", "linear", "additive")}
    best = min(members, key=members.get)
    assert best == "linear" and members["lightgbm"] - members["linear"] > 0.02, members
    assert losses["old stack"].mean() > losses["linear"].mean(), "the premise: the stack overfits"
    # when the ensemble chooses its weights itself (no setting)
    model = fits["ensemble"]
    assert model.stack_mode_ in ("blend", "single"), model.stack_reason_
    assert model.stack_choice_.member == "linear"
    assert "rarer class" in model.stack_reason_
    # then out of sample it is no worse than its best member beyond noise …
    low, high = paired_interval(losses[best] - losses["ensemble"])
    assert high >= 0, f"ensemble worse than {best} beyond noise: gain {low:+.4f} to {high:+.4f}"
    # … and no worse than the old stack
    assert losses["ensemble"].mean() <= losses["old stack"].mean()


def test_with_plenty_of_both_classes_and_complementary_members_the_stack_stays():
    # given 1,000+ churns and members that each see part of the signal
    X, renewed = steps_and_sums(3000, seed=0)
    groups = np.arange(len(X)) // 2
    # when the ensemble chooses, and when it is told to stack
    auto = HealthEnsemble(**SETTINGS, seed=0).fit(X, renewed, groups=groups)
    stack = HealthEnsemble(**SETTINGS, stacking="stack", seed=0).fit(X, renewed, groups=groups)
    # then it keeps the stack, with exactly the weights the stack has always had
    assert auto.stack_mode_ == "stack", auto.stack_reason_
    assert auto.stack_choice_.low > 0 and auto.stack_choice_.shrinkage == 0.0
    np.testing.assert_array_equal(auto.weights_, stack.weights_)
    assert auto.intercept_ == stack.intercept_
    np.testing.assert_array_equal(auto.predict_proba(X), stack.predict_proba(X))


def test_contributions_add_up_to_the_log_odds_in_every_mode(small_fits):
    fits, _, X, _ = small_fits
    rows = X.iloc[:200].assign(signal_0=lambda f: f["signal_0"].where(f.index % 7 > 0))
    for name, model in fits.items():
        contributions = model.contributions(rows)
        np.testing.assert_allclose(
            contributions.sum(axis=1).to_numpy(), model.decision_function(rows), atol=1e-6,
            err_msg=f"{name} ({model.stack_mode_})",
        )  # fmt: skip
        assert len(model.weights_) == len(model.member_names_) == len(model.members_)


def test_a_blend_keeps_every_member_it_weighs_and_drops_the_rest(small_fits):
    fits, _, _, _ = small_fits
    model = fits["ensemble"]
    assert (model.weights_ > 0).all()
    assert set(model.member_names_) | set(model.dropped_members_) == {
        "lightgbm",
        "linear",
        "additive",
    }
    single = fits["linear"]
    assert single.stack_mode_ == "single" and single.member_names_ == ("linear",)
    assert "the only member" in single.stack_reason_


def test_the_stack_setting_stacks_and_says_what_auto_would_have_done(small_fits):
    fits, _, _, renewed = small_fits
    old = fits["old stack"]
    assert old.stack_mode_ == "stack"
    assert "stacking is 'stack'" in old.stack_reason_
    # its weights are the non-negative meta-learner's on the kept members' out-of-fold log-odds
    kept = [list(old.members).index(n) for n in old.member_names_]
    intercept, weights = _stack(old.oof_member_scores_[:, kept], renewed)
    np.testing.assert_allclose(old.weights_, weights)
    assert old.intercept_ == pytest.approx(intercept)


def test_same_seed_same_choice(small_fits):
    fits, _, X, renewed = small_fits
    again = HealthEnsemble(**SETTINGS, seed=1).fit(X, renewed)
    first = fits["ensemble"]
    assert again.stack_choice_ == first.stack_choice_
    np.testing.assert_array_equal(again.weights_, first.weights_)


def choice_on(scores: np.ndarray, renewed: np.ndarray, stacked: list[bool]):
    groups = np.arange(len(renewed))
    folds = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=0)
    splits = list(folds.split(scores, renewed, groups))
    names = tuple(f"m{k}" for k in range(scores.shape[1]))
    return choose_stacking(scores, renewed, groups, splits, np.array(stacked), names, seed=0)


def test_choose_stacking_stack_single_and_blend_on_hand_made_scores():
    rng = np.random.default_rng(5)
    rows = 4000
    half_a, half_b = rng.normal(size=rows), rng.normal(size=rows)
    renewed = (rng.random(rows) < 1 / (1 + np.exp(-(0.5 + half_a + half_b)))).astype(int)
    # two members that each see half of the signal: stacked, they beat either beyond noise
    both = choice_on(np.column_stack([half_a, half_b]), renewed, [True, True])
    assert both.mode == "stack" and both.low > 0 and both.shrinkage == 0.0
    # a stack of two weak members (the strong one left out of it): worse beyond noise
    strong = half_a + half_b
    weak = np.column_stack([strong, half_a + rng.normal(0, 2, rows), rng.normal(size=rows)])
    worse = choice_on(weak, renewed, [False, True, True])
    assert worse.mode == "single" and worse.member == "m0" and worse.high < 0
    assert worse.shrinkage == 1.0
    # a member and a noisy copy of it: the stack gains nothing beyond noise, so it is shrunk
    # toward the member by the share of resamples where it is no better
    copy = np.column_stack([strong, strong + rng.normal(0, 3, rows)])
    noise = choice_on(copy, renewed, [True, True])
    assert noise.mode == "blend" and noise.member == "m0"
    assert noise.low <= 0 <= noise.high and 0 < noise.shrinkage < 1


def test_make_ensemble_passes_the_setting_and_a_bad_value_is_refused():
    assert make_ensemble(TrainConfig()).stacking == "auto"
    assert make_ensemble(TrainConfig(stacking="stack")).stacking == "stack"
    X, renewed = many_weak_signals(200, seed=0)
    with pytest.raises(ValueError, match="unknown stacking 'sometimes'"):
        HealthEnsemble(**SETTINGS, stacking="sometimes").fit(X, renewed)
