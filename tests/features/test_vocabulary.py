"""The columns a model was trained on are built again at scoring, whatever the data added since."""

from __future__ import annotations

from features import build_feature_table, catalog_vocabulary
from pipeline.shared.asof import pinned_features
from tests.features.conftest import engine_for, spine_at, tiny_tables


def test_the_catalog_records_what_was_discovered(cfg):
    tables = tiny_tables()
    _, catalog = build_feature_table(engine_for(tables), spine_at(), cfg, list(tables))
    vocabulary = catalog_vocabulary(catalog)
    assert vocabulary["interventions.type"] == ["exec_call", "training"]
    assert sorted(vocabulary["contacts.persona"]) == ["admin", "champion", "decision_maker"]
    assert sorted(vocabulary["usage_events.event_type"]) == ["login", "report"]
    assert vocabulary["usage.key_event_types"] == ["report"]  # as the fixture params name them


def test_a_pinned_vocabulary_builds_exactly_the_trained_columns(cfg):
    # given the catalog of a training build
    tables = tiny_tables()
    _, trained = build_feature_table(engine_for(tables), spine_at(), cfg, list(tables))
    # when a new intervention kind and persona appear and an old kind vanishes
    later = tiny_tables()
    later["interventions"] = later["interventions"].assign(type=["exec_call", "webinar", "webinar"])
    later["contacts"] = later["contacts"].assign(persona=["champion", "cfo", "champion", "admin"])
    later["usage_events"] = later["usage_events"].assign(event_type="login", quantity=None)
    pinned = pinned_features(cfg, trained)
    table, catalog = build_feature_table(engine_for(later), spine_at(), pinned, list(later))
    # then the same columns are built: the vanished kind counts 0, the new ones add nothing
    assert catalog["name"].tolist() == trained["name"].tolist()
    assert table["training_365d"].eq(0).all()
    assert table["report_90d"].eq(0).all()
    assert table["quantity_30d"].eq(0).all(), "quantities gone: the sums stay, at 0"
    assert not any("webinar" in c or "cfo" in c for c in table.columns)
    unpinned, _ = build_feature_table(engine_for(later), spine_at(), cfg, list(later))
    assert "webinar_365d" in unpinned.columns, "without pinning the data decides"
