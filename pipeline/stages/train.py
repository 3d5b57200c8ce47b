"""``make train``: tune, fit, evaluate and register the win-probability ensemble in MLflow.

Flow: read the training set → out-of-time split (one horizon of gap) → Optuna on the training
period → the stacked, calibrated ensemble (grouped CV inside) → out-of-time metrics beside the
baselines (classic scorecard, single LightGBM) and any judge the caller plugs in (the lab's oracle
comparison on the synthetic world) → factor audit
and lead time → refit on every labelled snapshot → MLflow run, registered pyfunc, promotion gate
(the challenger and the champion scored on the same out-of-time rows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import optuna
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models.config import TrainConfig
from models.errors import ModelInputError
from models.renewal.size import RenewalSize, renewal_dollars
from models.renewal.size import evaluate as size_evaluate
from models.renewal.size import refit as refit_size
from models.scoring.forecast import OVERALL, contraction_rates, renewal_forecast
from models.scoring.monitoring import feature_profile
from models.win.ensemble import HealthEnsemble, TreeMember, make_ensemble
from models.win.metrics import (
    LeadTime,
    at_risk_words,
    bootstrap_intervals,
    calibration_by_period,
    classification_metrics,
    lead_time,
)
from models.win.scorecard import Scorecard, factor_audit
from models.win.tuning import Tuned, tune
from models.win.validation import holdout_split, out_of_time_split
from pipeline.config import Params, flatten
from pipeline.io import catalog, plots, registry
from pipeline.io.catalog import KEY, TrainingSet, load_training_set
from pipeline.shared.effects import EffectsFit, EffectsOutcome, check_modifiers, run_effects
from pipeline.threads import thread_limits

log = logging.getLogger("healthscore")

SHAP_SAMPLE = 2000
PROFILE_ROWS = 50_000  # training rows summarised for drift monitoring
WINDOW_TAG = "oot_window"  # fingerprint of the out-of-time rows and labels a run was tested on
EFFECTS_TAG = "effects"  # what the effect model estimated, what not and why
MAX_TAG_CHARS = 5000  # MLflow refuses tag values over 8,000 characters


@dataclass(frozen=True)
class Judge:
    """Evaluation a caller plugs into training, its metrics logged with the run's own: the lab
    passes the oracle comparison on the synthetic world; real data has none.

    ``win`` gets the out-of-time predictions (``account_id``, ``as_of``, ``renewed``, ``arr``,
    ``p``); ``effects`` the fitted effect model; ``size`` the test rows, the size model and the
    win probability of each row. Each returns metrics by name (empty: none).
    """

    win: Callable[[pd.DataFrame], dict[str, float]]
    effects: Callable[[EffectsFit], dict[str, float]]
    size: Callable[[pd.DataFrame, RenewalSize, np.ndarray], dict[str, float]] = (
        lambda *_: {}  # a default that judges nothing
    )


@dataclass
class TrainResult:
    """What one training run produced: its MLflow run, model version and metrics."""

    run_id: str
    version: str
    promoted: bool
    metrics: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)


def run_train(params: Params, force: bool = False, judge: Judge | None = None) -> TrainResult:
    """Tune, fit and evaluate the ensemble; log the run and register the model in MLflow.

    Every thread pool (LightGBM, OpenMP, BLAS, joblib, numba) is held to ``train.n_jobs``.
    """
    with thread_limits(params.train.n_jobs):
        return _train(params, force, judge)


def _train(params: Params, force: bool, judge: Judge | None) -> TrainResult:
    cfg = params.train
    timer = _Timer()
    # an unusable tracking store fails now, not after the tuning and fitting
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    with timer("load"):
        data = load_training_set(params.output_dir)
    table, names = data.table, data.features
    check_modifiers(params, names)  # a params mistake fails now, not after the tuning
    labelled = table["renewed"].notna()
    train, test, split = _split(table, labelled, params)
    y_train, y_test = (
        train["renewed"].astype(int).to_numpy(),
        test["renewed"].astype(int).to_numpy(),
    )
    log.info(
        "train: %s labelled snapshots × %d features (data %s); train %s, test %s (%s)",
        f"{int(labelled.sum()):,}", len(names), data.fingerprint, f"{len(train):,}",
        f"{len(test):,}", split,
    )  # fmt: skip

    with timer("tune"):
        tuned = _tune(train[names], y_train, train["account_id"].to_numpy(), cfg, params, data)
    with timer("ensemble"):
        ensemble = _ensemble(cfg, tuned).fit(
            train[names], y_train, groups=train["account_id"], times=train["as_of"]
        )
    if ensemble.dropped_members_:
        log.info(
            "train: dropped %s: stacking weight below %.0f%% of the total "
            "(train.min_member_weight); the rest restacked",
            ", ".join(ensemble.dropped_members_), 100 * cfg.min_member_weight,
        )  # fmt: skip
    log.info("train: %s", ensemble.stack_reason_)
    log.info(
        "train: ensemble weights %s, intercept %.3f, calibration %s (%s log loss %s, %s rows)",
        dict(zip(ensemble.member_names_, np.round(ensemble.weights_, 3).tolist(), strict=True)),
        ensemble.intercept_, ensemble.calibration_method_,
        ensemble.calibration_choice_.validation,
        {k: round(v, 4) for k, v in ensemble.calibration_losses_.items()},
        f"{ensemble.calibration_choice_.rows:,}",
    )  # fmt: skip

    everything = table[labelled]
    # the steps run in turn: LightGBM keeps its thread count in one process-wide variable, and
    # steps beside each other on threads (fits at different counts) crashed a run once
    with timer("evaluate"):
        p_test = ensemble.predict_proba(test[names])[:, 1]
        single = _lightgbm_member(ensemble)
        cv = classification_metrics(
            y_train, ensemble.oof_proba_, train["arr"].to_numpy(), cfg.top_k_percent
        )
        metrics = _prefixed("cv", cv)
        oot = classification_metrics(y_test, p_test, test["arr"].to_numpy(), cfg.top_k_percent)
        metrics |= _prefixed("oot", oot)
        metrics |= _stack_metrics(ensemble)
        periods = _calibration_by_period(test, y_test, p_test)
        metrics |= _period_metrics(periods)
        baselines = _baselines(train, test, names, data.catalog, cfg, tuned, single)
        for label, p in baselines.items():
            scores = classification_metrics(y_test, p, test["arr"].to_numpy(), cfg.top_k_percent)
            metrics |= _prefixed(f"baseline_{label}", scores)
            metrics[f"gain_auc_vs_{label}"] = oot["roc_auc"] - scores["roc_auc"]
            metrics[f"gain_brier_vs_{label}"] = scores["brier"] - oot["brier"]
        intervals = bootstrap_intervals(
            y_test, {"ensemble": p_test, **baselines}, test["account_id"].to_numpy(),
            replicates=cfg.bootstrap, seed=cfg.seed,
        )  # fmt: skip
        metrics |= _interval_metrics(intervals)
        leads = _lead_time(test, p_test, cfg)
        metrics["median_warning_days"] = leads.median_days
        metrics["warned_share"] = leads.warned_share  # of non-renewals, at risk at the end
        metrics["warned_share_low"] = leads.warned_low
        metrics["warned_share_high"] = leads.warned_high
        metrics["warned_of_lost_contracts"] = leads.lost
        metrics["warned_median_days"] = leads.warned_median_days
        scored = test[[*KEY, "renewed", "arr"]].assign(p=p_test)
        if judge is not None:
            metrics |= judge.win(scored)
        audit = _audit(train, names, data.catalog, y_train, cfg)
    _report(metrics, leads, baselines, split, at_risk_words(cfg))
    with timer("refit"):
        deployed = ensemble
        if cfg.refit_on_all:
            deployed = ensemble.refit_members(everything[names], everything["renewed"].astype(int))
    with timer("renewal size"):  # optional: without renewal ARR the win model stands alone
        size, nrr = _renewal_size(cfg, train, test, names, p_test)
        metrics |= {f"size_{k}": v for k, v in (size.metrics if size else {}).items()}
        if size is not None and judge is not None:
            metrics |= judge.size(test, size.model, p_test)
        if size is not None and cfg.refit_on_all:
            renewed = _renewals(everything)
            refit_size(size.model, renewed[names], renewed["renewal_arr"] / renewed["arr"])
    with timer("effects"):  # optional: a failure leaves the win model without an effect model
        outcome = run_effects(params, table, names, data.catalog, deployed)
    effects = outcome.fit
    if effects is not None:
        metrics |= effects.metrics
        if judge is not None:
            metrics |= judge.effects(effects)
    with timer("log"):
        result = _log_run(
            params, data, deployed, test, p_test, baselines, metrics,
            {catalog.RUN_LEAD_TIME: leads.table, catalog.RUN_CALIBRATION: periods,
             catalog.RUN_NRR: nrr}, audit, tuned, force, timer, outcome,
            None if size is None else size.model,
        )  # fmt: skip
    result.seconds = dict(timer.seconds)
    log.info(
        "train: done in %.0f s (%s); run %s, model %s v%s",
        timer.elapsed(),
        ", ".join(f"{k} {v:.0f} s" for k, v in timer.seconds.items()),
        result.run_id, params.mlflow.model_name, result.version,
    )  # fmt: skip
    return result


def _split(
    table: pd.DataFrame, labelled: pd.Series, params: Params
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Out of time where the snapshots have dates; otherwise whole ids held out."""
    cfg = params.train
    if table["as_of"].notna().any():
        rows = out_of_time_split(
            table["as_of"], labelled, params.features.horizon_days, cfg.test_days
        )
        train, test = table.iloc[rows[0]], table.iloc[rows[1]]
        how = (
            f"out of time: train up to {train['as_of'].max().date()}, "
            f"test from {test['as_of'].min().date()}"
        )
        return train, test, how
    rows = holdout_split(
        table["account_id"], labelled, table["renewed"], cfg.holdout_share, cfg.seed
    )
    how = f"no as-of dates: {cfg.holdout_share:.0%} of ids held out"
    return table.iloc[rows[0]], table.iloc[rows[1]], how


def _lead_time(test: pd.DataFrame, p_test: np.ndarray, cfg: TrainConfig) -> LeadTime:
    """Lead-time figures where days to renewal are known (not in a prebuilt table without)."""
    if test["days_to_renewal"].isna().all():
        nan = float("nan")
        return LeadTime(pd.DataFrame(columns=["days_before_renewal", "recall"]), nan, nan, nan)
    return lead_time(test, p_test, cfg.lead_days, cfg.at_risk_below, cfg.at_risk_top_percent)


def _tune(
    X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, cfg: TrainConfig, params: Params,
    data: TrainingSet,
) -> Tuned:  # fmt: skip
    if cfg.tuning.trials == 0:
        log.info("train: tuning off (train.tuning.trials = 0), params.yaml values used")
        return Tuned(cfg.lightgbm.model_dump(), cfg.linear.model_dump(), {}, {}, 0.0)
    params.output_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{params.output_dir / catalog.OPTUNA_STUDIES}")
    # a changed search (early stopping on or off, its rounds) is a new study, not a resumed one
    search = f"es{cfg.tuning.early_stopping_rounds}-{cfg.tuning.max_trees}"
    prefix = f"{params.mlflow.experiment}-{data.fingerprint}-seed{cfg.seed}-{search}"
    return tune(X, y, groups, cfg, storage, prefix)


def _ensemble(cfg: TrainConfig, tuned: Tuned) -> HealthEnsemble:
    return make_ensemble(cfg, lightgbm=tuned.lightgbm, linear=tuned.linear)


def _lightgbm_member(ensemble: HealthEnsemble) -> TreeMember | None:
    """The ensemble's LightGBM member as fitted on the training rows, if it kept one."""
    if "lightgbm" not in ensemble.member_names_:
        return None
    member = ensemble.members_[ensemble.member_names_.index("lightgbm")]
    return member if isinstance(member, TreeMember) else None


def _baselines(
    train: pd.DataFrame, test: pd.DataFrame, names: list[str], catalog: pd.DataFrame,
    cfg: TrainConfig, tuned: Tuned, single: TreeMember | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Out-of-time win probabilities of the single LightGBM and the classic scorecard.

    ``single``: the ensemble's own LightGBM member (the same settings, rows and seed as a
    baseline's); None when the stack dropped it, and the baseline is fitted here.
    """
    y = train["renewed"].astype(int).to_numpy()
    if single is None:
        single = TreeMember(tuned.lightgbm, cfg.seed, n_jobs=cfg.n_jobs).fit(train[names], y)
    out = {"lightgbm": expit(single.decision(test[names]))}
    components = dict(zip(catalog["name"], catalog["component"], strict=True))
    weights = {k: v for k, v in cfg.scorecard.weights.items() if k in components.values()}
    if weights:
        card = Scorecard(weights, components).fit(train[names], y)
        # a monotone map of the 0–100 score to a probability, so Brier and ECE are comparable
        platt = LogisticRegression().fit(card.health(train[names])[:, None], y)
        out["scorecard"] = platt.predict_proba(card.health(test[names])[:, None])[:, 1]
    return out


def _audit(
    train: pd.DataFrame, names: list[str], catalog: pd.DataFrame, y: np.ndarray, cfg: TrainConfig
) -> pd.DataFrame:
    components = dict(zip(catalog["name"], catalog["component"], strict=True))
    all_components = {c: 1.0 for c in sorted(set(components.values()))}
    card = Scorecard(all_components, components).fit(train[names], y)
    return factor_audit(train[names], y, components, card.component_scores(train[names]))


GAIN_NAMES = {"roc_auc": "auc", "brier": "brier"}  # gains named as before intervals existed


@dataclass(frozen=True)
class SizeFit:
    """The size model fitted on the training period and its figures on the test."""

    model: RenewalSize
    metrics: dict[str, float]


def _renewals(frame: pd.DataFrame) -> pd.DataFrame:
    """The renewed snapshots whose renewal ARR is known (the size model's rows; none when the
    table has no renewal ARR)."""
    if "renewal_arr" not in frame:
        return frame.iloc[0:0]
    keep = (frame["renewed"] == 1) & (frame["arr"] > 0) & (frame["renewal_arr"] > 0)
    return frame[keep]


def _renewal_size(
    cfg: TrainConfig, train: pd.DataFrame, test: pd.DataFrame, names: list[str],
    p_test: np.ndarray,
) -> tuple[SizeFit | None, pd.DataFrame]:  # fmt: skip
    """Fit the size model on the training period's renewals and measure it on the test; None
    (with a WARNING saying why) when it is off or cannot be estimated from the data."""
    empty = pd.DataFrame(columns=["period", "arr", "forecast_nrr", "realised_nrr", "error",
                                  "segment", "forecast_nrr_low", "forecast_nrr_high",
                                  "covered"])  # fmt: skip
    if not cfg.renewal_size.enabled:
        return None, empty
    renewed = _renewals(train)
    if renewed.empty:
        log.warning("train: no renewal ARR in the data: the renewal in dollars (churn, shrink "
                    "or grow) is not estimated; the win model stands alone")  # fmt: skip
        return None, empty
    settings = make_ensemble(cfg).get_params() | {"members": tuple(cfg.renewal_size.members)}
    try:
        model = RenewalSize(**settings).fit(
            renewed[names], renewed["renewal_arr"] / renewed["arr"], renewed["account_id"],
            renewed["as_of"],
        )  # fmt: skip
    except ModelInputError as exc:
        log.warning("train: the renewal in dollars is not estimated: %s", exc)
        return None, empty
    labelled = test["renewal_arr"].notna() | (test["renewed"] == 0)
    frame = test[labelled]
    p_win = p_test[labelled.to_numpy()]
    metrics, nrr = size_evaluate(model, frame[names], frame, p_win, cfg.bootstrap, cfg.seed)
    nrr = _nrr_intervals(model, frame, names, p_win, nrr, cfg.seed)
    book = nrr[nrr["segment"] == OVERALL]
    metrics["nrr_dates"] = float(len(book))
    metrics["nrr_dates_covered"] = float(book["covered"].sum())
    log.info(
        "train: renewal size on the test (%s renewals of %s accounts: %s expansions, %s "
        "contractions): expansion AUC %.3f [%.3f, %.3f], ECE %.3f; contraction AUC %.3f, ECE "
        "%.3f; expected against realised renewal ARR, Spearman %.3f [%.3f, %.3f]; book NRR "
        "off by %.1f points [%.1f, %.1f] per as-of date (ARR-weighted), worst segment %.1f; "
        "the realised NRR inside the forecast's 95 %% interval on %d of %d dates",
        f"{metrics['renewals']:,.0f}", f"{metrics['accounts']:,.0f}",
        f"{metrics['expansions']:,.0f}", f"{metrics['contractions']:,.0f}",
        metrics["expansion_auc"], metrics["expansion_auc_low"], metrics["expansion_auc_high"],
        metrics["expansion_ece"], metrics["contraction_auc"], metrics["contraction_ece"],
        metrics["renewal_arr_spearman"], metrics["renewal_arr_spearman_low"],
        metrics["renewal_arr_spearman_high"], metrics["nrr_error"], metrics["nrr_error_low"],
        metrics["nrr_error_high"], metrics.get("nrr_error_segment_max", float("nan")),
        metrics["nrr_dates_covered"], metrics["nrr_dates"],
    )  # fmt: skip
    return SizeFit(model, metrics), nrr


def _nrr_intervals(
    model: RenewalSize, frame: pd.DataFrame, names: list[str], p_win: np.ndarray,
    nrr: pd.DataFrame, seed: int,
) -> pd.DataFrame:  # fmt: skip
    """The NRR table per as-of date (the book's, and each segment's) with the 95 % interval each
    forecast allows (every renewal drawn from its own mixture) and whether the realised NRR is
    inside it."""
    dollars = renewal_dollars(frame["arr"].to_numpy(float), p_win, model.predict(frame[names]),
                              model.means_)  # fmt: skip
    period = frame["as_of"].astype(str).where(frame["as_of"].notna(), "all").to_numpy()
    segment = frame["segment"].astype(str).to_numpy() if "segment" in frame else None
    drawn = pd.DataFrame({
        "arr": frame["arr"].to_numpy(float), "win_probability": p_win, "days_to_renewal": 0.0,
        "cell": [f"{OVERALL}|{d}" for d in period],
        "expected_renewal_arr": dollars.expected_renewal_arr,
        "expected_contraction_arr": dollars.expected_contraction_arr,
        "expected_expansion_arr": dollars.expected_expansion_arr,
        "p_expand": dollars.p_expand, "p_contract": dollars.p_contract,
    })  # fmt: skip
    by = ["cell"]
    if segment is not None:
        drawn["segment_cell"] = [f"{s}|{d}" for s, d in zip(segment, period, strict=True)]
        by.append("segment_cell")
    outlook = renewal_forecast(drawn, 0, {}, by, seed=seed, size=model)
    per = outlook[outlook["group"] != "total"].set_index("value")
    key = nrr["segment"].astype(str) + "|" + nrr["period"].astype(str)
    low = pd.to_numeric(key.map(100 * per["forecast_nrr_low"].astype(float)), errors="coerce")
    high = pd.to_numeric(key.map(100 * per["forecast_nrr_high"].astype(float)), errors="coerce")
    realised = nrr["realised_nrr"].astype(float)
    return nrr.assign(
        forecast_nrr_low=low, forecast_nrr_high=high,
        covered=(low <= realised) & (realised <= high),
    )  # fmt: skip


def _calibration_by_period(test: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """The test's calibration per as-of date (empty for a table without dates), logged."""
    if test["as_of"].isna().all():
        return calibration_by_period(y[:0], p[:0], [])
    periods = calibration_by_period(y, p, test["as_of"].dt.date.astype(str))
    off = periods.loc[~periods["within"]]
    log.info(
        "train: calibration per as-of date on the test: %d of %d dates with the realised "
        "renewal rate outside the 95 %% range its predictions allow%s",
        len(off), len(periods),
        "".join(f"; {r.period}: predicted {r.predicted:.3f}, realised {r.realised:.3f}"
                for r in off.itertuples()),
    )  # fmt: skip
    return periods


def _period_metrics(periods: pd.DataFrame) -> dict[str, float]:
    if periods.empty:
        return {}
    return {
        "oot_periods": float(len(periods)),
        "oot_periods_outside": float((~periods["within"]).sum()),
        "oot_period_gap_max": float((periods["predicted"] - periods["realised"]).abs().max()),
    }


def _stack_metrics(ensemble: HealthEnsemble) -> dict[str, float]:
    """The stack against its best member (out-of-fold log loss gain per row, its 95 % interval
    over accounts, and how far the weights moved toward the member): what ``stacking: auto``
    decided on, logged so a run says why its champion is a stack, a blend or one member."""
    choice = ensemble.stack_choice_
    return {
        "stack_gain_log_loss": choice.gain,
        "stack_gain_log_loss_low": choice.low,
        "stack_gain_log_loss_high": choice.high,
        "stack_shrinkage": choice.shrinkage,
        "stack_rarer_class_rows": float(choice.rarer),
    }


def _interval_metrics(intervals: pd.DataFrame) -> dict[str, float]:
    """The bootstrap's intervals as run metrics: ``oot_<metric>_low/high``,
    ``baseline_<name>_<metric>_low/high``, ``gain_<metric>_vs_<name>_low/high``, and the counts
    they rest on (``oot_non_renewals``, ``oot_accounts``)."""
    out: dict[str, float] = {}
    for row in intervals.itertuples():
        if row.score == "ensemble":
            stem = f"oot_{row.metric}"
        elif row.score.startswith("gain_vs_"):
            label = row.score.removeprefix("gain_vs_")
            stem = f"gain_{GAIN_NAMES.get(row.metric, row.metric)}_vs_{label}"
            out[stem] = row.value
        else:
            stem = f"baseline_{row.score}_{row.metric}"
        out[f"{stem}_low"], out[f"{stem}_high"] = row.low, row.high
    out["oot_non_renewals"] = int(intervals["non_renewals"].iloc[0])
    out["oot_accounts"] = int(intervals["groups"].iloc[0])
    return out


def _verdict(low: float, high: float) -> str:
    """A gain said in words only as far as its interval allows."""
    if low > 0:
        return "beats"
    if high < 0:
        return "is worse than"
    return "is not distinguishable from"


def _report(
    metrics: dict[str, float], leads: LeadTime, baselines: dict[str, np.ndarray], split: str,
    listed: str,
) -> None:  # fmt: skip
    held = "out-of-time" if split.startswith("out of time") else "held-out (ids held out)"

    def ci(stem: str, digits: int) -> str:
        return (f"{metrics[stem]:.{digits}f} [{metrics[stem + '_low']:.{digits}f}, "
                f"{metrics[stem + '_high']:.{digits}f}]")  # fmt: skip

    log.info(
        "train: %s AUC %s, PR AUC %s, Brier %s, ECE %s, top-decile lift %s, on %s non-renewals "
        "of %s accounts, 95 %% intervals over accounts (cross-validated AUC %.3f)",
        held, ci("oot_roc_auc", 3), ci("oot_pr_auc", 3), ci("oot_brier", 4), ci("oot_ece", 4),
        ci("oot_top_decile_lift", 2), f"{metrics['oot_non_renewals']:,}",
        f"{metrics['oot_accounts']:,}", metrics["cv_roc_auc"],
    )  # fmt: skip
    for label in baselines:
        auc, brier = f"gain_auc_vs_{label}", f"gain_brier_vs_{label}"
        log.info(
            "train: the ensemble %s the %s baseline on AUC: %.3f vs %.3f, gain %+.3f [%+.3f, "
            "%+.3f]; Brier %.4f vs %.4f, gain %+.4f [%+.4f, %+.4f]",
            _verdict(metrics[f"{auc}_low"], metrics[f"{auc}_high"]), label,
            metrics["oot_roc_auc"], metrics[f"baseline_{label}_roc_auc"], metrics[auc],
            metrics[f"{auc}_low"], metrics[f"{auc}_high"], metrics["oot_brier"],
            metrics[f"baseline_{label}_brier"], metrics[brier], metrics[f"{brier}_low"],
            metrics[f"{brier}_high"],
        )  # fmt: skip
    if leads.table.empty:
        return
    log.info(
        "train: lead time (at risk = %s) — %.0f %% [%.0f, %.0f] of %s non-renewed contracts "
        "were at risk in their last month, for a median of %.0f days before the renewal "
        "(median over all non-renewals %.0f days); recall by days before renewal %s",
        listed, 100 * leads.warned_share, 100 * leads.warned_low, 100 * leads.warned_high,
        f"{leads.lost:,}", leads.warned_median_days, leads.median_days,
        ", ".join(f"{r.days_before_renewal}: {r.recall:.0%}" for r in leads.table.itertuples()),
    )  # fmt: skip


def _log_run(
    params: Params, data: TrainingSet, deployed: HealthEnsemble, test: pd.DataFrame,
    p_test: np.ndarray, baselines: dict[str, np.ndarray], metrics: dict[str, float],
    tables: dict[str, pd.DataFrame], audit: pd.DataFrame, tuned: Tuned, force: bool,
    timer: _Timer, outcome: EffectsOutcome, size: RenewalSize | None,
) -> TrainResult:  # fmt: skip
    names = data.features
    effects = outcome.fit
    window = _window(test)
    contest = _contest(params, test, p_test, window)
    sample = test.sample(min(SHAP_SAMPLE, len(test)), random_state=params.train.seed)
    contributions = deployed.contributions(sample[names])
    importance = contributions[names].abs().mean().sort_values(ascending=False)
    labelled = data.table[data.table["renewed"].notna()]
    latest = labelled["as_of"].max()
    trained_through = "no as-of dates" if pd.isna(latest) else str(latest)
    reference = labelled.sample(min(PROFILE_ROWS, len(labelled)), random_state=params.train.seed)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({k: _param(v) for k, v in flatten(params).items()})
        mlflow.log_params({f"tuned.lightgbm.{k}": v for k, v in tuned.lightgbm.items()})
        mlflow.log_param("tuned.linear.C", tuned.linear.get("C"))
        mlflow.set_tags(
            {
                "data_fingerprint": data.fingerprint,
                "git_commit": _git_commit(),
                "trained_through": trained_through,
                "calibration": deployed.calibration_method_,
                "stacking": deployed.stack_reason_[:MAX_TAG_CHARS],
                "stack_weights": json.dumps(
                    dict(zip(deployed.member_names_, np.round(deployed.weights_, 4).tolist(),
                             strict=True))),
                WINDOW_TAG: window,
                # studies the safety cap (train.tuning.timeout_s) cut short: not reproducible
                "tuning_capped": ",".join(tuned.capped) or "none",
                # what the effect model estimated, what not and why (plan repeats it)
                EFFECTS_TAG: outcome.note[:MAX_TAG_CHARS],
            }
        )  # fmt: skip
        mlflow.log_metrics({f"tuning_trials_{k}": v for k, v in tuned.trials.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_metrics({f"seconds_{k}": v for k, v in timer.seconds.items()})
        trees = {
            f"trees_{name}": member.model_.booster_.num_trees()
            for name, member in zip(deployed.member_names_, deployed.members_, strict=True)
            if isinstance(member, TreeMember)
        }
        mlflow.log_metrics(trees)
        log.info("train: deployed trees %s", trees)
        y_test = test["renewed"].astype(int).to_numpy()
        curves = {"ensemble": p_test, **{f"{k} baseline": v for k, v in baselines.items()}}
        for name, fig in {
            "reliability.png": plots.reliability_diagram(y_test, curves),
            "lift.png": plots.lift_curve(y_test, curves),
            "importance.png": plots.importance_bar(importance),
            "shap_summary.png": plots.shap_summary(
                contributions, sample[names], seed=params.train.seed
            ),
        }.items():
            mlflow.log_figure(fig, f"{catalog.RUN_PLOTS}/{name}")
            plt.close(fig)
        folder = Path(tmp)
        catalog.FEATURE_CATALOG.write(folder, data.catalog)
        audit.to_csv(folder / "factor_audit.csv", index=False)
        for name, frame in tables.items():  # lead time, calibration per as-of date
            frame.to_csv(folder / name, index=False)
        importance.rename("mean_abs_shap").to_csv(folder / "importance.csv")
        if effects is not None:
            effects.table.to_csv(folder / "effects.csv", index=False)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        mlflow.log_artifacts(tmp, catalog.RUN_EVALUATION)
        model = registry.HealthModel(
            deployed, data.catalog, feature_profile(reference[names]),
            deployed.oof_proba_,  # out of fold: live scores are not in-sample either
            {"run_id": run.info.run_id, "data_fingerprint": data.fingerprint,
             "trained_through": trained_through, "trained_at": _now(),
             "calibration": deployed.calibration_method_,
             registry.EFFECTS_NOTE: outcome.note,
             registry.EFFECTS_SKIPPED: json.dumps(outcome.skipped),
             **{k: f"{metrics[k]:.4f}" for k in ("oot_roc_auc", "oot_brier", "oot_ece")}},
            contraction_rates(
                labelled.get("segment", None), labelled["arr"],
                labelled["renewal_arr"] if "renewal_arr" in labelled else labelled["arr"],
                labelled["renewed"],
            ),
            None if effects is None else effects.model,
            size,
        )  # fmt: skip
        version = registry.log_scoring_model(model, sample[names], params.mlflow.model_name)
        promotion = registry.promote(
            params.mlflow.model_name, params.mlflow.alias, version, contest,
            params.train.promotion.min_improvement, force,
        )  # fmt: skip
        # both figures of the gate, on the same rows (``promotion_reason`` says which)
        gate = {"challenger": contest.challenger, "champion": contest.champion}
        mlflow.log_metrics(
            {f"gate_{contest.metric}_{k}": v for k, v in gate.items() if v is not None}
        )
        mlflow.set_tags(
            {
                "promoted": str(promotion.promoted).lower(),
                "promotion_reason": promotion.reason,
                "promotion_champion": contest.holder or "none",
            }
        )
        return TrainResult(run.info.run_id, version, promotion.promoted, metrics)


def _window(test: pd.DataFrame) -> str:
    """Fingerprint of the out-of-time rows and their labels: equal for two runs tested on the
    same rows, so their logged out-of-time figures compare like with like."""
    rows = test[[*KEY, "renewed"]].sort_values(KEY, kind="stable")
    hashed = pd.util.hash_pandas_object(rows.astype({"renewed": "float64"}), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def _contest(
    params: Params, test: pd.DataFrame, p_test: np.ndarray, window: str
) -> registry.Contest:
    """The challenger and the current champion on the same out-of-time rows, out of sample
    for both.

    The champion was refit on every labelled snapshot of its data, so scoring it on rows it
    trained on would flatter it: it is scored on the window's rows after its training data
    (``trained_through``), whose outcomes it never saw. A champion tested on this very window
    keeps the figure its run logged. Tables without as-of dates hold out ids at random: there
    the logged figures of the two holdouts are compared. A champion that cannot be loaded or
    lacks features gives way; one with no rows to compare on stays (``--force`` replaces it).
    """
    metric, alias = params.train.promotion.metric, params.mlflow.alias
    y = test["renewed"].astype(int).to_numpy()
    own = _figure(metric, y, p_test, test["arr"].to_numpy(), params.train)
    holder = registry.alias_holder(params.mlflow.model_name, alias)
    if holder is None:
        return registry.Contest(metric, own)
    logged = holder.metrics.get(f"oot_{metric}")
    if holder.model is None:
        log.warning("train: %s v%s cannot be loaded: %s", alias, holder.version, holder.problem)
        basis = f"it cannot be loaded ({holder.problem})"
        return registry.Contest(metric, own, holder.version, usable=False, basis=basis)
    model = holder.model
    missing = [f for f in model.features if f not in test.columns]
    if missing:
        basis = f"it needs features this training set lacks ({', '.join(missing[:5])})"
        return registry.Contest(metric, own, holder.version, usable=False, basis=basis)
    if holder.tags.get(WINDOW_TAG) == window and logged is not None:
        basis = f"the same {len(test):,} out-of-time rows (the figure each run logged)"
        return registry.Contest(metric, own, holder.version, logged, basis=basis)
    if test["as_of"].isna().all():
        basis = "different held-out ids (no as-of dates; the figure each run logged)"
        return registry.Contest(metric, own, holder.version, logged, basis=basis)
    through = pd.to_datetime(model.trained.get("trained_through", "NaT"), errors="coerce")
    unseen = (test["as_of"] > through).to_numpy()  # all False when not known
    rows = test[unseen]
    if rows["renewed"].nunique() < 2:
        basis = (
            f"too few of the {len(test):,} out-of-time rows are after its training data "
            f"(trained through {model.trained.get('trained_through', '?')})"
        )
        return registry.Contest(metric, own, holder.version, basis=basis)
    plain = registry.as_model_input(rows[model.features], list(model.ensemble.categories_))
    held = model.predict(None, plain)["win_probability"].to_numpy()
    y_rows, arr = rows["renewed"].astype(int).to_numpy(), rows["arr"].to_numpy()
    basis = (
        f"{len(rows):,} out-of-time rows after its training data "
        f"(as of {rows['as_of'].min().date()} to {rows['as_of'].max().date()})"
    )
    return registry.Contest(
        metric, _figure(metric, y_rows, p_test[unseen], arr, params.train), holder.version,
        _figure(metric, y_rows, held, arr, params.train), basis=basis,
    )  # fmt: skip


def _figure(metric: str, y: np.ndarray, p: np.ndarray, arr: np.ndarray, cfg: TrainConfig) -> float:
    return classification_metrics(y, p, arr, cfg.top_k_percent)[metric]


class _Timer:
    """Seconds per step, and the wall time since it was made."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[step] = round(time.perf_counter() - started, 2)
        log.info("train: %s took %.1f s", step, self.seconds[step])

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{k}": float(v) for k, v in values.items()}


def _param(value: object) -> object:
    text = json.dumps(value) if isinstance(value, list | dict) else value
    return text if not isinstance(text, str) or len(text) <= 500 else text[:497] + "..."


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
