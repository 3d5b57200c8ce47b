"""The scoring model as an MLflow pyfunc, its registration, and the promotion gate.

The pyfunc takes a frame of features (text columns as plain strings are fine) and returns the
win probability, its Venn-ABERS interval and the health score. Scoring loads it by alias
(``models:/<name>@champion``) and reaches the ensemble itself for exact SHAP through
``unwrap_python_model()``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from models.win.ensemble import HealthEnsemble

if TYPE_CHECKING:
    from models.interventions.uplift import PlayEffects

log = logging.getLogger("healthscore")

LOWER_IS_BETTER = {"log_loss", "brier"}
REQUIREMENTS = (
    "lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "venn-abers", "mlflow", "econml",
)  # fmt: skip


# MLflow warns at class creation when predict has no type hints; the signature is explicit instead
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)

    class HealthModel(mlflow.pyfunc.PythonModel):
        """The deployed ensemble with what scoring needs beside it: the feature catalog it was
        trained on, a profile of the training features and scores (drift), and the facts of
        its training run (``trained``: run id, data fingerprint, trained through …)."""

        # defaults for versions pickled before these attributes existed
        profile: pd.DataFrame | None = None
        reference_scores: np.ndarray | None = None
        trained: dict[str, str] = {}  # noqa: RUF012 (read-only fallback)
        contraction: dict[str, float] = {}  # noqa: RUF012
        effects: PlayEffects | None = None

        def __init__(
            self,
            ensemble: HealthEnsemble,
            catalog: pd.DataFrame,
            profile: pd.DataFrame | None = None,
            reference_scores: np.ndarray | None = None,
            trained: dict[str, str] | None = None,
            contraction: dict[str, float] | None = None,
            effects: PlayEffects | None = None,
        ) -> None:
            self.ensemble = ensemble
            self.catalog = catalog
            self.profile = profile
            self.reference_scores = reference_scores
            self.trained = dict(trained or {})
            self.contraction = dict(contraction or {})
            self.effects = effects

        @property
        def features(self) -> list[str]:
            """The feature columns the ensemble was trained on, in order."""
            return list(self.ensemble.feature_names_in_)

        # no annotations: MLflow would read them as a schema; the signature is explicit
        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            """Win probability, its interval and health 0–100 per row of features."""
            frame = pd.DataFrame(model_input)
            p = self.ensemble.predict_proba(frame)[:, 1]
            low, high = self.ensemble.predict_interval(frame)
            return pd.DataFrame(
                {
                    "win_probability": p,
                    "win_probability_low": np.minimum(low, p),
                    "win_probability_high": np.maximum(high, p),
                    "health": np.rint(100 * p).astype("int64"),
                },
                index=frame.index,
            )


def configure(tracking_uri: str, experiment: str) -> None:
    """Point MLflow at the store from params (``MLFLOW_TRACKING_URI`` already folded in)."""
    if tracking_uri.startswith(("file:", "./", "/")) or "://" not in tracking_uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)


def log_scoring_model(model: HealthModel, example: pd.DataFrame, name: str) -> str:
    """Log the pyfunc (with signature) in the active run, register it; returns the version."""
    ensemble = model.ensemble
    plain = as_model_input(example, list(ensemble.categories_))
    signature = infer_signature(plain, model.predict(None, plain))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        signature=signature,
        input_example=plain.head(3),
        registered_model_name=name,
        pip_requirements=[_pinned(p) for p in REQUIREMENTS],
    )
    return str(info.registered_model_version)


def as_model_input(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Features as the pyfunc signature takes them: text as strings, every number a float
    (integer columns cannot hold missing values in MLflow's schema)."""
    text = {c: features[c].astype(object).where(features[c].notna(), None) for c in categorical}
    numbers = {c: features[c].astype("float64") for c in features.columns if c not in text}
    return features.assign(**text, **numbers)


@dataclass(frozen=True)
class Promotion:
    """Whether ``version`` took the alias, the version that held it before, and why."""

    promoted: bool
    version: str
    previous: str | None
    reason: str


def promote(
    name: str, alias: str, version: str, metric: str, value: float, min_improvement: float,
    force: bool,
) -> Promotion:  # fmt: skip
    """Move ``alias`` to ``version`` if it beats the current holder's out-of-time ``metric``
    (logged in its run) by at least ``min_improvement``, or if ``force``."""
    client = MlflowClient()
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        current = None
    if current is None:
        reason = f"no {alias} yet"
        promoted = True
    else:
        held = client.get_run(current.run_id).data.metrics.get(f"oot_{metric}")
        if held is None:
            promoted, reason = True, f"{alias} v{current.version} has no oot_{metric}"
        else:
            gain = (held - value) if metric in LOWER_IS_BETTER else (value - held)
            promoted = gain > min_improvement
            reason = (
                f"oot {metric} {value:.4f} vs {alias} v{current.version} {held:.4f} "
                f"({'+' if gain >= 0 else ''}{gain:.4f}, needs > {min_improvement:g})"
            )
        if force and not promoted:
            promoted, reason = True, reason + "; forced"
    if promoted:
        client.set_registered_model_alias(name, alias, version)
        log.info("train: %s → version %s (%s)", alias, version, reason)
    else:
        log.warning("train: version %s registered, %s stays on v%s (%s); --force to override",
                    version, alias, current.version if current else "-", reason)  # fmt: skip
    return Promotion(promoted, version, current.version if current else None, reason)


def load_champion(name: str, alias: str, version: str | None = None) -> tuple[HealthModel, str]:
    """The registered model behind ``alias`` (or the given ``version``) and its version.

    Raises:
        FileNotFoundError: no such model, alias or version is registered.
    """
    client = MlflowClient()
    try:
        held = (
            client.get_model_version(name, version)
            if version
            else client.get_model_version_by_alias(name, alias)
        )
    except MlflowException as exc:
        which = f"version {version}" if version else f"alias {alias!r}"
        raise FileNotFoundError(
            f"model {name!r} has no {which} in {mlflow.get_tracking_uri()}: run `healthscore "
            "train` first (or set score.version)"
        ) from exc
    _alias_legacy_modules()
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{held.version}")
    return loaded.unwrap_python_model(), str(held.version)


# where the classes of a model registered before pipeline/ and models/ were split into
# sub-packages live now: its pickle names the old modules (models.explain and models.scoring,
# packages now, held no pickled class)
LEGACY_MODULES = {
    "pipeline.registry": "pipeline.io.registry",
    **{f"models.{m}": f"models.win.{m}" for m in (
        "ensemble", "stumps", "calibration", "tuning", "validation", "scorecard", "metrics")},
    "models.treeshap": "models.explain.treeshap",
    "models.monitoring": "models.scoring.monitoring",
    "models.forecast": "models.scoring.forecast",
    **{f"models.{m}": f"models.interventions.{m}" for m in (
        "uplift", "plans", "allocation", "policy")},
}  # fmt: skip


def _alias_legacy_modules() -> None:
    """Let a pickle that names a module's old path find it at its new one."""
    for old, new in LEGACY_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))


def _pinned(package: str) -> str:
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package
