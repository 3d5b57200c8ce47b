"""``healthscore tasks``: a plan run's funded plays as CRM tasks, and the scores as CRM account
fields, in a neutral form and in Salesforce's and HubSpot's import shapes.

Flow: the scoring run and the plan of the date (default the latest plan) → one task per play of
every funded plan (:mod:`pipeline.io.crm`) → ``output_dir/crm/``: ``tasks_DATE.json`` and
``.csv``, ``tasks_DATE_salesforce.csv``, ``tasks_DATE_hubspot.csv`` and
``account_fields_DATE.csv``, each written whole or not at all; then, with ``tasks.push`` and
the CRM's credentials in the environment, the tasks created live in HubSpot or Salesforce
(:mod:`pipeline.io.crm_push`), never twice. Completed or declined tasks read back from the CRM
are what the interventions log is made of (README, data contract).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.config import Params
from pipeline.io import catalog, crm, crm_push, storage

log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class TasksResult:
    """Tasks written, for how many accounts, and where."""

    tasks: int
    accounts: int
    folder: Path
    pushed: crm_push.Pushed | None = None  # None: not pushed (no target or no credentials)


def run_tasks(params: Params, as_of: date | None = None, due_within_days: int = 7) -> TasksResult:
    """Write the funded plays of the plan of ``as_of`` (default the latest) as CRM tasks.

    Raises:
        MissingRun: no plan run on that date (run `healthscore plan` first).
    """
    as_of = catalog.pick_run(
        catalog.PLANS, params.output_dir, as_of, "run `healthscore plan --as-of DATE` first"
    )
    scores = catalog.SCORED.read(params.output_dir, as_of)
    plans = catalog.PLANNED.read(params.output_dir, as_of)
    task = crm.tasks(plans, scores, as_of, due_within_days)
    fields = crm.account_fields(scores)
    currency = params.report.currency
    folder = catalog.CRM.path(params.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"tasks_{as_of}"
    written = {
        f"{stem}.json": json.dumps(task.to_dict(orient="records"), indent=2, default=str),
        f"{stem}.csv": task.to_csv(index=False),
        f"{stem}_salesforce.csv": crm.crm_tasks(task, crm.SALESFORCE, currency).to_csv(index=False),
        f"{stem}_hubspot.csv": crm.crm_tasks(task, crm.HUBSPOT, currency).to_csv(index=False),
        f"account_fields_{as_of}.csv": fields.to_csv(index=False),
    }
    for name, text in written.items():
        storage.write_text_atomic(folder / name, text)
    accounts = task["account_id"].nunique()
    log.info("tasks: %d plays of %d funded plans for %s → %s", len(task), accounts, as_of, folder)
    return TasksResult(len(task), accounts, folder, _push(params, task, fields, folder))


def _push(
    params: Params, task: pd.DataFrame, fields: pd.DataFrame, folder: Path
) -> crm_push.Pushed | None:
    """The tasks created live in ``tasks.push`` when its credentials are in the environment,
    and, with ``tasks.crm_ids``, the score written onto each account's record."""
    cfg = params.tasks
    if cfg.push is None:
        return None
    secrets = crm_push.credentials(cfg.push)
    if secrets is None:
        log.warning(
            "tasks: tasks.push is %s but %s is not set: the files are written, nothing pushed",
            cfg.push, crm_push.missing(cfg.push),
        )  # fmt: skip
        return None
    pushed = crm_push.push(
        task, cfg.push, secrets, folder / catalog.CRM_PUSHED, currency=params.report.currency,
        crm_ids=cfg.crm_ids, host=cfg.hubspot_host, retries=cfg.retries,
    )  # fmt: skip
    if not cfg.crm_ids:
        log.info("tasks: account fields not pushed: tasks.crm_ids is false (no CRM record ids)")
        return pushed
    updated = crm_push.push_fields(
        fields, cfg.push, secrets, names=cfg.fields, host=cfg.hubspot_host, retries=cfg.retries
    )
    log.info("tasks: the score written onto %d accounts in %s", updated, cfg.push)
    return pushed
