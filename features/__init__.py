"""Pure feature builders: contract tables in, a point-in-time feature frame out (no I/O).

The names below load their module on first use (PEP 562), so importing ``features.config``
(what the CLI needs to read params) does not load pandas and the builders.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "FAMILIES": "features.build",
    "build_feature_table": "features.build",
    "catalog_vocabulary": "features.build",
    "families_for": "features.build",
    "PrebuiltSet": "features.prebuilt",
    "latest_snapshots": "features.prebuilt",
    "prebuilt_scoring_set": "features.prebuilt",
    "prebuilt_training_set": "features.prebuilt",
    "as_of_grid": "features.spine",
    "contract_outcomes": "features.spine",
    "make_scoring_spine": "features.spine",
    "make_training_spine": "features.spine",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
