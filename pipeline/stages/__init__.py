"""The stages, one module each: data → validate → features → train → score → plan → report,
explain, recalibrate,
publish, notify and
tasks. A stage reads and writes through ``pipeline.io`` and calls pure code in
``features`` and ``models``; it never imports another stage or the lab."""

from pipeline.stages.data import run_data
from pipeline.stages.features import run_features
from pipeline.stages.notify import run_notify
from pipeline.stages.plan import run_plan
from pipeline.stages.publish import run_publish
from pipeline.stages.recalibrate import run_recalibrate
from pipeline.stages.report import run_report
from pipeline.stages.score import run_score
from pipeline.stages.tasks import run_tasks
from pipeline.stages.train import run_train
from pipeline.stages.validate import run_validate

__all__ = [
    "run_data",
    "run_features",
    "run_notify",
    "run_plan",
    "run_publish",
    "run_recalibrate",
    "run_report",
    "run_score",
    "run_tasks",
    "run_train",
    "run_validate",
]
