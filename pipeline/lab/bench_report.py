"""``healthscore bench --report-accounts N``: the report's size and speed at N accounts.

The latest scoring run's report data is repeated, with fresh account ids, up to N accounts and
written like a real report; then headless Chromium opens it and times what a CS leader does:
the first paint of the priority list and the map, a search, a sort, a band filter, and opening
an account page. Prints the figures; needs Debian's Chromium (``make browser``).
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.io import catalog, report_page
from pipeline.stages import report

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def scaled(data: dict[str, Any], accounts: int) -> dict[str, Any]:
    """The report data repeated to ``accounts`` rows, ids made unique, priority kept unique."""
    out = copy.copy(data)
    base_rows, base_pages = data["accounts"], data["details"]
    rows, pages = [], []
    for i in range(accounts):
        row = list(base_rows[i % len(base_rows)])
        copy_no = i // len(base_rows)
        if copy_no:
            row[0] = f"{row[0]}-{copy_no}"
            row[1] = f"{row[1]} {copy_no}" if row[1] else row[1]
        row[report.ACCOUNT_FIELDS.index("priority")] = i + 1
        rows.append(row)
        pages.append(base_pages[i % len(base_pages)])
    out["accounts"], out["details"] = rows, pages
    return out


def run(params: Params, accounts: list[int], chromium: str, rounds: int = 3) -> list[dict]:
    """Write and open the report at each size; returns one row of figures per size."""
    from playwright.sync_api import sync_playwright

    runs = catalog.runs(catalog.SCORES, params.output_dir)
    if not runs:
        raise catalog.MissingRun("no scoring run to scale: run `healthscore score` first")
    data = report.collect(params, runs[-1])
    figures = []
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="hs-bench-report-") as tmp:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        for n in accounts:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            started = time.perf_counter()
            report_page.write(scaled(data, n), folder, params.report.chunk_accounts)
            written = time.perf_counter() - started
            sizes = [f.stat().st_size for f in folder.rglob("*") if f.is_file()]
            timings: dict[str, list[float]] = {}
            for _ in range(rounds):
                for step, seconds in _session(browser, folder / catalog.REPORT_INDEX.file).items():
                    timings.setdefault(step, []).append(seconds)
            figures.append(
                {
                    "accounts": n,
                    "write_s": written,
                    "index_mb": (folder / catalog.REPORT_INDEX.file).stat().st_size / 1e6,
                    "all_mb": sum(sizes) / 1e6,
                    **{f"{k}_ms": 1000 * statistics.median(v) for k, v in timings.items()},
                }
            )
        browser.close()
    return figures


def _session(browser: Any, index: Path) -> dict[str, float]:
    """One fresh tab: seconds per user step, each until the page shows its result."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    tab = context.new_page()
    out = {}
    started = time.perf_counter()
    tab.goto(index.as_uri())
    tab.wait_for_selector("body[data-ready]")
    tab.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    out["open"] = time.perf_counter() - started
    # each step from the whole list: sort, a band filter (then cleared), a search
    out["sort"] = _timed(
        tab, "() => document.querySelector('#priority th[data-key=at_risk]').click()", "true"
    )
    out["filter"] = _timed(tab, _select("f-band", "red"), "true")
    tab.evaluate(_select("f-band", ""))
    out["search"] = _timed(
        tab,
        "() => { const s = document.getElementById('search'); s.value = 'labs';"
        " s.dispatchEvent(new Event('input')); }",
        "document.getElementById('count').textContent !== window.__before",
        settle_ms=120,  # the search box waits 120 ms after the last keystroke
    )
    started = time.perf_counter()
    tab.click("#priority tbody tr >> nth=0 >> a")
    tab.wait_for_selector("#waterfall")
    out["account"] = time.perf_counter() - started
    context.close()
    return out


def _select(element: str, value: str) -> str:
    return (
        f"() => {{ const s = document.getElementById('{element}'); s.value = '{value}';"
        " s.dispatchEvent(new Event('change')); }"
    )


def _timed(tab: Any, action: str, done: str, settle_ms: int = 0) -> float:
    """Seconds from an action to the next painted frame after ``done`` holds (minus debounce)."""
    tab.evaluate("() => { window.__before = document.getElementById('count').textContent; }")
    started = time.perf_counter()
    tab.evaluate(action)
    tab.wait_for_function(done, polling="raf")
    tab.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    return time.perf_counter() - started - settle_ms / 1000


def render(figures: list[dict]) -> str:
    """The figures as a Markdown table, one row per report size (as in docs/performance.md)."""
    lines = [
        "accounts | write | index.html | with account files | open | search | sort | band filter"
        " | account page",
        "--- | --- | --- | --- | --- | --- | --- | --- | ---",
    ]
    for f in figures:
        lines.append(
            f"{f['accounts']:,} | {f['write_s']:.1f} s | {f['index_mb']:.1f} MB | "
            f"{f['all_mb']:.0f} MB | {f['open_ms']:.0f} ms | {f['search_ms']:.0f} ms | "
            f"{f['sort_ms']:.0f} ms | {f['filter_ms']:.0f} ms | {f['account_ms']:.0f} ms"
        )
    return "\n".join(lines)
