"""Plays pushed live as CRM tasks: HubSpot against a local HTTP server, Salesforce against a local
HTTPS server (a throwaway certificate authority from trustme), both speaking the CRMs' REST."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests
import trustme

from pipeline.config import load_params
from pipeline.io import crm_push
from pipeline.io.crm_push import CrmPushError
from pipeline.stages import tasks as tasks_stage
from tests.pipeline.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]

TASKS = pd.DataFrame({
    "owner": ["csm_001", "csm_002", "csm_001"],
    "owner_name": ["Ana Alvarez", "Ben Alvarez", "Ana Alvarez"],
    "account_id": ["A1", "A2", "A3"],
    "account": ["Acme", "Beta", "Cyan"],
    "play": ["exec call", "training", "training"],
    "due": ["2026-10-08", "2026-10-08", "2026-11-07"],
    "expected_lift_points": [4.2, 2.0, 1.5],
    "expected_arr_saved": [12000, 4000, 3000],
    "reason": ["34% of the seats were used in the last 30 days", None, "no meeting yet"],
    "plan": ["exec call + training", "training", "training +30d"],
})  # fmt: skip

FIELDS = pd.DataFrame({
    "account_id": ["A1", "A2"], "health": [41, 77], "band": ["red", "green"],
    "win_probability": [0.4123, 0.7712], "arr_at_risk": [5000.0, 900.0], "priority": [1, 2],
    "top_risk_1": ["34% of the seats were used in the last 30 days", None],
    "top_risk_2": ["no meeting yet", None], "top_risk_3": [None, None],
    "top_strength_1": [None, "4 champion contacts known"],
    "as_of": pd.to_datetime(["2026-10-01", "2026-10-01"]),
})  # fmt: skip


def _hubspot_answer(path, body, headers):
    assert path == "/crm/v3/objects/tasks/batch/create"
    assert headers["Authorization"] == "Bearer pat-test"
    now = "2026-10-01T09:00:00Z"
    results = [{"id": f"9{i}", "properties": b["properties"], "createdAt": now, "updatedAt": now,
                "archived": False} for i, b in enumerate(body["inputs"])]  # fmt: skip
    return 201, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}


def test_hubspot_gets_each_task_once_retried_through_a_busy_server(tmp_path):
    server = Receiver(_hubspot_answer, fail_first=1)
    ledger = tmp_path / "pushed.json"
    try:
        first = crm_push.push(TASKS, "hubspot", {"token": "pat-test"}, ledger, host=server.url)
        assert (first.created, first.skipped) == (3, 0)
        assert server.requests == 2, "one 503, retried, then one batch of three"
        sent = server.bodies[0]["inputs"]
        assert [t["properties"]["hs_task_subject"] for t in sent] == [
            "Exec call: Acme", "Training: Beta", "Training: Cyan"]  # fmt: skip
        assert sent[0]["properties"]["hs_timestamp"] == "2026-10-08T09:00:00Z"
        assert sent[0]["properties"]["hs_task_body"].startswith("Why: 34% of the seats")
        # healthscore's ids are not HubSpot's: no owner, no association unless crm_ids
        assert "hubspot_owner_id" not in sent[0]["properties"] and not sent[0]["associations"]
        # a re-run creates nothing again
        again = crm_push.push(TASKS, "hubspot", {"token": "pat-test"}, ledger, host=server.url)
        assert (again.created, again.skipped) == (0, 3) and server.requests == 2
        assert set(json.loads(ledger.read_text())["hubspot"].values()) == {"90", "91", "92"}
    finally:
        server.close()


def test_hubspot_with_the_crms_own_ids_assigns_the_owner_and_the_company(tmp_path):
    server = Receiver(_hubspot_answer)
    try:
        crm_push.push(TASKS.head(1), "hubspot", {"token": "pat-test"}, tmp_path / "p.json",
                      host=server.url, crm_ids=True)  # fmt: skip
        sent = server.bodies[0]["inputs"][0]
        assert sent["properties"]["hubspot_owner_id"] == "csm_001"
        assert sent["associations"] == [{"to": {"id": "A1"}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]}]  # fmt: skip
    finally:
        server.close()


def test_a_refusal_is_a_clear_error_and_what_was_created_stays_recorded(tmp_path):
    calls = []

    def answer(path, body, headers):
        calls.append(path)
        if len(calls) > 1:
            return 400, {"status": "error", "message": "Property values were not valid"}
        return _hubspot_answer(path, body, headers)

    server = Receiver(answer)
    ledger = tmp_path / "pushed.json"
    big = pd.concat([TASKS] * 40, ignore_index=True).assign(
        account_id=lambda f: [f"A{i}" for i in range(len(f))]
    )
    try:
        with pytest.raises(CrmPushError, match="HubSpot refused the tasks: 400"):
            crm_push.push(big, "hubspot", {"token": "pat-test"}, ledger, host=server.url)
    finally:
        server.close()
    assert len(json.loads(ledger.read_text())["hubspot"]) == 100, "the first batch stays"


def test_salesforce_gets_one_task_record_each_over_https(tmp_path):
    ca = trustme.CA()

    def answer(path, body, headers):
        assert path.startswith("/services/data/v") and path.endswith("/sobjects/Task/")
        assert headers["Authorization"] == "Bearer 00Dsession"
        return 201, {"id": f"00T{len(server.bodies)}", "success": True, "errors": []}

    server = Receiver(answer, fail_first=1, tls=ca)
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the test's authority
    with ca.cert_pem.tempfile() as bundle:
        session.verify = bundle
        try:
            pushed = crm_push.push(
                TASKS, "salesforce",
                {"instance_url": server.url, "session_id": "00Dsession"},
                tmp_path / "pushed.json", session=session,
            )  # fmt: skip
        finally:
            server.close()
    assert pushed.created == 3 and server.requests == 4, "one 503 retried, then one per task"
    first = server.bodies[0]
    assert first["Subject"] == "Exec call: Acme" and first["ActivityDate"] == "2026-10-08"
    assert first["Status"] == "Not Started" and "OwnerId" not in first and "WhatId" not in first


def test_tasks_push_waits_for_credentials(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(crm_push.HUBSPOT_TOKEN_ENV, raising=False)
    params = load_params(ROOT / "params.yaml", ["tasks.push=hubspot", f"output_dir={tmp_path}"])
    assert tasks_stage._push(params, TASKS, FIELDS, tmp_path) is None
    assert "HUBSPOT_ACCESS_TOKEN is not set" in caplog.text
    assert not (tmp_path / "pushed.json").exists()
    # without a target nothing is pushed, credentials or not
    monkeypatch.setenv(crm_push.HUBSPOT_TOKEN_ENV, "pat-test")
    plain = load_params(ROOT / "params.yaml", [f"output_dir={tmp_path}"])
    assert tasks_stage._push(plain, TASKS, FIELDS, tmp_path) is None


def test_the_score_is_written_onto_each_account_in_hubspot(tmp_path):
    def answer(path, body, headers):
        assert path == "/crm/v3/objects/companies/batch/update"
        now = "2026-10-01T09:00:00Z"
        results = [{"id": i["id"], "properties": i["properties"], "createdAt": now,
                    "updatedAt": now, "archived": False} for i in body["inputs"]]  # fmt: skip
        return 200, {"status": "COMPLETE", "results": results, "startedAt": now,
                     "completedAt": now}  # fmt: skip

    server = Receiver(answer)
    try:
        updated = crm_push.push_fields(FIELDS, "hubspot", {"token": "pat-test"}, host=server.url)
    finally:
        server.close()
    assert updated == 2
    first = server.bodies[0]["inputs"][0]
    assert first["id"] == "A1"
    assert first["properties"] == {
        "healthscore_health": "41", "healthscore_band": "red",
        "healthscore_win_probability": "0.412",
        "healthscore_top_reasons": "34% of the seats were used in the last 30 days; no meeting yet",
        "healthscore_priority": "1", "healthscore_as_of": "2026-10-01",
    }  # fmt: skip


def test_the_score_is_written_onto_each_salesforce_account_and_a_missing_field_is_named():
    ca = trustme.CA()
    seen = []

    def answer(path, body, headers):
        seen.append(path)
        if path.endswith("/A2"):
            return 400, [{"message": "No such column 'Healthscore_Band__c' on sobject of type "
                                     "Account", "errorCode": "INVALID_FIELD"}]  # fmt: skip
        return 204, ""

    server = Receiver(answer, tls=ca)
    session = requests.Session()
    session.trust_env = False
    with ca.cert_pem.tempfile() as bundle:
        session.verify = bundle
        try:
            secrets = {"instance_url": server.url, "session_id": "00Dsession"}
            with pytest.raises(CrmPushError, match=r"account A2: 400 .*Healthscore_Band__c"):
                crm_push.push_fields(FIELDS, "salesforce", secrets, session=session)
        finally:
            server.close()
    assert seen[0].endswith("/sobjects/Account/A1")
    assert server.bodies[0]["Healthscore_Health__c"] == 41


def test_tasks_with_credentials_and_the_crms_ids_push_tasks_and_fields(tmp_path, monkeypatch):
    now = "2026-10-01T09:00:00Z"

    def answer(path, body, headers):
        if path.endswith("/tasks/batch/create"):
            return _hubspot_answer(path, body, headers)
        results = [{"id": i["id"], "properties": {}, "createdAt": now, "updatedAt": now,
                    "archived": False} for i in body["inputs"]]  # fmt: skip
        return 200, {"status": "COMPLETE", "results": results, "startedAt": now,
                     "completedAt": now}  # fmt: skip

    server = Receiver(answer)
    monkeypatch.setenv(crm_push.HUBSPOT_TOKEN_ENV, "pat-test")
    overrides = ["tasks.push=hubspot", "tasks.crm_ids=true", f"tasks.hubspot_host={server.url}",
                 f"output_dir={tmp_path}"]  # fmt: skip
    try:
        pushed = tasks_stage._push(load_params(ROOT / "params.yaml", overrides), TASKS, FIELDS,
                                   tmp_path)  # fmt: skip
    finally:
        server.close()
    assert pushed is not None and pushed.created == 3
    assert [len(b["inputs"]) for b in server.bodies] == [3, 2], "the tasks, then the fields"
