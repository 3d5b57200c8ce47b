"""The edge: raw tables read and validated against the data contract, the catalog of outputs,
atomic storage, feature engines, and the model registry (MLflow).

``from pipeline import io`` gives the raw-table reader: ``io.read_raw``, ``io.RawData``,
``io.DataContractError``, ``io.data_start`` / ``io.data_end``, ``io.profile``,
``io.read_prebuilt``; the other concerns are modules of their own (``pipeline.io.catalog``,
``pipeline.io.registry``, ``pipeline.io.engines``, ``pipeline.io.storage``).
"""

from pipeline.io.raw import (
    DataContractError,
    RawData,
    data_end,
    data_start,
    first_fresh_day,
    known_until,
    profile,
    read_prebuilt,
    read_raw,
)

__all__ = [
    "DataContractError",
    "RawData",
    "data_end",
    "data_start",
    "first_fresh_day",
    "known_until",
    "profile",
    "read_prebuilt",
    "read_raw",
]
