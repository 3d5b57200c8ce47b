"""Plays pushed live into a CRM as tasks, and the scores as account fields: HubSpot
(hubspot-api-client) or Salesforce (simple-salesforce), used only when the CRM's credentials are
in the environment.

The account fields (:func:`push_fields`) update the CRM's own account records, so they need its
ids (``tasks.crm_ids``) and fields of these names in the CRM (:data:`FIELDS`: HubSpot company
properties, Salesforce custom Account fields, created once by an admin; ``tasks.fields``
renames them).

The tasks are the import shapes of :mod:`pipeline.io.crm`. Owners and accounts are sent only when
``tasks.crm_ids`` says the data's ids are the CRM's own (the accounts and CSMs were exported from
it); otherwise each task is created unassigned, the account named in its subject. Requests are
retried with backoff on connection errors, 429 and 5xx; a refusal raises :class:`CrmPushError`
with the CRM's status and answer. :func:`push` records every task it created in a ledger
(``output_dir/crm/pushed.json``) as it goes, so a re-run, or a run after a failure half way,
never creates the same task twice.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pipeline.errors import InputError
from pipeline.io import crm, storage

log = logging.getLogger("healthscore")

Target = Literal["hubspot", "salesforce"]
HUBSPOT_TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"  # a private app's access token (crm.objects scopes)
SALESFORCE_URL_ENV = "SALESFORCE_INSTANCE_URL"  # https://yourorg.my.salesforce.com
SALESFORCE_SESSION_ENV = "SALESFORCE_SESSION_ID"  # an OAuth access token or session id
HUBSPOT_BATCH = 100  # the tasks batch endpoint's limit
TASK_TO_COMPANY = 192  # HubSpot's defined association type: task → company
RETRIED = (429, 500, 502, 503, 504)


# the score as account fields: healthscore's column → the field's name in each CRM
FIELDS = {
    "hubspot": {"health": "healthscore_health", "band": "healthscore_band",
                "win_probability": "healthscore_win_probability",
                "reasons": "healthscore_top_reasons", "priority": "healthscore_priority",
                "as_of": "healthscore_as_of"},
    "salesforce": {"health": "Healthscore_Health__c", "band": "Healthscore_Band__c",
                   "win_probability": "Healthscore_Win_Probability__c",
                   "reasons": "Healthscore_Top_Reasons__c", "priority": "Healthscore_Priority__c",
                   "as_of": "Healthscore_As_Of__c"},
}  # fmt: skip


class CrmPushError(InputError):
    """The CRM refused the tasks (wrong credentials, an unknown owner or account …)."""


@dataclass(frozen=True)
class Pushed:
    """What one push did: tasks created now, tasks created by an earlier run, and where."""

    target: str
    created: int
    skipped: int
    ledger: Path


def credentials(target: Target) -> dict[str, str] | None:
    """The target's credentials from the environment; None when they are not all there."""
    names = (
        {"token": HUBSPOT_TOKEN_ENV}
        if target == "hubspot"
        else {"instance_url": SALESFORCE_URL_ENV, "session_id": SALESFORCE_SESSION_ENV}
    )
    found = {key: os.environ.get(env, "") for key, env in names.items()}
    return found if all(found.values()) else None


def missing(target: Target) -> str:
    """The environment variables a push to ``target`` needs, for a message."""
    if target == "hubspot":
        return HUBSPOT_TOKEN_ENV
    return f"{SALESFORCE_URL_ENV} and {SALESFORCE_SESSION_ENV}"


def push(
    tasks: pd.DataFrame,
    target: Target,
    secrets: dict[str, str],
    ledger: Path,
    *,
    currency: str = "$",
    crm_ids: bool = False,
    host: str | None = None,
    retries: int = 3,
    session: requests.Session | None = None,
) -> Pushed:
    """Create each task of ``tasks`` (:func:`pipeline.io.crm.tasks`) not yet in ``ledger``.

    Args:
        tasks: the neutral tasks; a task is known by its account, play and due date.
        target: ``hubspot`` or ``salesforce``.
        secrets: :func:`credentials` of the target.
        ledger: the JSON file of tasks created so far (written after every batch).
        currency: for the task's body.
        crm_ids: send the owner and account ids (they are the CRM's own).
        host: HubSpot's API host (default its public one; a proxy, a test server).
        retries: retries of a request on connection errors, 429 and 5xx.
        session: the requests session for Salesforce (its TLS settings, proxies).

    Raises:
        CrmPushError: the CRM refused a batch; the tasks created before it stay recorded.
    """
    done = _read(ledger)
    keys = _keys(tasks)
    fresh = ~keys.isin(done.get(target, {}))
    todo, todo_keys = tasks[fresh.to_numpy()], keys[fresh].tolist()
    shape = crm.HUBSPOT if target == "hubspot" else crm.SALESFORCE
    records = crm.crm_tasks(todo, shape, currency)
    if not crm_ids:
        records = records.drop(columns=[shape[3], shape[4]])  # owner, account
    send = _hubspot(secrets, host, retries) if target == "hubspot" else _salesforce(
        secrets, retries, session
    )  # fmt: skip
    created = 0
    step = HUBSPOT_BATCH if target == "hubspot" else 1
    for start in range(0, len(records), step):
        ids = send(records.iloc[start : start + step])
        done.setdefault(target, {}).update(zip(todo_keys[start : start + step], ids, strict=True))
        storage.write_text_atomic(ledger, json.dumps(done, indent=2, sort_keys=True))
        created += len(ids)
    log.info(
        "tasks: %d created in %s, %d created before (%s)",
        created, target, int((~fresh).sum()), ledger,
    )  # fmt: skip
    return Pushed(target, created, int((~fresh).sum()), ledger)


def push_fields(
    fields: pd.DataFrame,
    target: Target,
    secrets: dict[str, str],
    *,
    names: dict[str, str] | None = None,
    host: str | None = None,
    retries: int = 3,
    session: requests.Session | None = None,
) -> int:
    """Write each account's score onto its record in the CRM; returns the accounts updated.

    Args:
        fields: :func:`pipeline.io.crm.account_fields` (``account_id`` is the CRM's id).
        target: ``hubspot`` (companies) or ``salesforce`` (Accounts).
        secrets: :func:`credentials` of the target.
        names: healthscore's field → the CRM's (default :data:`FIELDS` of the target).
        host, retries, session: as for :func:`push`.

    Raises:
        CrmPushError: the CRM refused an update (an unknown id, a field that does not exist).
    """
    names = names or FIELDS[target]
    reasons = [c for c in ("top_risk_1", "top_risk_2", "top_risk_3") if c in fields]
    values = fields.assign(
        reasons=fields[reasons].apply(lambda r: "; ".join(t for t in r if isinstance(t, str)),
                                      axis=1) if reasons else "",
        win_probability=fields["win_probability"].round(3),
        as_of=pd.to_datetime(fields["as_of"]).dt.strftime("%Y-%m-%d"),
    )  # fmt: skip
    records = [
        (str(row["account_id"]), {names[k]: row[k] for k in names if k in row and pd.notna(row[k])})
        for row in values.to_dict(orient="records")
    ]
    if target == "hubspot":
        return _hubspot_fields(records, secrets, host, retries)
    return _salesforce_fields(records, secrets, retries, session)


def _hubspot_fields(
    records: list[tuple[str, dict[str, Any]]], secrets: dict[str, str], host: str | None,
    retries: int,
) -> int:  # fmt: skip
    from hubspot.crm.companies import (
        ApiException,
        BatchInputSimplePublicObjectBatchInput,
        SimplePublicObjectBatchInput,
    )

    api = _hubspot_client(secrets, host, retries).crm.companies.batch_api
    for start in range(0, len(records), HUBSPOT_BATCH):
        inputs = [
            SimplePublicObjectBatchInput(id=i, properties={k: str(v) for k, v in p.items()})
            for i, p in records[start : start + HUBSPOT_BATCH]
        ]
        try:
            api.update(BatchInputSimplePublicObjectBatchInput(inputs=inputs))
        except ApiException as exc:
            raise CrmPushError(f"HubSpot refused the account fields: {exc.status} {exc.reason}: "
                               f"{_short(exc.body)}") from None  # fmt: skip
        except Exception as exc:
            raise CrmPushError(f"HubSpot could not be reached: {exc}") from None
    return len(records)


def _salesforce_fields(
    records: list[tuple[str, dict[str, Any]]], secrets: dict[str, str], retries: int,
    session: requests.Session | None,
) -> int:  # fmt: skip
    from simple_salesforce.exceptions import SalesforceError

    api = _salesforce_api(secrets, retries, session)
    for account, values in records:
        try:
            api.Account.update(account, values)
        except SalesforceError as exc:
            raise CrmPushError(f"Salesforce refused the fields of account {account}: "
                               f"{exc.status} {_short(exc.content)}") from None  # fmt: skip
        except requests.RequestException as exc:
            raise CrmPushError(f"Salesforce could not be reached: {exc}") from None
    return len(records)


def _keys(tasks: pd.DataFrame) -> pd.Series:
    return (
        tasks["account_id"].astype(str) + "|" + tasks["play"].astype(str) + "|"
        + tasks["due"].astype(str)
    )  # fmt: skip


def _read(ledger: Path) -> dict[str, dict[str, str]]:
    return json.loads(ledger.read_text()) if ledger.exists() else {}


def _retry(retries: int) -> Retry:
    return Retry(
        total=retries, backoff_factor=0.5, status_forcelist=RETRIED, allowed_methods=None,
        raise_on_status=False,
    )  # fmt: skip


def _hubspot(
    secrets: dict[str, str], host: str | None, retries: int
) -> Callable[[pd.DataFrame], list[str]]:
    from hubspot.crm.objects.tasks import (
        ApiException,
        AssociationSpec,
        BatchInputSimplePublicObjectBatchInputForCreate,
        PublicAssociationsForObject,
        PublicObjectId,
        SimplePublicObjectBatchInputForCreate,
    )

    api = _hubspot_client(secrets, host, retries).crm.objects.tasks.batch_api
    subject, body, due, owner, account, status, priority = crm.HUBSPOT[:7]

    def one(row: dict[str, Any]) -> SimplePublicObjectBatchInputForCreate:
        properties = {
            subject: row[subject], body: row[body], status: row[status],
            priority: row[priority], due: f"{row[due]}T09:00:00Z",
        }  # fmt: skip
        if owner in row and pd.notna(row[owner]):
            properties["hubspot_owner_id"] = str(row[owner])
        links = []
        if account in row and pd.notna(row[account]):
            spec = AssociationSpec(association_category="HUBSPOT_DEFINED",
                                   association_type_id=TASK_TO_COMPANY)  # fmt: skip
            links = [PublicAssociationsForObject(to=PublicObjectId(id=str(row[account])),
                                                 types=[spec])]  # fmt: skip
        return SimplePublicObjectBatchInputForCreate(properties=properties, associations=links)

    def send(batch: pd.DataFrame) -> list[str]:
        inputs = [one(row) for row in batch.to_dict(orient="records")]
        try:
            answer = api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
        except ApiException as exc:
            raise CrmPushError(f"HubSpot refused the tasks: {exc.status} {exc.reason}: "
                               f"{_short(exc.body)}") from None  # fmt: skip
        except Exception as exc:  # connection refused after the retries, a timeout …
            raise CrmPushError(f"HubSpot could not be reached: {exc}") from None
        return [str(r.id) for r in answer.results]

    return send


def _salesforce(
    secrets: dict[str, str], retries: int, session: requests.Session | None
) -> Callable[[pd.DataFrame], list[str]]:
    from simple_salesforce.exceptions import SalesforceError

    api = _salesforce_api(secrets, retries, session)

    def send(batch: pd.DataFrame) -> list[str]:
        ids = []
        for row in batch.to_dict(orient="records"):
            fields = {k: v for k, v in row.items() if pd.notna(v)}
            try:
                answer = api.Task.create(fields)
            except SalesforceError as exc:
                raise CrmPushError(f"Salesforce refused a task: {exc.status} "
                                   f"{_short(exc.content)}") from None  # fmt: skip
            except requests.RequestException as exc:
                raise CrmPushError(f"Salesforce could not be reached: {exc}") from None
            ids.append(str(answer["id"]))
        return ids

    return send


def _hubspot_client(secrets: dict[str, str], host: str | None, retries: int) -> Any:
    from hubspot import HubSpot

    options: dict[str, Any] = {"access_token": secrets["token"], "retry": _retry(retries)}
    if host:
        options["host"] = host
    return HubSpot(**options)


def _salesforce_api(secrets: dict[str, str], retries: int, session: requests.Session | None) -> Any:
    from simple_salesforce import Salesforce

    session = session or requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=_retry(retries)))
    return Salesforce(
        instance_url=secrets["instance_url"], session_id=secrets["session_id"], session=session
    )


def _short(body: object, limit: int = 300) -> str:
    text = " ".join(str(body).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
