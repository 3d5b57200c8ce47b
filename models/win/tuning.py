"""Hyperparameter search with Optuna: TPE seeded from params, median pruning per fold, a budget in
trials (time only as a safety cap), an objective closed over frames built once, the tree count
found by early stopping on each held-out fold. Studies live in the storage the caller passes
(``pipeline`` keeps them in a SQLite file), so an interrupted search resumes.

Reproducible: the trials of a study run one after another (no parallel trials; the linear
member's study runs beside the trees' on a thread of its own), LightGBM is deterministic at
any thread count, and each trial's sampler is seeded by the params' seed and the trial's
number, so the same data, params and seed give the same trials, on a busy machine or a fast
one, searched in one go or resumed after an interruption.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from models.config import TrainConfig
from models.win.ensemble import LinearMember, TreeMember

optuna.logging.set_verbosity(optuna.logging.WARNING)


log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class Tuned:
    """The tuned member parameters, with trials run, best log loss per study and seconds taken;
    ``capped`` names the studies the safety cap (``timeout_s``) stopped short of their trials."""

    lightgbm: dict[str, Any]
    linear: dict[str, Any]
    trials: dict[str, int]
    best_loss: dict[str, float]
    seconds: float
    capped: tuple[str, ...] = ()


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: TrainConfig,
    storage: optuna.storages.BaseStorage | str | None,
    study_prefix: str,
    clock: Callable[[], float] = time.monotonic,
) -> Tuned:
    """Tune the tree member (``cfg.tuning.trials`` trials) and the linear member's ``C`` (a
    fifth as many).

    The params.yaml values are the first trial of each study, so tuning never returns a
    configuration worse than the defaults on the tuning folds. The trial count bounds the
    search; once ``cfg.tuning.timeout_s`` seconds have passed no further trial starts (each
    study keeps at least one), and the study is named in ``Tuned.capped`` and logged at WARNING.

    Args:
        X, y, groups: the training rows, their labels (1 = renewed) and account ids (folds
            keep an account's rows together).
        cfg: the ``train`` section (seed, members' defaults, ``tuning`` budget).
        storage: where the studies live; a study already there is resumed, not restarted.
        study_prefix: the studies' names start with it (one study per member).
        clock: seconds, for the safety cap and ``Tuned.seconds``.

    Returns:
        The best parameters of each member and how the search went.
    """
    started = clock()
    y = np.asarray(y, dtype=int)
    splits = list(
        StratifiedGroupKFold(cfg.tuning.folds, shuffle=True, random_state=cfg.seed).split(
            X, y, groups
        )
    )
    frames = [(X.iloc[a], y[a], X.iloc[b], y[b]) for a, b in splits]  # built once
    stopping = cfg.tuning.early_stopping_rounds
    datasets = _FoldDatasets(frames, stopping > 0)

    def fold_losses(trial: optuna.Trial, fold_decision: Callable[[int], np.ndarray]) -> float:
        """The mean held-out log loss over the folds, reported fold by fold (for pruning)."""
        losses = []
        for step, (_, _, _, y_held) in enumerate(frames):
            p = 1 / (1 + np.exp(-fold_decision(step)))
            losses.append(log_loss(y_held, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
            trial.report(float(np.mean(losses)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(losses))

    def lightgbm_objective(trial: optuna.Trial) -> float:
        if stopping:  # grown until the held-out fold stops improving
            trees = {"n_estimators": cfg.tuning.max_trees}
        else:
            trees = {"n_estimators": trial.suggest_int("n_estimators", 100, 800, step=50)}
        params = {
            **trees,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.15, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        }
        member = TreeMember(params, cfg.seed, n_jobs=cfg.n_jobs)
        grown: list[int] = []

        def decision(step: int) -> np.ndarray:
            fit, held = datasets.get(step, member.settings())
            booster = member.boost(fit, held, stopping)
            if stopping:
                grown.append(booster.best_iteration or params["n_estimators"])
                trial.set_user_attr("n_estimators", round(float(np.mean(grown))))
            return np.asarray(booster.predict(frames[step][2], raw_score=True), dtype=float)

        return fold_losses(trial, decision)

    def linear_objective(trial: optuna.Trial) -> float:
        C = trial.suggest_float("C", 1e-3, 1.0, log=True)

        def decision(step: int) -> np.ndarray:
            x_fit, y_fit, x_held, _ = frames[step]
            member = LinearMember(C, cfg.linear.max_iter, cfg.seed, cfg.linear.interact_with)
            return member.fit(x_fit, y_fit).decision(x_held)

        return fold_losses(trial, decision)

    budget = cfg.tuning
    deadline = None if budget.timeout_s is None else started + budget.timeout_s
    capped: list[str] = []

    def search(name: str, objective: Any, defaults: dict[str, Any], trials: int) -> optuna.Study:
        study = optuna.create_study(
            study_name=f"{study_prefix}-{name}",
            storage=storage,
            direction="minimize",
            sampler=_sampler(cfg.seed, 0),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
            load_if_exists=True,
        )
        if not study.trials:
            if name == "lightgbm" and stopping:
                defaults = {k: v for k, v in defaults.items() if k != "n_estimators"}
            study.enqueue_trial(defaults, skip_if_exists=True)
        while (done := _finished(study)) < trials:
            if done and deadline is not None and clock() >= deadline:
                capped.append(name)
                log.warning(
                    "train: tuning %s stopped by the safety cap train.tuning.timeout_s = %g s "
                    "after %d of %d trials: this search depends on the machine's speed (raise "
                    "the cap; a run on the same data and seed resumes the stored search)",
                    name, budget.timeout_s, done, trials,
                )  # fmt: skip
                break
            # one trial at a time, its sampler seeded by the trial's number: a resumed search
            # draws what an uninterrupted one would
            study.sampler = _sampler(cfg.seed, done)
            study.optimize(objective, n_trials=1)
        return study

    # the linear member's short search runs beside the trees' on a thread of its own (mostly
    # single-threaded, it would leave a core idle): each study's trials still run one after
    # another with their own seeds, so the result is the one a sequential search gives
    linear_trials = max(1, budget.trials // 5)

    def linear_search() -> optuna.Study:
        # one BLAS thread: beside the trees' two it would oversubscribe the cores, and alone a
        # fit of this size is faster on one (1.9 s against 3.3 s on 33,600 rows); the whole
        # search took as long either way on 2 cores (73–76 s), the fits' results are the same
        with threadpool_limits(limits=1, user_api="blas"):
            return search("linear", linear_objective, {"C": cfg.linear.C}, linear_trials)

    with ThreadPoolExecutor(1) as pool:
        linear = pool.submit(linear_search)
        if cfg.n_jobs <= 1:  # one core: one search at a time
            linear.result()
        results = {
            "lightgbm": search("lightgbm", lightgbm_objective, cfg.lightgbm.model_dump(),
                               budget.trials),
            "linear": linear.result(),
        }  # fmt: skip
    for name, study in results.items():
        log.info(
            "train: tuning %s — %d trials (%d pruned), best log loss %.4f",
            name, len(study.trials),
            sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            study.best_value,
        )  # fmt: skip
    best = results["lightgbm"].best_trial
    best_tree = {**cfg.lightgbm.model_dump(), **best.params}
    if "n_estimators" in best.user_attrs:  # the trees early stopping kept
        best_tree["n_estimators"] = int(best.user_attrs["n_estimators"])
    return Tuned(
        lightgbm=best_tree,
        linear={**cfg.linear.model_dump(), "C": results["linear"].best_params["C"]},
        trials={k: len(s.trials) for k, s in results.items()},
        best_loss={k: float(s.best_value) for k, s in results.items()},
        seconds=clock() - started,
        capped=tuple(capped),
    )


def _finished(study: optuna.Study) -> int:
    """Trials that ran to the end or were pruned (not one a crash left running)."""
    return sum(t.state.is_finished() for t in study.trials)


def _sampler(seed: int, number: int) -> optuna.samplers.TPESampler:
    """TPE for trial ``number`` of a search seeded ``seed`` (distinct for every pair)."""
    state = np.random.SeedSequence([seed, number]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(state))


class _FoldDatasets:
    """LightGBM's binned copy of each tuning fold, built on first use and reused by every
    trial: binning the rows is a quarter of a short fit, and the bins do not depend on the
    trial's settings (:meth:`TreeMember.settings` keeps LightGBM's pre-filter of sparse
    features off, which would tie them to one ``min_child_samples``). A trial whose settings
    needed other bins (none of the searched ones do) would fail loudly, not bin anew.
    """

    def __init__(
        self, frames: list[tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]], held: bool
    ) -> None:
        self.frames = frames
        self.held = held
        self.built: dict[int, tuple[lgb.Dataset, lgb.Dataset | None]] = {}

    def get(self, step: int, settings: dict[str, Any]) -> tuple[lgb.Dataset, lgb.Dataset | None]:
        """Fold ``step``'s training rows and (when early stopping) held-out rows as datasets."""
        if step not in self.built:
            x_fit, y_fit, x_held, y_held = self.frames[step]
            binning = {k: v for k, v in settings.items() if k != "n_estimators"}
            # raw rows freed once binned: a later trial LightGBM could not train on these bins
            # raises instead of quietly binning the rows again
            fit = lgb.Dataset(x_fit, y_fit, params=binning, free_raw_data=True).construct()
            held = None
            if self.held:  # binned as the training rows are
                held = lgb.Dataset(x_held, y_held, params=binning, reference=fit).construct()
            self.built[step] = (fit, held)
        return self.built[step]
