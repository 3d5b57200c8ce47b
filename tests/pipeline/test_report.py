"""`healthscore report` end to end on a small world, hostile CRM strings included.

The browser tests open the written report in headless Chromium (Debian's chromium, driven by
Playwright); `make test` installs it and requires them, a bare `pytest` skips them without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.base import spoken
from pipeline import stages
from pipeline.config import load_params
from pipeline.io import catalog, report_page
from pipeline.lab.bench_report import CHROMIUM_FLAGS
from pipeline.stages import report
from tests.pipeline.test_train import small

score_partition = catalog.SCORES.path

ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND = date(2026, 8, 1), date(2026, 10, 1)

# What a CRM export may hold: markup in names, quotes that close attributes, a note that tries
# to end the script element the data lives in, unicode (right-to-left override included).
HOSTILE_NAMES = [
    "<script>window.__pwned = 'name'</script><img src=x onerror=\"window.__pwned='img'\">Acme",
    '"><img src=x onerror="window.__pwned=\'attr\'">Globex',
    "Ünïcødé 株式会社 \u202e O'Brien & Sons </script><!--",
]
HOSTILE_CSM = "csm_<img src=x onerror=window.__pwned='csm'>"
HOSTILE_NOTE = "</script><img src=x onerror=window.__pwned='note'> \u2028 renewal at risk"

pytestmark = pytest.mark.slow


def _hostile_world(params) -> list[str]:
    """Give three accounts active on SECOND hostile names, a hostile CSM and hostile notes."""
    raw = params.data.raw_dir
    contracts = pd.read_parquet(raw / "contracts.parquet")
    start, end = pd.to_datetime(contracts["start_date"]), pd.to_datetime(contracts["end_date"])
    day = pd.Timestamp(SECOND)
    active = contracts.loc[(start < day) & (end > day), "account_id"]
    chosen = sorted(active.unique())[:3]
    accounts = pd.read_parquet(raw / "accounts.parquet")
    hostile = dict(zip(chosen, HOSTILE_NAMES, strict=True))
    accounts = accounts.assign(
        name=accounts["account_id"].map(hostile).fillna(accounts["name"]),
        csm_id=accounts["csm_id"].where(accounts["account_id"] != chosen[0], HOSTILE_CSM),
        csm_name=accounts["csm_name"].where(accounts["account_id"] != chosen[0], HOSTILE_CSM),
    )
    accounts.to_parquet(raw / "accounts.parquet", index=False)
    sentiment = pd.read_parquet(raw / "sentiment.parquet")
    extra = pd.DataFrame(
        {
            "account_id": chosen,
            "ts": pd.Timestamp(SECOND, tz="UTC") - pd.Timedelta(days=3),
            "rating": 2,
            "note": HOSTILE_NOTE,
        }
    )
    pd.concat([sentiment, extra], ignore_index=True).astype(sentiment.dtypes).to_parquet(
        raw / "sentiment.parquet", index=False
    )
    return chosen


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    params = load_params(ROOT / "params.yaml", small(tmp, "report.chunk_accounts=100"))
    stages.run_data(params, quiet=True)
    chosen = _hostile_world(params)
    stages.run_features(params, quiet=True)
    stages.run_train(params)
    for day in (FIRST, SECOND):
        stages.run_score(params, day)
    stages.run_plan(params, SECOND)
    result = stages.run_report(params, SECOND)
    return params, result, chosen


def listing(path: Path) -> dict:
    html = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="hs-data">(.*?)</script>', html, re.S)
    assert found, "no data element in the report"
    return json.loads(found.group(1))


def account_pages(folder: Path) -> list[dict]:
    pages = []
    for part in sorted((folder / "accounts").glob("part-*.js")):
        text = part.read_text(encoding="utf-8")
        found = re.fullmatch(r"window\.HS\.part\((\d+), (.*)\);\n", text, re.S)
        assert found, f"{part.name} is not a part call"
        assert int(found.group(1)) == int(part.stem.removeprefix("part-"))
        pages.extend(json.loads(found.group(2)))
    return pages


def report_files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def scores_of(params, day=SECOND) -> pd.DataFrame:
    frame = pd.read_parquet(score_partition(params.output_dir, day) / "scores.parquet")
    return frame.sort_values("priority").reset_index(drop=True)


def test_report_lists_every_scored_account_in_priority_order(reported):
    params, result, _ = reported
    data = listing(result.path)
    scores = scores_of(params)
    rows = pd.DataFrame(data["accounts"], columns=data["fields"])
    assert rows["id"].tolist() == scores["account_id"].tolist()
    assert rows["health"].tolist() == scores["health"].tolist()
    assert rows["priority"].tolist() == list(range(1, len(scores) + 1))
    assert rows["band"].tolist() == scores["band"].tolist()
    # the renewal in dollars beside the health, rounded to whole currency
    assert rows["renewal_arr"].tolist() == scores["expected_renewal_arr"].round().tolist()
    assert rows["growth"].tolist() == scores["expected_expansion_arr"].round().tolist()
    assert data["runs"] == [str(FIRST), str(SECOND)]
    assert result.accounts == len(scores)
    before = scores_of(params, FIRST).set_index("account_id")["health"]
    trend = rows.set_index("id")["trend"].dropna()
    assert len(trend) > 0
    expected = scores.set_index("account_id")["health"].reindex(trend.index) - before.reindex(
        trend.index
    )
    assert trend.astype(int).tolist() == expected.astype(int).tolist()


def test_each_account_page_holds_its_drivers_history_and_plays(reported):
    params, result, _ = reported
    pages = account_pages(result.path.parent)
    scores = scores_of(params)
    assert len(pages) == len(scores)
    assert result.parts == -(-len(scores) // 100)
    drivers = pd.read_parquet(score_partition(params.output_dir, SECOND) / "drivers.parquet")
    plans = pd.read_parquet(
        params.output_dir / "plans" / f"as_of={SECOND}" / "plans.parquet"
    ).set_index("account_id")
    for i in (0, len(scores) // 2, len(scores) - 1):
        account, page = scores.loc[i, "account_id"], pages[i]
        texts = set(drivers.loc[drivers["account_id"] == account, "text"])
        assert {d[0] for d in page["drivers"]} == texts
        assert page["history"][-1] == scores.loc[i, "health"]
        points = sum(v for _, v in page["components"])
        assert page["base"] + points == pytest.approx(scores.loc[i, "health"], abs=0.3)
        # the best play as people read it ("exec call" for the plan's exec_call)
        assert page["plays"]["best"] == spoken(plans.loc[account, "best_plan"])
        assert page["plays"]["funded"] == bool(plans.loc[account, "funded"])


def test_stakeholders_and_activity_come_from_before_the_date(reported):
    params, result, chosen = reported
    pages = dict(
        zip(scores_of(params)["account_id"], account_pages(result.path.parent), strict=True)
    )
    contacts = pd.read_parquet(params.data.raw_dir / "contacts.parquet")
    day = pd.Timestamp(SECOND, tz="UTC")
    for account in chosen:
        page = pages[account]
        mine = contacts[(contacts["account_id"] == account) & (contacts["created_at"] < day)]
        there = mine[mine["left_at"].isna() | (mine["left_at"] >= day)]
        personas = listing(result.path)["personas"]
        known = {p: c[0] for p, c in zip(personas, page["footprint"], strict=True) if c[0]}
        assert known == there.groupby("persona").size().to_dict()
        assert page["activity"], "no recent activity"
        assert all(a[0] < str(SECOND) for a in page["activity"])
        assert [a[0] for a in page["activity"]] == sorted(
            (a[0] for a in page["activity"]), reverse=True
        )
        assert any(a[3] == HOSTILE_NOTE for a in page["activity"])


def test_rows_at_or_after_the_date_change_nothing(reported, tmp_path):
    """Future rows, and flags set after the date, leave every file of the report unchanged."""
    params, result, _ = reported
    before = report_files(result.path.parent)
    raw = tmp_path / "raw"
    shutil.copytree(params.data.raw_dir, raw)
    day = pd.Timestamp(SECOND, tz="UTC")
    lag = pd.Timedelta(days=params.features.engagement.answer_lag_days)
    touches = pd.read_parquet(raw / "activities.parquet")
    late = (touches["ts"] >= day - lag) & touches["responded"].notna()
    assert late.any()  # answered or not is only known later
    touches.loc[late, "responded"] = ~touches.loc[late, "responded"].astype(bool)
    later = touches.head(50).assign(ts=day + pd.Timedelta(hours=1), type="email")
    pd.concat([touches, later]).to_parquet(raw / "activities.parquet", index=False)
    tickets = pd.read_parquet(raw / "support_tickets.parquet")
    still_open = tickets["closed_at"].isna() | (tickets["closed_at"] >= day)
    assert still_open.any()
    tickets.loc[still_open, "csat"] = 1.0  # CSAT comes with the close
    tickets.to_parquet(raw / "support_tickets.parquet", index=False)
    contacts = pd.read_parquet(raw / "contacts.parquet")
    staying = contacts["left_at"].isna()
    contacts.loc[staying, "left_at"] = contacts.loc[staying, "created_at"].clip(
        lower=day + pd.Timedelta(days=1)
    )
    contacts.to_parquet(raw / "contacts.parquet", index=False)
    moved = params.model_copy(update={"data": params.data.model_copy(update={"raw_dir": raw})})
    again = stages.run_report(moved, SECOND)
    after = report_files(again.path.parent)
    assert after == before


def test_the_list_shows_what_each_account_gets_this_period(reported):
    params, result, _ = reported
    data = listing(result.path)
    rows = pd.DataFrame(data["accounts"], columns=data["fields"]).set_index("id")
    plans = pd.read_parquet(params.output_dir / "plans" / f"as_of={SECOND}" / "plans.parquet")
    plans = plans.set_index("account_id").reindex(rows.index)
    # segments as people say them ("mid market"), CSMs by name where the accounts give one
    assert not rows["segment"].str.contains("_").any()
    names = scores_of(params).set_index("account_id")["csm_name"].reindex(rows.index)
    assert (rows["csm"] == names).all()
    funded = plans["arm"] == "plan"
    assert funded.any()
    # plays in words ("exec call + training"), as every page names them
    shown = plans.loc[funded, "recommended"].map(spoken).tolist()
    assert rows.loc[funded, "play"].tolist() == shown
    assert (
        rows.loc[funded, "saved"].tolist()
        == plans.loc[funded, "recommended_arr_saved"].round().astype(int).tolist()
    )
    assert rows.loc[funded, "play_note"].isna().all()
    held = plans["arm"].str.startswith("holdout")
    assert (rows.loc[held, "play_note"] == "held out").all()
    unfunded = (plans["arm"] == "ineligible") & (plans["best_plan"] != "business as usual")
    assert (rows.loc[unfunded, "play_note"] == "not funded").all()
    best = plans.loc[unfunded, "best_plan"].map(spoken).tolist()
    assert rows.loc[unfunded, "play"].tolist() == best


def test_hostile_strings_never_reach_the_html_as_markup(reported):
    _, result, _ = reported
    files = [result.path, *sorted((result.path.parent / "accounts").glob("*.js"))]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for needle in ("<script>window", "<img src=x", "\u2028"):
            assert needle not in text, f"{needle!r} unescaped in {path.name}"
    html = result.path.read_text(encoding="utf-8")
    assert html.count("<script") == 2  # the data element and the app, nothing else
    data = listing(result.path)
    names = {row[1] for row in data["accounts"]}
    assert set(HOSTILE_NAMES) <= names  # escaped in transit, intact once parsed


def test_server_side_text_is_escaped(reported, tmp_path):
    params, _, chosen = reported
    data = report.collect(params, SECOND)
    data["alerts"] = [
        {"account_id": chosen[0], "name": HOSTILE_NAMES[0], "before": 80, "health": 40,
         "band_before": "green", "band": "red", "reason": HOSTILE_NAMES[1], "arr": 1.0,
         "priority": 1}
    ]  # fmt: skip
    data["forecast"]["groups"][-1]["rows"][0]["value"] = HOSTILE_NAMES[2]
    report_page.write(data, tmp_path, 100)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__pwned" in html
    assert "&#34;&gt;&lt;img src=x" in html
    assert "O&#39;Brien &amp; Sons &lt;/script&gt;&lt;!--" in html
    assert html.count("<script") == 2


def test_a_rerun_writes_the_same_bytes(reported):
    params, result, _ = reported
    before = report_files(result.path.parent)
    again = stages.run_report(params, SECOND)
    after = report_files(again.path.parent)
    assert before == after


def test_a_failed_report_leaves_the_previous_one(reported, monkeypatch):
    params, result, _ = reported
    kept = result.path.read_bytes()

    def broken(data, folder, chunk):
        (folder / "index.html").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_page, "write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        stages.run_report(params, SECOND)
    assert result.path.read_bytes() == kept
    assert not [p for p in result.path.parent.parent.iterdir() if p.name.startswith(".")]


def test_no_scoring_run_on_the_date_is_refused(reported):
    params, _, _ = reported
    with pytest.raises(catalog.MissingRun, match="no scores run on 2026-09-01"):
        stages.run_report(params, date(2026, 9, 1))


# --- in a real browser ---------------------------------------------------------------------------

CHROMIUM = os.environ.get("HEALTHSCORE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("HEALTHSCORE_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (Debian's chromium)")
        pytest.skip("no Chromium (make browser installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, reported):
    """A tab on the report with its CSP bypassed: Playwright's waits evaluate strings, and
    without the policy what keeps hostile strings inert is the escaping alone."""
    _, result, _ = reported
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    tab, problems = _open(context, result.path.as_uri())
    yield tab, problems
    assert tab.evaluate("typeof window.__pwned") == "undefined", "a hostile string ran"
    assert (
        tab.evaluate(
            "document.querySelectorAll('[onerror],[onmouseover],img:not([src^=\"data:\"])').length"
        )
        == 0
    )
    assert problems == [], problems
    context.close()


def _open(context, url: str):
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "console",
        lambda m: (
            problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    tab.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    tab.goto(url)
    tab.wait_for_selector("body[data-ready]")
    return tab, problems


pytest_browser = pytest.mark.browser


def rows_shown(tab) -> list[dict]:
    return tab.eval_on_selector_all(
        "#priority tbody tr",
        """rows => rows.map(r => ({id: r.dataset.id,
            name: r.cells[1].textContent, health: Number(r.cells[4].textContent),
            band: r.cells[4].querySelector('.dot').className.split(' ')[1]}))""",
    )


@pytest_browser
def test_browser_opens_the_portfolio_without_errors(page, reported):
    tab, _ = page
    params, result, _ = reported
    scores = scores_of(params)
    shown = rows_shown(tab)
    assert [r["id"] for r in shown] == scores["account_id"].head(50).tolist()
    assert tab.inner_text("#count") == f"{len(scores):,} of {len(scores):,} accounts"
    pixels = tab.evaluate(
        "() => { const c = document.getElementById('bubbles');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
    )
    assert pixels > 1000, "the portfolio map drew nothing"
    shot = result.path.parent.parent / "screenshot-portfolio.png"
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


@pytest_browser
def test_browser_search_finds_a_hostile_name_as_text(page, reported):
    tab, _ = page
    _, _, chosen = reported
    tab.fill("#search", "o'brien & sons")
    tab.wait_for_function("document.querySelectorAll('#priority tbody tr').length === 1")
    shown = rows_shown(tab)
    assert shown[0]["id"] == chosen[2]
    assert shown[0]["name"] == HOSTILE_NAMES[2]
    tab.fill("#search", "<script>")
    tab.wait_for_function(
        f"document.querySelector('#priority tbody tr')?.dataset.id === {json.dumps(chosen[0])}"
    )


@pytest_browser
def test_browser_sorts_and_filters(page, reported):
    tab, _ = page
    params, _, _ = reported
    scores = scores_of(params)
    tab.click("#priority th[data-key=health]")
    ascending = [r["health"] for r in rows_shown(tab)]
    assert ascending == sorted(scores["health"])[:50]
    tab.click("#priority th[data-key=health]")
    descending = [r["health"] for r in rows_shown(tab)]
    assert descending == sorted(scores["health"], reverse=True)[:50]
    band = scores["band"].value_counts().index[-1]  # the rarest band
    tab.select_option("#f-band", band)
    shown = rows_shown(tab)
    assert {r["band"] for r in shown} == {band}
    count = int((scores["band"] == band).sum())
    assert tab.inner_text("#count") == f"{count:,} of {len(scores):,} accounts"
    csm = HOSTILE_CSM
    tab.select_option("#f-band", "")
    tab.select_option("#f-csm", csm)
    assert tab.inner_text("#count").startswith(f"{int((scores['csm_id'] == csm).sum())} of")


@pytest_browser
def test_browser_account_page_shows_its_drivers(page, reported):
    tab, _ = page
    params, result, _ = reported
    scores = scores_of(params)
    tab.click("#priority tbody tr >> nth=0 >> a")
    tab.wait_for_selector("#waterfall")
    account = scores.loc[0, "account_id"]
    drivers = pd.read_parquet(score_partition(params.output_dir, SECOND) / "drivers.parquet")
    waterfall = tab.inner_text("#waterfall")
    for text in drivers.loc[drivers["account_id"] == account, "text"]:
        assert text in waterfall
    # what the account is (its contract, size, segment) apart, after what the team can change
    mine = drivers[drivers["account_id"] == account]
    context = mine.loc[~mine["actionable"], "text"]
    assert len(context), "the first account has contract drivers"
    before, after = waterfall.split("What the account is (not for the team to change)")
    assert all(t in after for t in context)
    assert all(t in before for t in mine.loc[mine["actionable"], "text"])
    assert tab.inner_text("#account-health") == str(scores.loc[0, "health"])
    # the history chart has its y-axis: named, with health 0 and 100 and the band cuts
    spark = tab.inner_html("svg.spark")
    assert ">health<" in spark and ">0<" in spark and ">100<" in spark
    shot = result.path.parent.parent / "screenshot-account.png"
    tab.screenshot(path=str(shot), full_page=True)


@pytest_browser
def test_browser_hostile_account_page_shows_the_strings_as_text(page, reported):
    tab, _ = page
    _, result, chosen = reported
    for account, name in zip(chosen, HOSTILE_NAMES, strict=True):
        tab.goto(f"{result.path.as_uri()}#/account/{account}")
        tab.wait_for_function(
            f"document.getElementById('account-name')?.textContent === {json.dumps(name)}"
        )
        assert tab.inner_text("#account-name") == name
        assert HOSTILE_NOTE.replace("\u2028", "").split()[0] in tab.inner_text("#account")
    tab.goto(f"{result.path.as_uri()}#/model")
    tab.wait_for_selector("#model", state="visible")
    assert not tab.is_visible("#portfolio")


@pytest_browser
def test_browser_under_the_reports_own_csp_loads_account_files_and_runs_nothing_else(
    browser, reported
):
    _, result, chosen = reported
    context = browser.new_context()
    tab, problems = _open(context, f"{result.path.as_uri()}#/account/{chosen[0]}")
    tab.wait_for_selector("#waterfall")  # the account file loaded through 'strict-dynamic'
    assert tab.inner_text("#account-name") == HOSTILE_NAMES[0]
    assert tab.evaluate("typeof window.__pwned") == "undefined"
    assert problems == [], problems
    context.close()


def test_every_page_shows_its_health_inside_its_interval(reported):
    params, result, _ = reported
    pages = account_pages(result.path.parent)
    scores = scores_of(params)
    shown = pd.DataFrame([p["interval"] for p in pages], columns=["low", "high"])
    assert (shown["low"] <= scores["health"]).all() and (scores["health"] <= shown["high"]).all()


def test_each_account_page_says_why_it_might_grow(reported):
    params, result, _ = reported
    pages = account_pages(result.path.parent)
    scores = scores_of(params)
    # among what the team can change: an account whose chance to grow rests on its contract
    # alone has none to show
    shown = [p["grow"][0] if p["grow"] else None for p in pages[:20]]
    expected = [v if isinstance(v, str) else None for v in scores["top_growth_1"].head(20)]
    assert shown == expected
    assert sum(s is not None for s in shown) >= 10


def test_the_forecast_shows_net_and_gross_revenue_retention(reported):
    params, result, _ = reported
    html = result.path.read_text(encoding="utf-8")
    total = pd.read_csv(score_partition(params.output_dir, SECOND) / "forecast.csv").iloc[0]
    assert "Net revenue retention (95 %)" in html
    shown = f"{100 * total['forecast_nrr']:.0f} % ({100 * total['forecast_nrr_low']:.0f}–"
    assert shown in html


def test_the_model_page_shows_calibration_per_as_of_date(reported):
    _, result, _ = reported
    html = result.path.read_text(encoding="utf-8")
    # one row per as-of date of the run's test, in words a CS leader reads
    section = html.split("Calibration over time")[1].split("Drift against the training data")[0]
    rows = re.findall(r"<tr(?: class=\"warn\")?><td>(\d{4}-\d{2}-\d{2})</td>", section)
    assert len(rows) >= 2 and rows == sorted(rows)
    assert "Range the predictions allow" in section and "_" not in section.split("<table")[1]


def test_the_model_page_speaks_plain_words(reported):
    """Raw metric names ("arr recall top 10pct") and "median 0 days of warning" at a fixed
    p < 0.7 the book rarely crossed: the figures are named in words and lead time is measured
    on the list a team works (the riskiest 10 % on each date), saying so."""
    _, result, _ = reported
    html = result.path.read_text(encoding="utf-8")
    test = html.split("<h3>Out-of-time test</h3>")[1].split("</table>")[0]
    names = re.findall(r"<tr><td>([^<]+)</td>", test)
    assert "ROC AUC: how often a lost account scores below a renewed one (0.5 = chance)" in names
    assert not [n for n in names if "_" in n or "pct" in n], names
    assert "At risk = in the riskiest 10 % of the book on its date" in html
    assert re.search(
        r"\d+ % \(95 % interval \d+–\d+ %, of [\d,]+\) of the accounts that did not renew "
        r"were at risk in their last",
        html,
    )
    lead = html.split("Lead time: how early")[1].split("</table>")[0]
    assert "Of those not renewed, at risk" in lead and "_" not in lead


def test_the_alert_list_links_every_alert_as_a_spreadsheet_in_words(reported):
    """The list said "N more in the scoring run's alerts.csv", a file the report did not link."""
    params, result, _ = reported
    html = result.path.read_text(encoding="utf-8")
    sheet = pd.read_csv(result.path.parent / "alerts.csv")
    alerts = pd.read_csv(score_partition(params.output_dir, SECOND) / "alerts.csv")
    assert f'<a href="alerts.csv" download>All {len(alerts)} alerts' in html
    assert len(sheet) == len(alerts) > 0
    assert sheet.columns[:2].tolist() == ["Priority", "Account"]
    fell = sheet["Most fell"].dropna()
    assert len(fell) and not fell.str.contains(r"_\d+d\b|_qty_").any(), fell.head().tolist()


def test_the_funded_card_says_what_is_to_do_and_what_is_held_out(reported):
    """ "Plays funded 198" beside 184 tasks: the funded plans include the ones held out to
    measure what plays do; the card says both."""
    params, result, _ = reported
    html = result.path.read_text(encoding="utf-8")
    summary = catalog.PLAN_SUMMARY.read(params.output_dir, SECOND)
    arms = summary["arms"]
    held = sum(n for arm, n in arms.items() if arm.startswith("holdout"))
    assert arms.get("plan", 0) + held == summary["funded"]
    card = html.split('<div class="label">Plans funded</div>')[1].split("</div></div>")[0]
    assert f"{summary['funded']}</div>" in card
    assert f"{arms.get('plan', 0)} to do this period" in card
