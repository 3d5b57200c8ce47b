"""Optuna tuning: the tree count found by early stopping, studies that resume."""

from __future__ import annotations

import optuna

from models.config import TrainConfig
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
