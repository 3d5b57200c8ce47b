"""The scoring model as an MLflow pyfunc, its registration, and the promotion gate.

The pyfunc takes a frame of features (text columns as plain strings are fine) and returns the
win probability, its Venn-ABERS interval and the health score. Scoring loads it by alias
(``models:/<name>@champion``) and reaches the ensemble itself for exact SHAP through
``unwrap_python_model()``.

Trust: registration records a SHA-256 digest of the version's artifact files as a tag of the
model version, and every load recomputes it on the downloaded files before unpickling anything
(a mismatch or a missing digest is refused). The tracking store is checked before use: a SQLite
file's folder must exist, a tracking server must answer, and MLflow's own HTTP retries are
capped; a new experiment keeps its artifacts beside a SQLite store, not in ``./mlruns``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import re
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from models.win.ensemble import HealthEnsemble
from pipeline.errors import InputError, MissingInput

if TYPE_CHECKING:
    from models.interventions.uplift import PlayEffects
    from models.renewal.size import RenewalSize

log = logging.getLogger("healthscore")

LOWER_IS_BETTER = {"log_loss", "brier"}
REQUIREMENTS = (
    "lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "venn-abers", "mlflow", "econml",
)  # fmt: skip

# tags of a registered version: the digest of its artifact files, and each file's own digest
# (so a refused load can say which file changed)
DIGEST_TAG = "healthscore.artifacts_sha256"
FILES_TAG = "healthscore.artifacts_files"
# written by MLflow into every download of a registered version, never stored with it
DOWNLOAD_ONLY = frozenset({"registered_model_meta"})
# keys of a model's ``trained`` facts: what its effect model estimated, what not and why (the
# plan stage repeats them), and the kinds it has no estimate for, as JSON {kind: why}
EFFECTS_NOTE = "effects"
EFFECTS_SKIPPED = "effects_skipped"

PROBE_TIMEOUT_S = 3.0  # a tracking server that does not answer this fast is taken as down
# MLflow retries a failing request 7 times with backoff (~4 minutes) by default; the
# environment still wins where these are set
HTTP_LIMITS = {MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "2", MLFLOW_HTTP_REQUEST_TIMEOUT.name: "60"}
ARTIFACTS_FOLDER = "mlartifacts"  # beside a SQLite store, one sub-folder per experiment


class TrackingError(InputError):
    """The MLflow tracking store that ``mlflow.tracking_uri`` names cannot be used."""


class ModelIntegrityError(InputError):
    """A registered version's artifacts are not the ones its digest recorded at registration."""


class HealthModel(mlflow.pyfunc.PythonModel):
    """The deployed ensemble with what scoring needs beside it: the feature catalog it was
    trained on, a profile of the training features and scores (drift), and the facts of
    its training run (``trained``: run id, data fingerprint, trained through …)."""

    # MLflow would read predict's type hints as a schema and warns (in ANSI colour) at class
    # creation when there are none; the signature is given explicitly at logging instead
    _skip_type_hint_validation = True

    # defaults for versions pickled before these attributes existed
    profile: pd.DataFrame | None = None
    reference_scores: np.ndarray | None = None
    trained: dict[str, str] = {}  # noqa: RUF012 (read-only fallback)
    contraction: dict[str, float] = {}  # noqa: RUF012
    effects: PlayEffects | None = None
    size: RenewalSize | None = None  # the renewal in dollars; None: not estimated

    def __init__(
        self,
        ensemble: HealthEnsemble,
        catalog: pd.DataFrame,
        profile: pd.DataFrame | None = None,
        reference_scores: np.ndarray | None = None,
        trained: dict[str, str] | None = None,
        contraction: dict[str, float] | None = None,
        effects: PlayEffects | None = None,
        size: RenewalSize | None = None,
    ) -> None:
        self.ensemble = ensemble
        self.size = size
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
    """Point MLflow at the store from params (``MLFLOW_TRACKING_URI`` already folded in),
    after checking it can be used, and select ``experiment`` (created if new: beside a SQLite
    store its artifacts go to ``mlartifacts/<experiment>`` next to the database file).

    Raises:
        TrackingError: the SQLite file's folder does not exist, or the tracking server does not
            answer within ``PROBE_TIMEOUT_S`` seconds.
    """
    for key, value in HTTP_LIMITS.items():
        os.environ.setdefault(key, value)
    scheme = urlparse(tracking_uri).scheme
    artifacts = None
    if scheme == "sqlite":
        database = _sqlite_file(tracking_uri)
        if database is not None:
            artifacts = database.resolve().parent / ARTIFACTS_FOLDER / _folder_name(experiment)
    elif scheme in ("http", "https"):
        _probe(tracking_uri)
    elif tracking_uri.startswith(("file:", "./", "/")) or "://" not in tracking_uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(tracking_uri)
    if artifacts is not None and MlflowClient().get_experiment_by_name(experiment) is None:
        # an existing experiment keeps its location; another process may create it meanwhile
        with contextlib.suppress(MlflowException):
            MlflowClient().create_experiment(experiment, artifact_location=str(artifacts))
    mlflow.set_experiment(experiment)


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a SQLite URI (None: in memory), its folder checked to exist:
    MLflow would otherwise create any folder the URI names, typo or not."""
    try:
        database = make_url(tracking_uri).database
    except ArgumentError as exc:
        raise TrackingError(f"mlflow.tracking_uri {tracking_uri!r} is not a valid URI") from exc
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    if not path.parent.is_dir():
        raise TrackingError(
            f"mlflow.tracking_uri {tracking_uri}: the folder {path.parent} does not exist; "
            "create it, or fix mlflow.tracking_uri (or MLFLOW_TRACKING_URI)"
        )
    return path


def _probe(tracking_uri: str) -> None:
    """One request to the server's health endpoint: any answer will do, no answer refuses."""
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered (an error page, a login): MLflow's own requests take it from here
    except (OSError, ValueError) as exc:  # URLError, refused, timed out, a malformed host
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):
            return  # it answered over TLS; MLflow's client applies its own certificate settings
        raise TrackingError(
            f"mlflow.tracking_uri {tracking_uri}: no MLflow tracking server answered within "
            f"{PROBE_TIMEOUT_S:g} s ({reason or type(exc).__name__}); start it, or fix "
            "mlflow.tracking_uri (or MLFLOW_TRACKING_URI)"
        ) from None


def _folder_name(experiment: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"


def log_scoring_model(model: HealthModel, example: pd.DataFrame, name: str) -> str:
    """Log the pyfunc (with signature) in the active run, register it and record the digest
    of its artifact files on the version; returns the version."""
    ensemble = model.ensemble
    plain = as_model_input(example, list(ensemble.categories_))
    # counts as doubles in the schema: a scoring table may hold a missing count, which an integer
    # column cannot; the output's integers (health 0-100) are never missing, and MLflow's hint
    # about them would print in every training log
    counts = plain.select_dtypes("integer").columns
    plain = plain.astype(dict.fromkeys(counts, "float64"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(plain, model.predict(None, plain))
    with _without_pickle_warning():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            input_example=plain.head(3),
            registered_model_name=name,
            pip_requirements=[_pinned(p) for p in REQUIREMENTS],
        )
    version = str(info.registered_model_version)
    digest = record_digest(name, version)
    log.info(
        "registry: model %s v%s pickled (CloudPickle), its files' SHA-256 %s… recorded: every "
        "load checks it before unpickling anything", name, version, digest[:12],
    )  # fmt: skip
    return version


PICKLE_WARNING = "serialized using CloudPickle"  # in MLflow's warning on a pickled python_model


class _PickleWarning(logging.Filter):
    """MLflow's WARNING that a pickled ``python_model`` may run code when loaded: true of any
    pickle, and answered here by the digest every load checks (so not shown in each run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return PICKLE_WARNING not in record.getMessage()


@contextlib.contextmanager
def _without_pickle_warning() -> Iterator[None]:
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    quiet = _PickleWarning()
    pyfunc_log.addFilter(quiet)
    try:
        yield
    finally:
        pyfunc_log.removeFilter(quiet)


def record_digest(name: str, version: str) -> str:
    """Digest the artifact files of a registered version as the store holds them, and record
    it (and each file's digest) as tags of the version; returns the digest."""
    with _downloaded(name, version) as folder:
        files = _file_digests(folder)
    digest = _digest(files)
    client = MlflowClient()
    client.set_model_version_tag(name, version, FILES_TAG, json.dumps(files, sort_keys=True))
    client.set_model_version_tag(name, version, DIGEST_TAG, digest)
    return digest


def as_model_input(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Features as the pyfunc signature takes them: text as strings, every number a float
    (integer columns cannot hold missing values in MLflow's schema)."""
    text = {c: features[c].astype(object).where(features[c].notna(), None) for c in categorical}
    numbers = {c: features[c].astype("float64") for c in features.columns if c not in text}
    return features.assign(**text, **numbers)


@dataclass(frozen=True)
class Holder:
    """The version holding an alias, loaded and verified (``model`` None: it could not be,
    ``problem`` says why), with the metrics and tags its training run logged."""

    version: str
    model: HealthModel | None
    problem: str | None
    metrics: dict[str, float]
    tags: dict[str, str]


def alias_holder(name: str, alias: str) -> Holder | None:
    """The version behind ``alias`` with its model and its run's figures; None if no version
    holds the alias."""
    client = MlflowClient()
    try:
        held = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    version = str(held.version)
    try:
        data = client.get_run(held.run_id).data
        metrics, tags = dict(data.metrics), dict(data.tags)
    except MlflowException:  # a version registered from outside a run, or its run deleted
        metrics, tags = {}, {}
    try:
        model, _ = load_champion(name, alias, version)
    except (ValueError, OSError, ImportError, AttributeError, MlflowException) as exc:
        return Holder(version, None, str(exc), metrics, tags)
    return Holder(version, model, None, metrics, tags)


@dataclass(frozen=True)
class Contest:
    """The gate's evidence: ``metric`` of the challenger and of the alias holder on the same
    rows, which ``basis`` describes (or, with no champion figure, why there is none).

    ``holder`` None: no version holds the alias. ``usable`` False: the holder cannot be loaded
    or cannot score these features, so it cannot stay. ``champion`` None with a usable holder:
    no fair comparison could be made, so the holder stays unless forced.
    """

    metric: str
    challenger: float
    holder: str | None = None
    champion: float | None = None
    usable: bool = True
    basis: str = ""


@dataclass(frozen=True)
class Promotion:
    """Whether ``version`` took the alias, the version that held it before, and why."""

    promoted: bool
    version: str
    previous: str | None
    reason: str


def promote(
    name: str, alias: str, version: str, contest: Contest, min_improvement: float, force: bool
) -> Promotion:
    """Move ``alias`` to ``version`` if it beats the holder's ``contest.metric`` on the same
    rows by more than ``min_improvement``, if there is no usable holder, or if ``force``."""
    held, metric = contest.holder, contest.metric
    if held is None:
        promoted, reason = True, f"no {alias} yet"
    elif not contest.usable:
        promoted, reason = True, f"{alias} v{held} cannot serve: {contest.basis}"
    elif contest.champion is None:
        promoted, reason = False, f"no fair comparison with {alias} v{held}: {contest.basis}"
    else:
        value, champion = contest.challenger, contest.champion
        gain = (champion - value) if metric in LOWER_IS_BETTER else (value - champion)
        promoted = gain > min_improvement
        reason = (
            f"{metric} {value:.4f} vs {alias} v{held} {champion:.4f} "
            f"({'+' if gain >= 0 else ''}{gain:.4f}, needs > {min_improvement:g}) "
            f"on {contest.basis}"
        )
    if force and not promoted:
        promoted, reason = True, reason + "; forced"
    if promoted:
        MlflowClient().set_registered_model_alias(name, alias, version)
        log.info("train: %s → version %s (%s)", alias, version, reason)
    else:
        log.warning("train: version %s registered, %s stays on v%s (%s); --force to override",
                    version, alias, held, reason)  # fmt: skip
    return Promotion(promoted, version, held, reason)


def load_champion(name: str, alias: str, version: str | None = None) -> tuple[HealthModel, str]:
    """The registered model behind ``alias`` (or the given ``version``) and its version,
    unpickled only once its artifact files match the digest recorded at registration.

    Raises:
        FileNotFoundError: no such model, alias or version is registered.
        ModelIntegrityError: the version has no digest, or its files do not match it.
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
        raise MissingInput(
            f"model {name!r} has no {which} in {mlflow.get_tracking_uri()}: run `healthscore "
            "train` first (or set score.version)"
        ) from exc
    _alias_legacy_modules()
    with _downloaded(name, str(held.version)) as folder:
        verify_artifacts(held, folder)
        loaded = mlflow.pyfunc.load_model(str(folder))
    return loaded.unwrap_python_model(), str(held.version)


def verify_artifacts(held: ModelVersion, folder: Path) -> None:
    """Check the downloaded files of a registered version against its recorded digest.

    Raises:
        ModelIntegrityError: no digest was recorded, or a file changed, went missing or was
            added since registration (named in the message).
    """
    label = f"model {held.name!r} version {held.version}"
    recorded = (held.tags or {}).get(DIGEST_TAG)
    if not recorded:
        raise ModelIntegrityError(
            f"{label} has no artifact digest (tag {DIGEST_TAG}): registered before digests "
            "were recorded, or the tag was removed; refusing to load it unverified. Register a "
            "new version with `healthscore train`"
        )
    files = _file_digests(folder)
    actual = _digest(files)
    if actual == recorded:
        return
    raise ModelIntegrityError(
        f"{label}: {_changes(files, (held.tags or {}).get(FILES_TAG))} since registration "
        f"(artifacts sha256 {actual[:12]}…, recorded {recorded[:12]}…); refusing to load it. "
        "Restore its artifacts, or register a new version with `healthscore train`"
    )


def _changes(files: dict[str, str], recorded_json: str | None) -> str:
    """Which files differ from the ones recorded at registration, in words."""
    try:
        recorded = json.loads(recorded_json or "")
    except json.JSONDecodeError:
        return "its artifact files changed"
    if not isinstance(recorded, dict):
        return "its artifact files changed"
    changed = [
        f"{f} changed (sha256 {files[f][:12]}…, recorded {str(recorded[f])[:12]}…)"
        for f in sorted(files.keys() & recorded.keys())
        if files[f] != recorded[f]
    ]
    missing = [f"{f} is missing" for f in sorted(recorded.keys() - files.keys())]
    added = [f"{f} was added" for f in sorted(files.keys() - recorded.keys())]
    return "; ".join(changed + missing + added) or "its recorded digest does not match its files"


@contextlib.contextmanager
def _downloaded(name: str, version: str) -> Iterator[Path]:
    """The artifact files of a registered version, in a temporary folder for the block."""
    with tempfile.TemporaryDirectory(prefix="healthscore-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=tmp
        )
        yield Path(local)


def _file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by its relative path, in path order."""
    files = {}
    for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative not in DOWNLOAD_ONLY:
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
            files[relative] = digest.hexdigest()
    return files


def _digest(files: dict[str, str]) -> str:
    """One digest over the files' digests and paths, in path order (``sha256sum`` lines)."""
    lines = "".join(f"{files[f]}  {f}\n" for f in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


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
