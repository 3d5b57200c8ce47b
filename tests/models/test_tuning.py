"""Optuna tuning: the tree count found by early stopping, studies that resume, a search bounded by
its trial count (time only a safety cap)."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import optuna
import pytest
from scipy.special import expit
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold

from models.config import TrainConfig
from models.win.ensemble import TreeMember
from models.win.tuning import tune
from tests.models.test_ensemble import accounts_frame


def config(**tuning: object) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "seed": 3,
            "n_jobs": 1,
            "lightgbm": {"learning_rate": 0.15, "num_leaves": 7, "min_child_samples": 10},
            "tuning": {"trials": 3, "timeout_s": 60, "folds": 2, **tuning},
        }
    )


def test_early_stopping_sets_the_tree_count_of_the_best_trial():
    # given a small, easy problem, where a high learning rate needs few trees
    X, y, groups = accounts_frame()
    storage = optuna.storages.InMemoryStorage()
    cfg = config(early_stopping_rounds=10, max_trees=400)
    # when tuned
    tuned = tune(X, y.to_numpy(), groups, cfg, storage, "t")
    # then the tree count is the best trial's mean early-stopped count, well under the cap
    study = optuna.load_study(study_name="t-lightgbm", storage=storage)
    assert "n_estimators" not in study.best_trial.params  # not searched
    assert tuned.lightgbm["n_estimators"] == study.best_trial.user_attrs["n_estimators"]
    assert 1 <= tuned.lightgbm["n_estimators"] < 400
    # and a second call resumes the stored study instead of searching again
    again = tune(X, y.to_numpy(), groups, cfg, storage, "t")
    assert again.lightgbm == tuned.lightgbm
    assert len(optuna.load_study(study_name="t-lightgbm", storage=storage).trials) == 3


def test_without_early_stopping_the_tree_count_is_searched():
    X, y, groups = accounts_frame()
    storage = optuna.storages.InMemoryStorage()
    tuned = tune(X, y.to_numpy(), groups, config(early_stopping_rounds=0), storage, "s")
    study = optuna.load_study(study_name="s-lightgbm", storage=storage)
    assert tuned.lightgbm["n_estimators"] == study.best_trial.params["n_estimators"]
    assert "n_estimators" not in study.best_trial.user_attrs


class BusyClock:
    """A machine so busy that each look at the clock finds ``step`` more seconds gone."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def threaded(**tuning: object) -> TrainConfig:
    """The small config with two LightGBM threads, so thread scheduling could show."""
    return config(**tuning).model_copy(update={"n_jobs": 2})


def test_the_trial_count_bounds_the_search_on_an_idle_or_a_busy_machine():
    # given the same data, params and seed, on an idle machine and on one so busy that every
    # trial seems to take a minute (a 90 s time budget would have stopped after one or two)
    X, y, groups = accounts_frame()
    cfg = threaded(trials=4, timeout_s=1800)
    idle_storage = optuna.storages.InMemoryStorage()
    busy_storage = optuna.storages.InMemoryStorage()
    # when tuned on each
    idle = tune(X, y.to_numpy(), groups, cfg, idle_storage, "idle")
    busy = tune(X, y.to_numpy(), groups, cfg, busy_storage, "busy", clock=BusyClock(60.0))
    # then both ran every trial, drew the same ones and chose the same parameters
    assert idle.trials == busy.trials == {"lightgbm": 4, "linear": 1}
    assert idle.capped == busy.capped == ()
    drawn = [
        [t.params for t in optuna.load_study(study_name=f"{run}-lightgbm", storage=s).trials]
        for run, s in (("idle", idle_storage), ("busy", busy_storage))
    ]
    assert drawn[0] == drawn[1]
    assert (idle.lightgbm, idle.linear, idle.best_loss) == (busy.lightgbm, busy.linear,
                                                            busy.best_loss)  # fmt: skip
    # and the tuned tree member predicts the same, to the bit
    predictions = [
        TreeMember(t.lightgbm, cfg.seed, n_jobs=cfg.n_jobs).fit(X, y).decision(X)
        for t in (idle, busy)
    ]
    np.testing.assert_array_equal(predictions[0], predictions[1])


def test_the_safety_cap_stops_the_search_and_says_so(caplog):
    # given a cap of 25 minutes on a machine where each trial seems to take over 16
    X, y, groups = accounts_frame()
    cfg = config(trials=4, timeout_s=1500)
    # when tuned
    with caplog.at_level(logging.WARNING, logger="healthscore"):
        tuned = tune(X, y.to_numpy(), groups, cfg, optuna.storages.InMemoryStorage(), "c",
                     clock=BusyClock(1000.0))  # fmt: skip
    # then the tree search stopped after 2 of its 4 trials, and the run says so
    assert tuned.trials["lightgbm"] == 2
    assert tuned.capped == ("lightgbm",)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "train.tuning.timeout_s = 1500 s" in warning[0]
    assert "after 2 of 4 trials" in warning[0]


def test_a_search_cut_short_resumes_to_the_trials_of_an_uninterrupted_one():
    # given a search the safety cap stopped after 2 of 4 trials, and one that ran through
    X, y, groups = accounts_frame()
    cfg = config(trials=4, timeout_s=1500)
    cut, whole = optuna.storages.InMemoryStorage(), optuna.storages.InMemoryStorage()
    first = tune(X, y.to_numpy(), groups, cfg, cut, "s", clock=BusyClock(1000.0))
    assert first.trials["lightgbm"] == 2
    # when the cut one is resumed on an idle machine
    resumed = tune(X, y.to_numpy(), groups, cfg, cut, "s")
    through = tune(X, y.to_numpy(), groups, cfg, whole, "s")
    # then it ran the same four trials as the uninterrupted search, and chose the same
    trials = [[t.params for t in optuna.load_study(study_name="s-lightgbm", storage=s).trials]
              for s in (cut, whole)]  # fmt: skip
    assert len(trials[0]) == 4 and trials[0] == trials[1]
    assert resumed.lightgbm == through.lightgbm and resumed.capped == ()


def test_the_two_searches_side_by_side_find_what_they_find_one_after_the_other():
    # given the same data, params and seed, searched with one thread and with two (the linear
    # member's study then runs beside the trees' on a thread of its own)
    X, y, groups = accounts_frame()
    runs = {}
    for n_jobs in (1, 2):
        cfg = config(trials=4, early_stopping_rounds=10, max_trees=200).model_copy(
            update={"n_jobs": n_jobs}
        )
        storage = optuna.storages.InMemoryStorage()
        tuned = tune(X, y.to_numpy(), groups, cfg, storage, "p")
        drawn = {
            name: [t.params for t in optuna.load_study(study_name=f"p-{name}",
                                                       storage=storage).trials]
            for name in ("lightgbm", "linear")
        }  # fmt: skip
        runs[n_jobs] = (tuned.lightgbm, tuned.linear, tuned.best_loss, tuned.trials, drawn)
    # then both drew the same trials and chose the same parameters
    assert runs[1] == runs[2]


def test_a_trial_scores_the_trees_a_fit_with_its_settings_grows(monkeypatch):
    # given the small table with a feature too sparse for some of the settings tried (non-zero
    # in one row of 20, about 22 a fold: LightGBM's pre-filter would drop it from a fit whose
    # min_child_samples is larger, not from the first trial's, 10)
    X, y, groups = accounts_frame()
    X = X.assign(rare=np.where(np.arange(len(X)) % 20 == 0, 1.0, 0.0))
    y = y.to_numpy()
    binned = []
    bin_rows = lgb.Dataset._lazy_init

    def counted(self: lgb.Dataset, *args: object, **kwargs: object) -> object:
        binned.append(self.reference is None)
        return bin_rows(self, *args, **kwargs)

    monkeypatch.setattr(lgb.Dataset, "_lazy_init", counted)
    cfg = config(trials=4, early_stopping_rounds=10, max_trees=200)
    storage = optuna.storages.InMemoryStorage()
    # when tuned
    tune(X, y, groups, cfg, storage, "d")
    monkeypatch.undo()
    # then the rows of each fold were binned once for all the trials (training and held-out rows)
    assert sorted(binned) == [False, False, True, True]
    # and every trial's loss is the one fresh fits of the member with its settings give
    study = optuna.load_study(study_name="d-lightgbm", storage=storage)
    splits = list(StratifiedGroupKFold(2, shuffle=True, random_state=cfg.seed).split(X, y, groups))
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) >= 3
    for trial in finished:
        losses = []
        for a, b in splits:
            member = TreeMember({**trial.params, "n_estimators": 200}, cfg.seed)
            member.fit(X.iloc[a], y[a], (X.iloc[b], y[b]), 10)
            p = np.clip(expit(member.decision(X.iloc[b])), 1e-6, 1 - 1e-6)
            losses.append(log_loss(y[b], p, labels=[0, 1]))
        assert trial.value == pytest.approx(np.mean(losses), abs=1e-12)
