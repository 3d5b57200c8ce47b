"""Digests out: Slack's incoming-webhook JSON (or plain JSON for any webhook), sent with
slack-sdk's webhook client, which retries connection errors, rate limits and server errors
with backoff."""

from __future__ import annotations

from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from models.scoring.digests import Digest
from pipeline.errors import InputError


class WebhookError(InputError):
    """The webhook refused a digest after the retries (wrong URL, revoked token …)."""


def payload(digest: Digest, style: str, currency: str = "$") -> dict[str, Any]:
    """The message of one digest: Slack blocks (``style="slack"``) or the digest as JSON."""
    if style == "json":
        return {"as_of": digest.as_of, "csm_id": digest.csm_id, "csm_name": digest.csm_name,
                "accounts": digest.accounts}  # fmt: skip
    title = (
        f"Health alerts for {_escape(digest.csm_name or digest.csm_id)} as of {digest.as_of}: "
        f"{len(digest.accounts)} account{'s' if len(digest.accounts) != 1 else ''}"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    for account in digest.accounts:
        before = account["health_previous"]
        change = f"{before} → {account['health']}" if before is not None else account["health"]
        band = account["band"]
        if account["band_previous"] and account["band_previous"] != band:
            band = f"{account['band_previous']} → {band}"
        lines = [f"*{_escape(account['name'])}*: health {change} ({band})"]
        lines += [f"• {_escape(t)}" for t in account["reasons"]]
        if account["play"]:
            lines.append(f"Recommended: {_escape(account['play'])}")
        if account.get("more"):
            lines.append(f"_and {account['more']} more in the report_")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    return {"text": title, "blocks": blocks[:50]}  # Slack takes at most 50 blocks


def send(url: str, message: dict[str, Any], timeout_s: int = 10, retries: int = 3) -> None:
    """POST one message; retried with backoff on connection errors, 429 and 5xx.

    Raises:
        WebhookError: the webhook still refuses it, with its status and answer.
    """
    handlers = [
        ConnectionErrorRetryHandler(max_retry_count=retries),
        RateLimitErrorRetryHandler(max_retry_count=retries),
        ServerErrorRetryHandler(max_retry_count=retries),
    ]
    client = WebhookClient(url, timeout=timeout_s, retry_handlers=handlers)
    response = client.send_dict(message)
    if response.status_code >= 300:
        raise WebhookError(
            f"the webhook answered {response.status_code} ({str(response.body)[:200]!r}) after "
            f"{retries} retries: check notify.webhook_url (or HEALTHSCORE_WEBHOOK_URL)"
        )


def _escape(text: object) -> str:
    """Slack's mrkdwn control characters as entities: a name never becomes a link or a
    mention."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
