"""Every family on hand-computed tiny data: exact values, one row per spine entry, no leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import build_feature_table
from features.spine import LABEL_COLUMNS
from tests.features.conftest import AS_OF, engine_for, spine_at, tiny_tables


@pytest.fixture
def built(cfg):
    tables = tiny_tables()
    table, catalog = build_feature_table(engine_for(tables), spine_at(), cfg, list(tables))
    return table.set_index("account_id"), catalog


def test_one_row_per_spine_entry_and_the_input_untouched(cfg):
    tables = tiny_tables()
    spine = spine_at()
    before = spine.copy()
    table, _ = build_feature_table(engine_for(tables), spine, cfg, list(tables))
    assert table[["account_id", "as_of"]].equals(spine[["account_id", "as_of"]])
    pd.testing.assert_frame_equal(spine, before)


def test_usage(built):
    a1 = built[0].loc["A1"]
    # strictly before 2025-01-01: 12-31, 12-28 (7d); + 12-10 (30d); + 11-15 (90d); 10-01 is 92
    # days back, outside every window
    assert (a1["events_7d"], a1["events_30d"], a1["events_90d"]) == (2, 3, 4)
    assert (a1["login_7d"], a1["login_30d"], a1["report_90d"]) == (1, 2, 1)
    assert a1["active_users_30d"] == 2  # u1, u2 (u9's event is at as_of, not before)
    assert a1["active_user_share_30d"] == pytest.approx(2 / 10)
    assert a1["features_used_30d"] == 2
    assert a1["key_feature_adoption_30d"] == pytest.approx(1 / 2)  # u2 used 'report'
    assert a1["days_since_last_use"] == pytest.approx(14 / 24)  # 2024-12-31 10:00
    assert a1["days_since_report"] == pytest.approx(4.0)
    # 3 events in the last 30 days against 1 in the 60 before: (3/30) / (1/60)
    assert a1["usage_trend_30v60"] == pytest.approx(6.0)
    a2 = built[0].loc["A2"]
    assert a2["events_30d"] == 0, "an account without events gets zero counts"
    assert np.isnan(a2["days_since_last_use"]), "and an unknown recency"


def test_usage_quantity_sums(built):
    a1 = built[0].loc["A1"]
    # quantities before 2025-01-01: login 3 (12-31), 0.5 (12-10), none (11-15); report 2 (12-28),
    # 5 (10-01, outside 90 days); the login at as_of carries 100 and must not count
    assert (a1["login_qty_7d"], a1["login_qty_30d"], a1["login_qty_90d"]) == (3.0, 3.5, 3.5)
    assert (a1["report_qty_7d"], a1["report_qty_30d"], a1["report_qty_90d"]) == (2.0, 2.0, 2.0)
    assert (a1["quantity_7d"], a1["quantity_30d"], a1["quantity_90d"]) == (5.0, 5.5, 5.5)
    assert a1["login_90d"] == 3, "an event without a quantity still counts"
    a2 = built[0].loc["A2"]
    assert a2["quantity_90d"] == 0 and a2["login_qty_30d"] == 0, "no events: sums are zero"


def test_usage_without_quantities_has_no_quantity_features(cfg):
    # given quantities only at or after as_of (the column is optional; absent means all null)
    tables = tiny_tables()
    events = tables["usage_events"]
    tables["usage_events"] = events.assign(quantity=events["quantity"].where(events["ts"] >= AS_OF))

    # when
    table, catalog = build_feature_table(engine_for(tables), spine_at(), cfg, list(tables))

    # then
    quantity_columns = [c for c in table.columns if "qty" in c or c.startswith("quantity_")]
    assert quantity_columns == [], "later quantities must not add columns to a snapshot"
    assert not catalog["name"].str.contains("qty|quantity").any()
    assert table.set_index("account_id").loc["A1", "events_90d"] == 4


def test_support(built):
    a1 = built[0].loc["A1"]
    assert (a1["tickets_7d"], a1["tickets_30d"], a1["tickets_90d"]) == (1, 2, 3)
    assert a1["high_priority_tickets_90d"] == 2
    assert a1["open_tickets"] == 1, "T3 closes after as_of, so it is open at as_of"
    assert a1["hours_to_close_90d"] == pytest.approx((24 + 48) / 2)
    assert a1["csat_180d"] == pytest.approx(3.0), "T3's CSAT comes after as_of"
    assert a1["days_since_ticket"] == pytest.approx(2.0)


def test_surveys(built):
    a1 = built[0].loc["A1"]
    # the 2024-12-20 answer arrives after as_of: latest known is 6 (Sept), previous 9 (June)
    assert a1["nps_latest"] == 6.0
    assert a1["nps_change"] == -3.0
    assert a1["nps_category"] == "detractor"
    assert a1["surveys_sent_365d"] == 3
    assert a1["survey_non_response_365d"] == pytest.approx(1 / 3)
    a2 = built[0].loc["A2"]
    assert a2["survey_non_response_365d"] == 1.0
    assert np.isnan(a2["nps_latest"])


def test_engagement(built):
    a1 = built[0].loc["A1"]
    assert a1["outbound_touches_30d"] == 1, "12-01 is 31 days back; only 12-30 is within 30"
    assert a1["outbound_touches_90d"] == 4
    # judged: outbound in [as_of − 97d, as_of − 7d): 12-01 yes, 11-01 no, 10-15 QBR has no flag
    assert a1["outbound_answered_share_90d"] == pytest.approx(1 / 2)
    assert a1["days_since_business_review"] == pytest.approx(78.0)
    assert a1["days_since_last_touch"] == pytest.approx(2.0)


def test_relationships(built):
    a1 = built[0].loc["A1"]
    # P1 (champion) left 2024-11-20; P2 leaves after as_of; P3 is the new champion
    assert a1["contacts_known"] == 2
    assert (a1["contacts_champion"], a1["contacts_decision_maker"]) == (1, 1)
    assert a1["contacts_left_90d"] == 1
    assert a1["key_contacts_left_180d"] == 1
    assert a1["has_champion"] == 1.0
    # default footprint: decision_maker, champion, admin, power_user → admin and power_user short
    assert a1["footprint_gap"] == 2.0


def test_sentiment_billing_opportunities_interventions(built):
    a1 = built[0].loc["A1"]
    assert (a1["csm_rating"], a1["csm_rating_change"]) == (2.0, -2.0)
    assert a1["days_since_csm_rating"] == pytest.approx(17.0)
    assert a1["overdue_invoices"] == 1, "paid after as_of: still overdue at as_of"
    assert a1["amount_overdue_usd"] == 250.0
    assert a1["days_past_due"] == pytest.approx(31.0)
    assert a1["late_invoices_365d"] == 2
    assert a1["open_expansion_usd"] == 300.0
    assert a1["expansion_won_365d_usd"] == 200.0
    a2 = built[0].loc["A2"]
    assert a2["open_expansion_usd"] == 9000.0, "closed after as_of: still open at as_of"
    assert a2["deals_lost_180d"] == 0
    assert a2["interventions_365d"] == 0, "the exec call at as_of is not history yet"
    assert (a1["exec_call_365d"], a1["training_365d"]) == (1, 1)
    assert a1["days_since_exec_call"] == pytest.approx(17.0)


def test_contract(built):
    a1 = built[0].loc["A1"]
    assert a1["arr_usd"] == 1000.0
    assert a1["seats"] == 10
    assert a1["term_months"] == 13
    assert a1["days_to_renewal"] == 30
    assert a1["prior_terms"] == 1
    assert a1["arr_change_last_renewal"] == pytest.approx(0.25)
    assert a1["tenure_days"] == pytest.approx((AS_OF - pd.Timestamp("2023-01-01")).days)
    assert str(built[0]["segment"].dtype) == "category"


def test_catalog_describes_every_feature_and_no_label(built):
    table, catalog = built
    assert set(catalog["component"]) == {
        "usage", "engagement", "support", "surveys", "sentiment", "relationships", "billing",
        "contract", "interventions",
    }  # fmt: skip
    assert not set(LABEL_COLUMNS) & set(catalog["name"]), "label-side columns are never features"
    assert not catalog["name"].duplicated().any()
    assert set(catalog["name"]) <= set(table.columns)
    assert catalog["description"].str.len().gt(5).all()


def test_missing_optional_tables_yield_no_columns_of_their_family(cfg):
    tables = {k: v for k, v in tiny_tables().items() if k in ("accounts", "contracts")}
    table, catalog = build_feature_table(engine_for(tables), spine_at(), cfg, list(tables))
    assert set(catalog["family"]) == {"contract"}
    assert "events_30d" not in table


def test_duplicate_spine_rows_are_refused(cfg):
    tables = tiny_tables()
    spine = pd.concat([spine_at(), spine_at()])
    with pytest.raises(ValueError, match="duplicate"):
        build_feature_table(engine_for(tables), spine, cfg, list(tables))
