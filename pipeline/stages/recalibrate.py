"""``healthscore recalibrate``: correct the champion's probabilities from renewals closed since
it was trained, without refitting its members.

Flow: the champion (verified) → the training set's labelled snapshots dated after the model's
last labelled date (``trained_through``, or the last recalibration's) → two numbers (a Platt map
of the model's calibrated log-odds) and their effect, cross-fitted over accounts with a 95 %
interval (:mod:`models.win.recalibration`) → one MLflow run with the figures and the
reliability diagram before and after → when the gain's interval lies above 0 (or ``--force``),
a new model version (the same members, the correction on top of the calibrator) takes the alias.
``--dry-run`` measures and logs, and registers nothing.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow import MlflowClient

from models.win.calibration import Recalibrated
from models.win.recalibration import Correction, measure_correction
from pipeline.config import Params
from pipeline.errors import InputError
from pipeline.io import catalog, plots, registry
from pipeline.io.catalog import load_training_set

log = logging.getLogger("healthscore")

THROUGH = "recalibrated_through"  # the model's trained facts: the last date recalibrated on


@dataclass(frozen=True)
class RecalibrationResult:
    """The correction measured, the MLflow run that logged it, and the version it became
    (None: not registered, because it did not help beyond noise or on a dry run)."""

    correction: Correction
    run_id: str
    version: str | None
    since: str


def run_recalibrate(
    params: Params, force: bool = False, dry_run: bool = False
) -> RecalibrationResult:
    """Measure a recalibration of the champion on renewals closed since training; register and
    promote it when it helps beyond noise (or ``force``).

    Raises:
        InputError: the model was trained on a table without as-of dates, or no renewal has
            closed since.
        ModelInputError: too few renewals of either outcome to fit the correction.
    """
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    since = pd.to_datetime(model.trained.get(THROUGH, model.trained.get("trained_through")),
                           errors="coerce")  # fmt: skip
    if pd.isna(since):
        raise InputError(
            f"model v{version} was trained on a table without as-of dates: which renewals closed "
            "since it was trained cannot be told, so there is nothing to recalibrate on"
        )
    table = load_training_set(params.output_dir).table
    rows = table[table["renewed"].notna() & (table["as_of"] > since)]
    if rows.empty:
        latest = table.loc[table["renewed"].notna(), "as_of"].max()
        raise InputError(
            f"no renewal has closed since model v{version} was calibrated: its last labelled "
            f"snapshot is {since.date()}, the training set's is {pd.Timestamp(latest).date()}. "
            "Run `healthscore features` on newer data first"
        )
    renewed = rows["renewed"].astype(int).to_numpy()
    p = model.ensemble.predict_proba(rows[model.features])[:, 1]
    correction = measure_correction(
        p, renewed, rows["account_id"].to_numpy(), params.train.bootstrap, params.train.seed,
        params.recalibrate.min_rarer_outcome,
    )  # fmt: skip
    through = str(rows["as_of"].max().date())
    log.info("recalibrate: %s", describe(correction, str(since.date()), through))
    with mlflow.start_run(run_name=f"recalibrate v{version}") as run:
        mlflow.set_tags({"kind": "recalibration", "recalibrated_version": version,
                         "trained_run_id": model.trained.get("run_id", ""),
                         "since": str(since.date()), "through": through})  # fmt: skip
        mlflow.log_metrics(_metrics(correction))
        fig = plots.reliability_diagram(
            renewed, {"before": p, "after (cross-fitted)": correction.after}
        )
        mlflow.log_figure(fig, f"{catalog.RUN_PLOTS}/reliability.png")
        plt.close(fig)
        new_version = None
        if dry_run:
            log.info("recalibrate: dry run, nothing registered")
        elif correction.helps or force:
            example = rows[model.features].head(50)
            new_version = _register(params, model, version, correction, run.info.run_id, through,
                                    example)  # fmt: skip
        else:
            log.warning(
                "recalibrate: the correction does not help beyond noise; %s stays on v%s "
                "(--force to apply it anyway)", params.mlflow.alias, version,
            )  # fmt: skip
    return RecalibrationResult(correction, run.info.run_id, new_version, str(since.date()))


def describe(c: Correction, since: str, through: str) -> str:
    """One line on what the correction does and on what evidence."""
    verdict = "helps" if c.helps else "hurts" if c.high < 0 else "is not distinguishable from none"
    return (
        f"{c.renewals:,} renewals closed since {since} (snapshots through {through}; "
        f"{c.non_renewals:,} non-renewals, {c.accounts:,} accounts): predicted renewal rate "
        f"{c.predicted_before:.3f} → {c.predicted_after:.3f}, realised {c.realised:.3f}; ECE "
        f"{c.ece_before:.3f} → {c.ece_after:.3f}; log loss {c.log_loss_before:.4f} → "
        f"{c.log_loss_after:.4f} (gain {c.gain:+.4f}, 95 % interval {c.low:+.4f} to "
        f"{c.high:+.4f}, cross-fitted over accounts): the correction {verdict} "
        f"(intercept {c.intercept:+.3f}, slope {c.slope:.3f})"
    )


def _metrics(c: Correction) -> dict[str, float]:
    names = ("intercept", "slope", "gain", "low", "high", "log_loss_before", "log_loss_after",
             "ece_before", "ece_after", "predicted_before", "predicted_after", "realised",
             "renewals", "non_renewals", "accounts")  # fmt: skip
    return {f"recalibration_{n}": float(getattr(c, n)) for n in names}


def _register(
    params: Params, model: registry.HealthModel, version: str, c: Correction, run_id: str,
    through: str, example: pd.DataFrame,
) -> str:  # fmt: skip
    fresh = copy.deepcopy(model)
    ensemble = fresh.ensemble
    ensemble.calibrator_ = Recalibrated(ensemble.calibrator_, c.intercept, c.slope)
    ensemble.calibration_method_ = ensemble.calibrator_.method
    fresh.trained = {
        **model.trained,
        "calibration": ensemble.calibrator_.method,
        THROUGH: through,
        "recalibrated_from": version,
        "recalibration_run_id": run_id,
        "recalibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    new = registry.log_scoring_model(fresh, example, params.mlflow.model_name)
    MlflowClient().set_registered_model_alias(params.mlflow.model_name, params.mlflow.alias, new)
    log.info(
        "recalibrate: %s → version %s (v%s with its probabilities corrected)",
        params.mlflow.alias, new, version,
    )  # fmt: skip
    return new
