"""The ensemble's contract: scikit-learn API, determinism, exact additivity, calibration."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.errors import ModelInputError
from models.win.calibration import Calibrator, Recalibrated, choose_calibration, forward_folds
from models.win.ensemble import HealthEnsemble, LinearMember, TreeMember

SMALL = {
    "lightgbm": {
        "n_estimators": 40,
        "learning_rate": 0.1,
        "num_leaves": 7,
        "min_child_samples": 10,
    },
    "additive": {"n_estimators": 40, "learning_rate": 0.1, "min_child_samples": 10},
    "linear": {"C": 0.5},
    "cv_folds": 3,
    "min_member_weight": 0.0,  # keep every member, whatever the stack gives it
}


def accounts_frame(rows: int = 900, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Snapshots of 300 accounts: renewal depends on usage (nonlinear), tickets, a segment."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(rows // 3), 3)
    usage = rng.gamma(2.0, 10.0, rows)
    tickets = rng.poisson(2.0, rows).astype(float)
    segment = rng.choice(["smb", "mid_market", "enterprise"], rows, p=[0.6, 0.3, 0.1])
    noise = rng.normal(0, 1, rows)
    z = 1.5 + 0.08 * np.minimum(usage, 30) - 1.2 - 0.4 * tickets + (segment == "enterprise") + noise
    y = pd.Series((z > 0).astype(int), name="renewed")
    usage[rng.random(rows) < 0.1] = np.nan  # accounts with no usage rows
    X = pd.DataFrame(
        {
            "events_30d": usage,
            "tickets_90d": tickets,
            "segment": pd.Categorical(segment),
            "random_noise": rng.normal(0, 1, rows),
        }
    )
    return X, y, groups


@pytest.fixture(scope="module")
def fitted():
    X, y, groups = accounts_frame()
    return HealthEnsemble(**SMALL, seed=7).fit(X, y, groups=groups), X, y


def test_fit_predict_proba_follows_the_sklearn_contract(fitted):
    model, X, y = fitted
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba > 0) & (proba < 1)).all()
    assert set(model.predict(X)) <= {0, 1}
    assert model.oof_proba_.shape == (len(X),)
    assert (model.weights_ >= 0).all() and model.weights_.sum() > 0
    # it learned something: out-of-fold AUC well above chance
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, model.oof_proba_) > 0.75


def test_same_seed_same_model(fitted):
    model, X, y = fitted
    groups = np.repeat(np.arange(len(X) // 3), 3)
    again = HealthEnsemble(**SMALL, seed=7).fit(X, y, groups=groups)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_members_fitted_side_by_side_give_the_model_one_at_a_time_gives(fitted):
    """Two workers of one thread each fit the folds' members: the same model as one worker of
    two threads, and every member keeps the ensemble's threads for scoring."""
    _, X, y = fitted
    groups = np.repeat(np.arange(len(X) // 3), 3)
    one = HealthEnsemble(**SMALL, seed=7, n_jobs=1).fit(X, y, groups=groups)
    two = HealthEnsemble(**SMALL, seed=7, n_jobs=2).fit(X, y, groups=groups)
    np.testing.assert_array_equal(one.oof_member_scores_, two.oof_member_scores_)
    np.testing.assert_array_equal(one.predict_proba(X), two.predict_proba(X))
    trees = [m for m in two.members_ if hasattr(m, "n_jobs")]
    assert trees and all(m.n_jobs == 2 and m.model_.n_jobs == 2 for m in trees)
    two.refit_members(X, y)
    np.testing.assert_array_equal(one.refit_members(X, y).predict_proba(X), two.predict_proba(X))


def test_a_calibrator_fitted_without_its_interval_says_so():
    score = np.linspace(-3, 3, 200)
    y = (np.random.default_rng(0).random(200) < 1 / (1 + np.exp(-score))).astype(int)
    point = Calibrator("sigmoid", with_interval=False).fit(score, y)
    np.testing.assert_array_equal(
        point.predict(score), Calibrator("sigmoid").fit(score, y).predict(score)
    )
    with pytest.raises(ValueError, match="without its interval"):
        point.interval(score)
    # Venn-ABERS as the point needs its fit whatever the flag says
    assert Calibrator("venn_abers", with_interval=False).fit(score, y).predict(score).shape == (
        200,
    )


def test_contributions_add_up_to_the_log_odds_exactly(fitted):
    model, X, _ = fitted
    contributions = model.contributions(X)
    assert list(contributions.columns) == [*X.columns, "_base"]
    np.testing.assert_allclose(
        contributions.sum(axis=1).to_numpy(), model.decision_function(X), atol=1e-6
    )
    # per member too: each member's contributions sum to its own log-odds
    for member, scores in zip(model.members_, model.member_scores(X).T, strict=True):
        np.testing.assert_allclose(member.contributions(X).sum(axis=1), scores, atol=1e-6)


def test_stump_contributions_equal_lightgbm_treeshap(fitted):
    # given the additive member, and rows with missing values and an unseen category
    model, X, _ = fitted
    stumps = model.members_[list(model.member_names_).index("additive")]
    odd = X.copy()
    numeric = [c for c in X.columns if not isinstance(X[c].dtype, pd.CategoricalDtype)]
    odd.loc[odd.index[::3], numeric[0]] = np.nan
    category = next(c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype))
    odd[category] = odd[category].cat.add_categories(["never seen"])
    odd.loc[odd.index[::4], category] = "never seen"
    aligned = model.align(odd)
    # when explained by the closed form, then the values are LightGBM's own TreeSHAP
    native = stumps.model_.predict(aligned, pred_contrib=True)
    np.testing.assert_allclose(stumps.contributions(aligned), native, atol=1e-12)


def test_calibrated_probability_is_monotone_in_the_log_odds(fitted):
    model, X, _ = fitted
    order = np.argsort(model.decision_function(X), kind="stable")
    p = model.predict_proba(X)[:, 1][order]
    assert (np.diff(p) >= -1e-12).all()
    low, high = model.predict_interval(X)
    assert (low <= high + 1e-12).all()


def test_unseen_categories_missing_values_and_column_order_are_handled(fitted):
    model, X, _ = fitted
    odd = X.iloc[:5][list(reversed(X.columns))].assign(
        segment=["reseller", None, "smb", "smb", "enterprise"], events_30d=np.nan
    )
    proba = model.predict_proba(odd)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(
        model.contributions(odd).sum(axis=1).to_numpy(), model.decision_function(odd), atol=1e-6
    )


def test_bad_inputs_are_refused_with_a_message_naming_them():
    X, y, groups = accounts_frame(90)
    # the user's data: ModelInputError, which the CLI turns into exit 3, not a crash (exit 1)
    with pytest.raises(ModelInputError, match=r"one class only .* every labelled snapshot renewed"):
        HealthEnsemble(**SMALL).fit(X, pd.Series(np.ones(len(X))), groups=groups)
    with pytest.raises(ModelInputError, match="missing values"):
        HealthEnsemble(**SMALL).fit(X, y.astype(float).where(y.index > 0), groups=groups)
    with pytest.raises(ModelInputError, match="segment"):
        HealthEnsemble(**SMALL).fit(X.assign(segment=X["segment"].astype(str)), y, groups=groups)
    with pytest.raises(ValueError, match="unknown ensemble member 'forest'"):
        HealthEnsemble(**{**SMALL, "members": ("forest",)}).fit(X, y, groups=groups)


def test_calibration_is_chosen_by_out_of_fold_log_loss():
    rng = np.random.default_rng(3)
    score = rng.normal(0, 2, 3000)
    # the truth is a sigmoid of half the score: the sigmoid fits best, isotonic close
    y = (rng.random(3000) < 1 / (1 + np.exp(-0.5 * score))).astype(int)
    choice, oof = choose_calibration(score, y, np.arange(3000) // 3, folds=3)
    assert set(choice.losses) == {"sigmoid", "beta", "isotonic", "venn_abers"}
    assert choice.losses[choice.method] == min(choice.losses.values())
    assert choice.validation == "out of fold" and choice.rows == 3000
    # the smooth maps beat the step functions on a smooth truth
    assert max(choice.losses["sigmoid"], choice.losses["beta"]) < choice.losses["isotonic"]
    assert oof.shape == (3000,) and np.isfinite(oof).all()
    p = Calibrator("sigmoid").fit(score, y).predict(np.array([0.0, 2.0]))
    np.testing.assert_allclose(p, [0.5, 1 / (1 + np.exp(-1.0))], atol=0.03)


def test_beta_calibration_bends_where_a_sigmoid_cannot():
    # given a score whose truth is asymmetric: ln-odds = 2·ln p − 0.5·ln(1 − p) (a beta map)
    rng = np.random.default_rng(5)
    score = rng.normal(0, 2, 20000)
    p = 1 / (1 + np.exp(-score))
    truth = 1 / (1 + np.exp(-(2 * np.log(p) - 0.5 * np.log(1 - p) + 0.3)))
    y = (rng.random(score.size) < truth).astype(int)
    beta = Calibrator("beta").fit(score, y)
    sigmoid = Calibrator("sigmoid").fit(score, y)
    grid = np.linspace(-4, 4, 81)
    p_grid = 1 / (1 + np.exp(-grid))
    true_grid = 1 / (1 + np.exp(-(2 * np.log(p_grid) - 0.5 * np.log(1 - p_grid) + 0.3)))
    # then beta recovers the curve within 0.02 everywhere, and the sigmoid cannot
    assert np.abs(beta.predict(grid) - true_grid).max() < 0.02
    assert np.abs(sigmoid.predict(grid) - true_grid).max() > 0.05
    # and it is monotone, as a calibrator must be
    assert (np.diff(beta.predict(grid)) >= 0).all()


def test_forward_folds_hold_out_later_dates_and_never_split_a_date():
    dates = np.repeat(pd.date_range("2024-01-01", periods=10, freq="MS").to_numpy(), 30)
    folds = forward_folds(dates, 5)
    assert len(folds) == 4
    for fit, held in folds:
        # every fitted row is earlier than every held-out row: nothing from the future
        assert dates[fit].max() < dates[held].min()
        assert np.isin(dates[held], dates[fit]).sum() == 0
    # each held-out block is two months of 30 rows
    assert [held.size for _, held in folds] == [60, 60, 60, 60]
    # too few dates, or a table without them: no out-of-time folds
    assert forward_folds(dates[:60], 5) is None
    assert forward_folds(np.full(10, np.datetime64("NaT", "D")), 5) is None


def test_calibration_chosen_out_of_time_follows_a_drift():
    # given log-odds whose meaning drifts: the later the date, the lower the renewal rate
    rng = np.random.default_rng(11)
    dates = np.repeat(pd.date_range("2024-01-01", periods=12, freq="MS").to_numpy(), 400)
    score = rng.normal(1.0, 1.5, dates.size)
    month = np.repeat(np.arange(12), 400)
    y = (rng.random(dates.size) < 1 / (1 + np.exp(-(score - 0.08 * month)))).astype(int)
    by_time, _ = choose_calibration(score, y, np.arange(dates.size), folds=4, times=dates)
    by_fold, _ = choose_calibration(score, y, np.arange(dates.size), folds=4)
    # then it is scored on later months, fitted on earlier ones, over 3 blocks of 1,200 rows
    assert by_time.validation == "out of time" and by_time.folds == 3
    assert by_time.rows == 3600
    # and the out-of-time losses are worse than the out-of-fold ones: the drift is seen
    assert min(by_time.losses.values()) > min(by_fold.losses.values())


def test_recalibration_moves_the_point_and_its_interval_together():
    rng = np.random.default_rng(2)
    score = rng.normal(1, 2, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-score))).astype(int)
    base = Calibrator("sigmoid").fit(score, y)
    same = Recalibrated(base, 0.0, 1.0)
    np.testing.assert_allclose(same.predict(score), base.predict(score), atol=1e-9)
    lower = Recalibrated(base, -0.5, 0.8)
    assert lower.method == "sigmoid, recalibrated"
    assert (lower.predict(score) < base.predict(score) + 1e-12).mean() > 0.9
    low, high = lower.interval(score)
    assert (low <= high).all()
    # the interval moves with the point: both are the same monotone map of the base's
    b_low, b_high = base.interval(score)
    np.testing.assert_allclose(low, lower._move(b_low))
    np.testing.assert_allclose(high, lower._move(b_high))


def test_linear_member_with_horizon_products_stays_exact():
    # given snapshots where usage matters more the nearer the renewal
    X, y, _ = accounts_frame()
    rng = np.random.default_rng(1)
    X = X.assign(days_to_renewal=rng.uniform(0, 180, len(X)))
    plain = LinearMember(0.5, 500, 0).fit(X, y.to_numpy())
    member = LinearMember(0.5, 500, 0, interact_with="days_to_renewal").fit(X, y.to_numpy())
    # then each numeric feature but the horizon gets one product column, owned by the feature
    numeric = len(member.numeric_)
    assert member.model_.coef_.shape[1] == plain.model_.coef_.shape[1] + numeric - 1
    # and the contributions still add up to the member's log-odds, feature by feature
    phi = member.contributions(X)
    np.testing.assert_allclose(phi.sum(axis=1), member.decision(X), atol=1e-9)
    assert phi.shape == (len(X), X.shape[1] + 1)
    # a frame without that column (a prebuilt table) simply gets no products
    absent = LinearMember(0.5, 500, 0, interact_with="days_to_renewal").fit(
        X.drop(columns="days_to_renewal"), y.to_numpy()
    )
    assert absent.interact_ is None


def test_linear_contributions_a_feature_at_a_time_equal_the_design_matrix():
    # given a member fitted with missing values (indicators), an empty column, horizon products
    X, y, _ = accounts_frame()
    rng = np.random.default_rng(4)
    X = X.assign(days_to_renewal=rng.uniform(0, 180, len(X)), empty=np.nan)
    member = LinearMember(0.5, 500, 0, interact_with="days_to_renewal").fit(X, y.to_numpy())
    # and rows to explain with an unseen category, a blank one, and values the fit never saw
    rows = X.copy()
    rows["segment"] = pd.Categorical(["public_sector", None, *rows["segment"][2:]])
    rows.loc[:5, "days_to_renewal"] = np.nan
    rows.loc[6:9, "empty"] = 3.0
    before = rows.copy()
    # when explained a feature at a time
    phi = member.contributions(rows)
    # then the values are the design matrix's, and the log-odds the regression's own
    np.testing.assert_allclose(phi, member._design_contributions(rows), rtol=0, atol=1e-12)
    design = (member._design(rows) - member.mean_) / member.scale_
    np.testing.assert_allclose(
        member.decision(rows), member.model_.decision_function(design), rtol=0, atol=1e-12
    )
    # and the caller's frame is untouched (the values are imputed in a copy)
    pd.testing.assert_frame_equal(rows, before)
    floats = rows[["events_30d", "tickets_90d", "random_noise", "days_to_renewal", "empty"]]
    kept = floats.copy()
    only = LinearMember(0.5, 500, 0).fit(floats.fillna(1.0).iloc[:, :3], y.to_numpy())
    only.contributions(floats.iloc[:, :3])
    pd.testing.assert_frame_equal(floats, kept)


def test_a_label_no_member_can_predict_gives_the_base_rate_not_a_crash():
    # given one member and a label drawn independently of every feature
    X, _, groups = accounts_frame(600, seed=3)
    # (this draw leaves the member a stacking weight of 0 out of fold: it once dropped them all)
    y = pd.Series((np.random.default_rng(5).random(600) < 0.3).astype(int))
    model = HealthEnsemble(**{**SMALL, "members": ("additive",), "min_member_weight": 0.01})
    model.fit(X, y, groups=groups)
    # then the member is kept (at whatever weight) and the probability stays near the base rate
    assert model.member_names_ == ("additive",)
    p = model.predict_proba(X)[:, 1]
    assert abs(p.mean() - y.mean()) < 0.05 and p.std() < 0.1


@pytest.mark.parametrize("stopping", [0, 10], ids=["all trees", "early stopping"])
def test_trees_grown_on_a_binned_dataset_are_the_trees_fit_grows(stopping):
    # given a member's settings and its rows binned beforehand, as tuning bins each fold once
    X, y, _ = accounts_frame()
    y = y.to_numpy()
    fit, held = slice(0, 600), slice(600, None)
    params = {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 7,
              "min_child_samples": 20, "subsample": 0.8, "colsample_bytree": 0.7}  # fmt: skip
    member = TreeMember(params, seed=5)
    settings = {k: v for k, v in member.settings().items() if k != "n_estimators"}
    fit_set = lgb.Dataset(X[fit], y[fit], params=settings).construct()
    held_set = None
    if stopping:
        held_set = lgb.Dataset(X[held], y[held], params=settings, reference=fit_set)
    # when grown on the dataset and fitted on the frame
    booster = member.boost(fit_set, held_set, stopping)
    stop_on = (X[held], y[held]) if stopping else None
    fitted = TreeMember(params, seed=5).fit(X[fit], y[fit], stop_on, stopping)
    # then the trees are the same: the same count kept and the same log-odds to the last bit
    assert booster.best_iteration == (fitted.model_.best_iteration_ or 0)
    if stopping:
        assert 0 < booster.best_iteration < 150
    np.testing.assert_array_equal(
        booster.predict(X[held], raw_score=True), fitted.decision(X[held])
    )


def test_align_keeps_training_codes_and_recodes_anything_else(fitted):
    # given frames whose category column is coded as in training, in another order, or with a
    # category training never saw
    model, X, _ = fitted
    column = next(c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype))
    cats = model.categories_[column]
    reordered = X.assign(**{column: X[column].cat.reorder_categories(cats[::-1])})
    unseen = X.assign(**{column: X[column].cat.add_categories(["never seen"])})
    unseen.loc[unseen.index[::5], column] = "never seen"
    as_text = X.assign(**{column: X[column].astype(object)})
    # when aligned, then each reads as training read it: same codes, unseen ones missing
    expected = pd.Categorical(X[column].astype(object), categories=cats).codes
    for frame in (X, reordered, as_text):
        aligned = model.align(frame)[column]
        assert list(aligned.cat.categories) == cats
        np.testing.assert_array_equal(aligned.cat.codes.to_numpy(), expected)
    codes = model.align(unseen)[column].cat.codes.to_numpy()
    assert (codes[::5] == -1).all()
    np.testing.assert_array_equal(np.delete(codes, np.s_[::5]), np.delete(expected, np.s_[::5]))
    # and the log-odds are the same whichever coding came in
    np.testing.assert_array_equal(model.decision_function(reordered), model.decision_function(X))
