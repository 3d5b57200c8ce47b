"""Pure feature builders: contract tables in, a point-in-time feature frame out (no I/O)."""

from features.build import FAMILIES, build_feature_table, catalog_vocabulary, families_for
from features.prebuilt import (
    PrebuiltSet,
    latest_snapshots,
    prebuilt_scoring_set,
    prebuilt_training_set,
)
from features.spine import (
    as_of_grid,
    contract_outcomes,
    make_scoring_spine,
    make_training_spine,
)

__all__ = [
    "FAMILIES",
    "PrebuiltSet",
    "as_of_grid",
    "build_feature_table",
    "catalog_vocabulary",
    "contract_outcomes",
    "families_for",
    "latest_snapshots",
    "make_scoring_spine",
    "make_training_spine",
    "prebuilt_scoring_set",
    "prebuilt_training_set",
]
