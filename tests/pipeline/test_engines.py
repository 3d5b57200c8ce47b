"""The feature logic is written once: DuckDB and Spark (local mode) give the same table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import stages
from pipeline.config import load_params

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")
def test_duckdb_and_spark_build_the_same_training_set(tmp_path):
    pytest.importorskip("pyspark")
    base = [
        "synthetic.accounts=80",
        "synthetic.history_months=12",
        "synthetic.prehistory_months=6",
        f"data.raw_dir={tmp_path}/raw",
        f"data.oracle_dir={tmp_path}/oracle",
    ]
    stages.run_data(load_params(ROOT / "params.yaml", base), quiet=True)
    duck = stages.run_features(
        load_params(ROOT / "params.yaml", [*base, f"output_dir={tmp_path}/duck"]), quiet=True
    )
    spark = stages.run_features(
        load_params(
            ROOT / "params.yaml",
            [*base, f"output_dir={tmp_path}/spark", "features.engine=spark"],
        ),
        quiet=True,
    )
    a, b = pd.read_parquet(duck.path), pd.read_parquet(spark.path)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) > 100
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x):
            assert np.allclose(x.astype(float), y.astype(float), rtol=1e-9, equal_nan=True), column
        else:
            assert (
                x.astype(object)
                .where(x.notna(), None)
                .equals(y.astype(object).where(y.notna(), None))
            ), column


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")
def test_spark_engine_returns_empty_results_and_plain_floats():
    pytest.importorskip("pyspark")
    from pipeline.io.engines import SparkEngine

    # given a local Spark engine
    engine = SparkEngine.local(cores=2)

    # when a query matches no rows, or yields a DECIMAL literal
    empty = engine.query("SELECT CAST(NULL AS TIMESTAMP) AS ts, 1.5 AS x WHERE 1 = 0")
    decimal = engine.query("SELECT 1.5 AS x, CAST('2024-01-01' AS TIMESTAMP) AS ts")

    # then the empty result keeps its columns, and decimals come back as floats
    assert list(empty.columns) == ["ts", "x"] and len(empty) == 0
    assert decimal["x"].dtype == float and decimal["x"].iloc[0] == 1.5
