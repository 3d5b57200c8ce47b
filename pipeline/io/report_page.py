"""The report's files, rendered from what :func:`pipeline.stages.report.collect` gathered.

- ``index.html``: the portfolio, account and model pages from ``report_assets/report.html.j2``,
  with the stylesheet and the app script inlined (nothing is fetched when it opens);
- ``accounts/part-NNNN.js``: the account pages' data, ``chunk_accounts`` accounts a file, in
  priority order;
- ``alerts.csv``: the alert list as people read it in a spreadsheet.

Text goes into the page through Jinja's autoescape, and data for the scripts as JSON that no
value can break out of (:func:`script_json`).
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline.io import catalog

ASSETS = "report_assets"  # the template, stylesheet and script, beside this module
_JS_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def write(data: dict[str, Any], folder: Path, chunk_accounts: int) -> int:
    """``index.html`` and the account files into ``folder``; returns the account files' count."""
    details = data["details"]
    parts = max(1, math.ceil(len(details) / chunk_accounts))
    (folder / catalog.REPORT_ACCOUNTS).mkdir()
    for part in range(parts):
        chunk = details[part * chunk_accounts : (part + 1) * chunk_accounts]
        (folder / catalog.REPORT_ACCOUNTS / f"part-{part:04d}.js").write_text(
            f"window.HS.part({part}, {script_json(chunk)});\n", encoding="utf-8"
        )
    listing = {
        "as_of": data["as_of"],
        "currency": data["currency"],
        "page_rows": data["page_rows"],
        "bands": data["bands"],
        "runs": data["runs"],
        "fields": data["fields"],
        "accounts": data["accounts"],
        "chunk": chunk_accounts,
        "personas": data["personas"],
        "version": data["model"]["version"],
    }
    listing_json = script_json(listing)
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            data=data,
            listing=listing_json,
            # the app script's nonce: with 'strict-dynamic' only it (and the account files it
            # loads) may run; derived from the data so a re-run writes the same bytes
            nonce=hashlib.sha256(listing_json.encode()).hexdigest()[:32],
            css=_asset("report.css"),
            js=_asset("report.js"),
            money=lambda v: money(v, data["currency"]),
        )
    )
    catalog.REPORT_INDEX.write(folder, html)
    if data["alerts"]:
        catalog.REPORT_ALERTS.write(folder, _alert_sheet(data["alerts"]))
    return parts


def _alert_sheet(alerts: list[dict[str, Any]]) -> pd.DataFrame:
    """The alert list as people read it in a spreadsheet: names and words, no ids alone."""
    frame = pd.DataFrame(alerts)
    return pd.DataFrame(
        {
            "Priority": frame["priority"],
            "Account": frame["name"],
            "Account id": frame["account_id"],
            "Health before": frame["before"],
            "Health": frame["health"],
            "Band before": frame["band_before"],
            "Band": frame["band"],
            "Why": frame["reason"],
            "Most fell": frame.get("fell"),
            "ARR": frame["arr"].round(0),
        }
    )


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element or a ``.js`` file: no ``</script>``, no ``<!--``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in _JS_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def money(value: float | None, currency: str = "") -> str:
    """``1234567`` → ``$1.2M``; ``None`` → ``–``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{'-' if value < 0 else ''}{currency}{size / limit:.1f}{suffix}"
    return f"{'-' if value < 0 else ''}{currency}{size:,.0f}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.io", ASSETS),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, d=1: "–" if v is None else f"{100 * v:.{d}f}%"
    env.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    return env


def _asset(name: str) -> str:
    return resources.files("pipeline.io").joinpath(ASSETS, name).read_text(encoding="utf-8")
