"""Relationships, the stakeholder footprint: contacts per persona against the footprint
expected for the segment, key personas present, departures."""

from __future__ import annotations

import pandas as pd

from features.base import (
    Engine,
    FamilyResult,
    Feature,
    discover,
    feature_maker,
    slug,
    spoken,
    sql_list,
    sql_literal,
)
from features.config import FeaturesConfig

FAMILY = "relationships"
TABLE = "contacts"


_f = feature_maker(FAMILY, "relationships")


def relationships_features(engine: Engine, cfg: FeaturesConfig) -> FamilyResult:
    """Build the footprint family; a contact who leaves at or after as_of is still there."""
    rel = cfg.relationships
    personas = discover(engine, TABLE, "persona", "created_at", vocabulary=cfg.vocabulary)
    present = "c.created_at < s.as_of AND (c.left_at IS NULL OR c.left_at >= s.as_of)"
    left = "c.left_at IS NOT NULL AND c.left_at < s.as_of"
    key = f"lower(c.persona) IN ({sql_list(rel.key_personas)})"
    per_persona = ", ".join(
        f"count(*) FILTER (WHERE {present} AND c.persona = {sql_literal(p)}) AS contacts_{slug(p)}"
        for p in personas
    )
    frame = engine.query(
        f"""
        SELECT s.account_id, s.as_of, any_value(s.segment) AS _segment,
          count(*) FILTER (WHERE {present}) AS contacts_known,
          {per_persona + "," if per_persona else ""}
          count(*) FILTER (WHERE {left} AND c.left_at >= s.since_90d) AS contacts_left_90d,
          count(*) FILTER (WHERE {left} AND {key} AND c.left_at >= s.since_180d)
            AS key_contacts_left_180d
        FROM spine s JOIN {TABLE} c ON c.account_id = s.account_id AND c.created_at < s.as_of
        GROUP BY s.account_id, s.as_of
        """
    )
    features: list[Feature] = [
        _f("contacts_known", "{value} contact{s} known at the account"),
        *(_f(f"contacts_{slug(p)}", f"{{value}} {spoken(p)} contact{{s}} known") for p in personas),
        _f("contacts_left_90d", "{value} contact{s} left in the last 90 days"),
        _f("key_contacts_left_180d",
           f"{{value}} key contact{{s}} ({', '.join(map(spoken, rel.key_personas))}) left in the "
           "last 180 days"),
    ]  # fmt: skip
    for persona in rel.key_personas:
        column = f"contacts_{slug(persona)}"
        counts = frame[column] if column in frame else pd.Series(0, index=frame.index)
        frame = frame.assign(**{f"has_{slug(persona)}": (counts > 0).astype(float)})
        features.append(
            _f(f"has_{slug(persona)}", f"a {spoken(persona)} is known: {{value:.0f}} (1 = yes)")
        )
    frame = frame.assign(footprint_gap=_footprint_gap(frame, rel.footprint))
    features.append(
        _f("footprint_gap", "{value:.0f} expected stakeholder roles have no contact", None)
    )
    vocabulary = {f"{TABLE}.persona": personas}
    return FamilyResult(FAMILY, frame.drop(columns=["_segment"]), tuple(features), vocabulary)


def _footprint_gap(frame: pd.DataFrame, footprint: dict[str, dict[str, int]]) -> pd.Series:
    """Roles short of the footprint expected for the account's segment (or the default one)."""
    gap = pd.Series(0.0, index=frame.index)
    segments = frame["_segment"].astype(object)
    for persona in {p for expected in footprint.values() for p in expected}:
        column = f"contacts_{slug(persona)}"
        have = frame[column] if column in frame else pd.Series(0, index=frame.index)
        want = segments.map(
            lambda seg, p=persona: footprint.get(seg, footprint.get("default", {})).get(p, 0)
        ).astype(float)
        gap = gap + (want - have).clip(lower=0)
    return gap
