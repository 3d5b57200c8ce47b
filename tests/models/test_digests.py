"""Each CSM's digest: their alerted accounts by priority, reasons in words, the play."""

from __future__ import annotations

import pandas as pd

from models.scoring.digests import csm_digests


def test_one_digest_per_csm_most_urgent_first_capped_with_a_count():
    scores = pd.DataFrame({
        "account_id": ["a", "b", "c", "d"], "priority": [3, 1, 2, 4],
        "name": ["Acme", None, "Cyan <script>", "Delta"], "csm_id": ["x", "x", "x", None],
        "top_risk_1": ["41 days since anyone used the product", None, "3 open tickets", "r"],
        "top_risk_2": [None, None, "NPS fell to 2", None],
    })  # fmt: skip
    alerts = pd.DataFrame({
        "account_id": ["a", "b", "c", "d"], "health": [40, 60, 30, 70],
        "health_previous": [55, 72, None, 80], "band": ["red", "yellow", "red", "yellow"],
        "band_previous": ["yellow", "green", None, "green"], "reason": ["dropped"] * 4,
        "priority": [3, 1, 2, 4], "arr": [1.0] * 4,
    })  # fmt: skip
    plans = pd.DataFrame({"account_id": ["a", "c"], "recommended": ["exec_call + training", None],
                          "best_plan": ["exec_call + training", "business as usual"]})  # fmt: skip
    digests = {d.csm_id: d for d in csm_digests(scores, alerts, plans, "2026-10-01", 2)}
    assert set(digests) == {"x", "(no CSM)"}
    x = digests["x"].accounts
    # by priority, at most two, the rest counted; a missing name reads as the id
    assert [a["account_id"] for a in x] == ["b", "c"] and x[0]["more"] == 1
    assert x[0]["name"] == "b" and x[1]["name"] == "Cyan <script>"
    assert x[1]["reasons"] == ["3 open tickets", "NPS fell to 2"]
    assert x[1]["health_previous"] is None and x[0]["health_previous"] == 72
    # "business as usual" is no play; a plan reads in words
    assert x[1]["play"] is None
    a = csm_digests(scores, alerts, plans, "2026-10-01", 10)[1].accounts
    assert [r["play"] for r in a if r["account_id"] == "a"] == ["exec call + training"]
    assert csm_digests(scores, alerts.iloc[0:0], plans, "2026-10-01") == []


def test_the_slack_message_escapes_names_and_reads_in_words():
    from models.scoring.digests import Digest
    from pipeline.io.notify import payload

    digest = Digest("x", "2026-10-01", [{
        "account_id": "c", "name": "Cyan <!channel>", "health": 30, "health_previous": 45,
        "band": "red", "band_previous": "yellow", "reason": "dropped",
        "reasons": ["3 open tickets"], "play": "exec call",
    }])  # fmt: skip
    message = payload(digest, "slack")
    body = message["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body
    assert "health 45 → 30 (yellow → red)" in body and "Recommended: exec call" in body
    assert payload(digest, "json")["accounts"][0]["name"] == "Cyan <!channel>"


def test_a_digest_greets_its_csm_by_name_where_the_accounts_table_gives_one():
    """Digests named CSMs only by id ("Health alerts for csm_007")."""
    from pipeline.io.notify import payload

    scores = pd.DataFrame({
        "account_id": ["a", "b"], "priority": [1, 2], "name": ["Acme", "Beta"],
        "csm_id": ["csm_007", "csm_009"], "csm_name": ["Hugo Brennan", None],
    })  # fmt: skip
    alerts = pd.DataFrame({
        "account_id": ["a", "b"], "health": [40, 50], "health_previous": [60, 70],
        "band": ["red", "red"], "band_previous": ["yellow", "yellow"], "reason": ["dropped"] * 2,
    })  # fmt: skip
    digests = {d.csm_id: d for d in csm_digests(scores, alerts, None, "2026-10-01")}
    assert digests["csm_007"].csm_name == "Hugo Brennan"
    assert payload(digests["csm_007"], "slack")["text"].startswith("Health alerts for Hugo Brennan")
    assert digests["csm_009"].csm_name is None, "no name: the id, as before"
    assert payload(digests["csm_009"], "slack")["text"].startswith("Health alerts for csm_009")
