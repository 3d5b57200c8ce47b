"""The main job (``healthscore all``): the stages chained in order on the embedded default."""

from __future__ import annotations

import logging

import pandas as pd

import features
from pipeline import io
from pipeline.config import Params
from pipeline.stages import data, notify, plan, publish, report, score, tasks, train, validate
from pipeline.stages import features as features_stage
from pipeline.stages.report import ReportResult
from pipeline.stages.train import Judge

log = logging.getLogger("healthscore")


def run_all(params: Params, quiet: bool = False, judge: Judge | None = None) -> ReportResult:
    """The main job on the embedded default: data → validate → features → train → score → plan
    → report → publish → notify → tasks.

    Scores as of the day after the data ends (the synthetic world's "today"), after
    ``report.backfill_runs`` earlier periods of the feature grid so the first report already has
    trends, changes and alerts (those runs use today's model: in-sample, a demo of the history a
    nightly job builds up). With ``data.source: table`` there is no world to generate and the
    table is scored as of today, once. ``judge`` is passed to training (the lab's oracle
    comparison on the synthetic world). The digests go to ``notify.webhook_url`` when one is set
    (else they are written only: a dry run), and the funded plays become CRM task files (pushed
    live only with ``tasks.push`` and the CRM's credentials).
    """
    if params.data.source != "table":
        data.run_data(params, quiet)
    validate.run_validate(params)
    features_stage.run_features(params, quiet)
    train.run_train(params, judge=judge)
    if params.data.source == "table":
        days = [pd.Timestamp.now(tz="UTC").date()]
    else:
        with io.read_raw(params.data) as raw:
            today = pd.Timestamp(io.first_fresh_day(io.known_until(raw, params.data.cutoff)))
            first = io.data_start(raw).normalize() + pd.Timedelta(days=params.features.warmup_days)
        grid = features.as_of_grid(first, today, params.features.frequency)
        earlier = [d.date() for d in grid if d < today][-params.report.backfill_runs :]
        days = [*earlier, today.date()] if params.report.backfill_runs else [today.date()]
    for day in days:
        scored = score.run_score(params, day)
    planned = None
    if params.data.source != "table" and params.effects.enabled:
        try:
            planned = plan.run_plan(params, scored.as_of)
            log.info("all: recommendations → %s", planned.path)
        except plan.NoEffectModel as exc:
            log.warning("all: no plans: %s", exc)
    written = report.run_report(params, scored.as_of)
    publish.run_publish(params, scored.as_of)
    notify.run_notify(params, scored.as_of)
    if planned is not None:
        tasks.run_tasks(params, scored.as_of)
    log.info("all: done; open the report: %s", written.path)
    return written
