"""Every file healthscore writes under ``output_dir``, named once, with its reader and writer.

A stage's outputs live in its own folder: ``features/`` and ``validation/`` hold one current
copy; ``scores/``, ``plans/`` and ``reports/`` hold one Hive-style partition per as-of date
(``scores/as_of=2026-11-02/``), each written whole or not at all (:func:`publish`): a link to
its version under ``.versions/``, switched in one step. Stages ask this module for a path or a
frame; no other module spells a file name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import InputError, MissingInput
from pipeline.io import storage
from pipeline.io.storage import partition, partition_dates


@dataclass(frozen=True)
class Stage:
    """A stage's folder under ``output_dir``; ``partitioned`` ones hold one folder per date."""

    folder: str
    partitioned: bool = True

    def path(self, output_dir: Path, as_of: date | None = None) -> Path:
        """The folder of one run (``as_of`` for a partitioned stage, else the stage folder)."""
        root = Path(output_dir) / self.folder
        if not self.partitioned:
            return root
        if as_of is None:
            raise ValueError(f"{self.folder}/ is partitioned by as-of date: give one")
        return partition(root, as_of)


@dataclass(frozen=True)
class Output:
    """One file of a stage's run, read and written by its suffix (Parquet, CSV, JSON, HTML)."""

    stage: Stage
    file: str

    def path(self, output_dir: Path, as_of: date | None = None) -> Path:
        """Where the file of the run ``as_of`` lives."""
        return self.stage.path(output_dir, as_of) / self.file

    def exists(self, output_dir: Path, as_of: date | None = None) -> bool:
        """Whether that run wrote this file."""
        return self.path(output_dir, as_of).exists()

    def read(self, output_dir: Path, as_of: date | None = None, **options: Any) -> Any:
        """The file as a frame (Parquet, CSV; ``options`` go to pandas) or a dict (JSON)."""
        return self.read_from(self.stage.path(output_dir, as_of), **options)

    def read_from(self, folder: Path, **options: Any) -> Any:
        """The file as it lies in ``folder`` (a run's folder, or one being written)."""
        path = Path(folder) / self.file
        if self.file.endswith(".parquet"):
            return pd.read_parquet(path, **options)
        if self.file.endswith(".csv"):
            return pd.read_csv(path, **options)
        if self.file.endswith(".json"):
            return json.loads(path.read_text())
        return path.read_text(encoding="utf-8")

    def write(self, folder: Path, value: Any) -> Path:
        """Write ``value`` (frame, dict or text) into ``folder``, usually a run being published;
        the file appears whole or not at all (written beside, then renamed)."""
        path = Path(folder) / self.file
        with storage.atomic_file(path) as scratch:
            if self.file.endswith(".parquet"):
                value.to_parquet(scratch, index=False)
            elif self.file.endswith(".csv"):
                value.to_csv(scratch, index=False)
            elif self.file.endswith(".json"):
                scratch.write_text(json.dumps(value, indent=2, default=str) + "\n")
            else:
                scratch.write_text(value, encoding="utf-8")
        return path


FEATURES = Stage("features", partitioned=False)
VALIDATION = Stage("validation", partitioned=False)
SCORES = Stage("scores")
PLANS = Stage("plans")
REPORTS = Stage("reports")
NOTIFICATIONS = Stage("notifications", partitioned=False)  # digests sent, per as-of date
CRM = Stage("crm", partitioned=False)  # plays as CRM tasks and score fields, per as-of date
CRM_PUSHED = "pushed.json"  # in the crm folder: the tasks created live so far, per CRM

# validate: a profile of every raw table
PROFILE = Output(VALIDATION, "profile.csv")
VALIDATION_SUMMARY = Output(VALIDATION, "summary.json")
# features: the point-in-time training set and its catalog of plain-words descriptions
TRAINING_SET = Output(FEATURES, "training_set.parquet")
FEATURE_CATALOG = Output(FEATURES, "catalog.csv")
# score: one partition per as-of date
SCORED = Output(SCORES, "scores.parquet")  # marks a complete scoring run
DRIVERS = Output(SCORES, "drivers.parquet")
POINTS = Output(SCORES, "points.parquet")
CHANGES = Output(SCORES, "changes.parquet")
ALERTS = Output(SCORES, "alerts.csv")
DRIFT = Output(SCORES, "drift.csv")
FORECAST = Output(SCORES, "forecast.csv")
BACKTEST = Output(SCORES, "backtest.csv")
SCORE_SUMMARY = Output(SCORES, "summary.json")
# plan: beside the scores of the same date
PLANNED = Output(PLANS, "plans.parquet")  # marks a complete plan run
PLAY_EFFECTS = Output(PLANS, "effects.parquet")
FRONTIER = Output(PLANS, "frontier.csv")
ASSIGNED = Output(PLANS, "assignments.parquet")  # every arm assigned, in the contract's shape
EXPERIMENT = Output(PLANS, "experiment.csv")  # the randomised plays' read-out per kind
ALLOCATION = Output(PLANS, "allocation.json")
PLAN_SUMMARY = Output(PLANS, "summary.json")
PLAN_EVALUATION = Output(PLANS, "evaluation.json")
# report: index.html and the account files it loads
REPORT_INDEX = Output(REPORTS, "index.html")
REPORT_ACCOUNTS = "accounts"  # the folder of account files beside index.html
REPORT_ALERTS = Output(REPORTS, "alerts.csv")  # every alert, for a spreadsheet, linked from it

# train: the MLflow run's artifacts (beside its plots/ and the registered model)
RUN_EVALUATION = "evaluation"  # artifact folder of the run's tables
RUN_PLOTS = "plots"  # artifact folder of the run's figures
RUN_LEAD_TIME = "lead_time.csv"
RUN_CALIBRATION = "calibration_by_period.csv"  # test calibration per as-of date
RUN_NRR = "nrr_by_period.csv"  # the test's forecast against realised NRR per as-of date
# the Optuna studies (resumed when the data and search settings are unchanged)
OPTUNA_STUDIES = "optuna.db"

# the runs themselves: each stage's folder holds links to them (see pipeline.io.storage)
VERSIONS = ".versions"

KEY = ["account_id", "as_of"]

_MARKERS = {SCORES: SCORED, PLANS: PLANNED, REPORTS: REPORT_INDEX}


def runs(stage: Stage, output_dir: Path, before: date | None = None) -> list[date]:
    """The as-of dates a partitioned stage has complete runs for, oldest first (optionally
    only those before a date); a folder without its marker file is one a crash left behind."""
    marker = _MARKERS[stage]
    dates = partition_dates(Path(output_dir) / stage.folder, marker.file)
    return [d for d in dates if before is None or d < before]


class MissingRun(MissingInput):
    """The run asked for (or any run at all) is not in the output folder."""


def pick_run(stage: Stage, output_dir: Path, as_of: date | None, hint: str) -> date:
    """The complete run of ``stage`` on ``as_of``, or the latest when ``as_of`` is None.

    Raises:
        MissingRun: no complete run at all, or none on ``as_of``; ``hint`` says which
            command makes one.
    """
    dates = runs(stage, output_dir)
    if not dates:
        raise MissingRun(f"no {stage.folder} runs in {Path(output_dir) / stage.folder}: {hint}")
    day = as_of or dates[-1]
    if day not in dates:
        recent = ", ".join(map(str, dates[-5:]))
        raise MissingRun(f"no {stage.folder} run on {day}; runs: {recent} ({hint})")
    return day


def latest(stage: Stage, output_dir: Path) -> date | None:
    """The most recent complete run of a partitioned stage, or None."""
    dates = runs(stage, output_dir)
    return dates[-1] if dates else None


@contextlib.contextmanager
def publish(stage: Stage, output_dir: Path, as_of: date | None = None) -> Iterator[Path]:
    """A new folder that becomes the run's folder, in one atomic step, only when the block
    succeeds (leftovers of a killed run of the stage are removed first)."""
    versions = Path(output_dir) / VERSIONS / stage.folder
    with storage.switched_directory(stage.path(output_dir, as_of), versions) as tmp:
        yield tmp


def check_writable(output_dir: Path, *stages: Stage) -> None:
    """Refuse, before any work, an ``output_dir`` where these stages' runs cannot be written.

    Raises:
        storage.OutputNotWritable: naming the path in the way (a file, an unwritable folder).
    """
    output_dir = Path(output_dir)
    folders = [output_dir]
    for stage in stages:
        if stage.partitioned:
            folders.append(output_dir / stage.folder)
        folders.append(output_dir / VERSIONS / stage.folder)
    for folder in folders:
        storage.check_writable(folder)


def plain(value: Any) -> Any:
    """A value (or a dict of them) as plain Python: NaN/NaT → None, numpy scalars → Python."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


@dataclass
class TrainingSet:
    """The training set as the features stage wrote it, typed, with its feature catalog."""

    table: pd.DataFrame
    catalog: pd.DataFrame
    features: list[str]
    fingerprint: str


def load_training_set(output_dir: Path) -> TrainingSet:
    """The features stage's output, text columns as categories, with a content fingerprint."""
    table_path, catalog_path = TRAINING_SET.path(output_dir), FEATURE_CATALOG.path(output_dir)
    for path in (table_path, catalog_path):
        if not path.exists():
            raise MissingInput(f"{path} not found: run `healthscore features` first")
    table = pd.read_parquet(table_path)
    catalog = pd.read_csv(catalog_path)
    names = catalog["name"].tolist()
    absent = [n for n in [*names, *KEY, "renewed", "arr", "contract_id", "days_to_renewal"]
              if n not in table.columns]  # fmt: skip
    if absent:
        raise InputError(f"{table_path}: columns in the catalog but not the table: {absent[:10]}")
    categorical = catalog.loc[catalog["categorical"].astype(bool), "name"].tolist()
    table = table.assign(**{c: table[c].astype("category") for c in categorical})
    digest = hashlib.sha256()
    # every value counts: a changed feature is new data (and a new Optuna study, not a resumed one)
    digest.update(
        pd.util.hash_pandas_object(table[[*KEY, "renewed", *names]], index=False).to_numpy()
    )
    digest.update(",".join(names).encode())
    return TrainingSet(table, catalog, names, digest.hexdigest()[:12])
