"""``healthscore notify``: each CSM's digest of a scoring run's alerts, to Slack or a webhook.

Flow: the scoring partition of the date (default the latest) → its alerts, scores and plan →
one digest per CSM (:func:`models.scoring.digests.csm_digests`) → every payload written to
``output_dir/notifications/`` → sent to ``notify.webhook_url`` (none: a dry run), each recorded
in the date's ledger as soon as it went out, so a re-run never sends the same digest twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from models.scoring.digests import csm_digests
from pipeline.config import Params
from pipeline.io import catalog, notify, storage

log = logging.getLogger("healthscore")


@dataclass(frozen=True)
class NotifyResult:
    """Digests built, sent now, already sent before (skipped), and where the payloads are."""

    digests: int
    sent: int
    skipped: int
    payloads: Path
    dry_run: bool


def run_notify(params: Params, as_of: date | None = None, dry_run: bool = False) -> NotifyResult:
    """Build and send the digests of the scoring run of ``as_of`` (default the latest).

    Raises:
        MissingRun: no scoring run on that date.
        WebhookError: the webhook refused a digest after the retries (those sent before it
            stay recorded: a re-run sends only the rest).
    """
    as_of = catalog.pick_run(
        catalog.SCORES, params.output_dir, as_of, "run `healthscore score --as-of DATE` first"
    )
    folder = catalog.SCORES.path(params.output_dir, as_of)
    alerts_path = folder / catalog.ALERTS.file
    alerts = catalog.ALERTS.read_from(folder) if alerts_path.exists() else pd.DataFrame()
    plans = (
        catalog.PLANNED.read(params.output_dir, as_of)
        if catalog.PLANNED.exists(params.output_dir, as_of)
        else None
    )
    cfg = params.notify
    digests = csm_digests(
        catalog.SCORED.read_from(folder), alerts, plans, str(as_of), cfg.max_accounts
    )
    messages = {d.csm_id: notify.payload(d, cfg.style, params.report.currency) for d in digests}
    out = catalog.NOTIFICATIONS.path(params.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    payloads = out / f"payloads_{as_of}.json"
    _write_json(payloads, messages)
    dry_run = dry_run or not cfg.webhook_url
    if dry_run:
        log.info("notify: dry run: %d digests written to %s, none sent", len(messages), payloads)
        return NotifyResult(len(messages), 0, 0, payloads, True)
    ledger_path = out / f"sent_{as_of}.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    sent = skipped = 0
    for digest in digests:
        if digest.csm_id in ledger:
            skipped += 1
            continue
        notify.send(cfg.webhook_url, messages[digest.csm_id], cfg.timeout_s, cfg.retries)
        ledger[digest.csm_id] = {"accounts": [a["account_id"] for a in digest.accounts]}
        _write_json(ledger_path, ledger)  # recorded at once: a failure later never resends it
        sent += 1
    log.info(
        "notify: %d digests for %s: %d sent, %d already sent before", len(messages), as_of, sent,
        skipped,
    )  # fmt: skip
    return NotifyResult(len(messages), sent, skipped, payloads, False)


def _write_json(path: Path, value: object) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"
    storage.write_text_atomic(path, text)
