"""Screenshots of a written report for the docs: the portfolio, an account page and the model
page, in headless Chromium (``make browser``), and one CSM's digest as Slack would receive it.

    python -m pipeline.lab.screenshots [--params params.yaml] [--out docs/figures]

Reads the latest report and notification payloads under ``output_dir`` (run ``make all`` first);
writes ``report-portfolio.png``, ``report-account.png``, ``report-model.png`` and
``digest.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.config import DEFAULT_PARAMS, load_params
from pipeline.io import catalog
from pipeline.lab.bench_report import CHROMIUM_FLAGS

WIDTH, HEIGHT = 1280, 900


def shoot(index: Path, out: Path, chromium: str = "/usr/bin/chromium") -> list[Path]:
    """The three pages of the report at ``index`` as PNGs in ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        tab.goto(index.resolve().as_uri())
        tab.wait_for_selector("#priority tbody tr")
        shots.append(out / "report-portfolio.png")
        tab.screenshot(path=str(shots[-1]), full_page=False)
        tab.click("#priority tbody tr >> nth=0 >> a")
        tab.wait_for_selector("#waterfall")
        shots.append(out / "report-account.png")
        tab.screenshot(path=str(shots[-1]), full_page=True)
        tab.goto(index.resolve().as_uri() + "#/model")
        tab.wait_for_selector("#model:not([hidden])")
        shots.append(out / "report-model.png")
        tab.screenshot(path=str(shots[-1]), full_page=True)
        browser.close()
    return shots


def main() -> None:
    """Screenshots of the latest report and the first digest of its run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    params = load_params(args.params)
    day = catalog.pick_run(catalog.REPORTS, params.output_dir, None, "run `make all` first")
    for shot in shoot(catalog.REPORT_INDEX.path(params.output_dir, day), args.out, args.chromium):
        sys.stdout.write(f"{shot}\n")
    payloads = sorted(catalog.NOTIFICATIONS.path(params.output_dir).glob("payloads_*.json"))
    if payloads:
        messages = json.loads(payloads[-1].read_text())
        first = max(messages.values(), key=lambda m: len(m.get("blocks", [])))
        digest = args.out / "digest.json"
        digest.write_text(json.dumps(first, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.write(f"{digest}\n")


if __name__ == "__main__":
    main()
