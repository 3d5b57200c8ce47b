"""Engines the feature families run on. DuckDB (embedded, out of core) is the default."""

from __future__ import annotations

import os
import sys
import warnings
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.io.raw import RawData


class DuckDBEngine:
    """Runs family SQL on a DuckDB connection that holds the contract tables as views."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, threads: int | None = None) -> None:
        self.connection = connection
        if threads:
            connection.execute(f"SET threads = {int(threads)}")

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make ``frame`` queryable as the view ``name`` (DuckDB reads it in place, no copy)."""
        self.connection.register(name, frame)

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql``; its result as pandas, an empty frame for a statement that returns none."""
        result = self.connection.execute(sql)
        if result.description is None:
            return pd.DataFrame()
        return result.df()


class SparkEngine:
    """Runs the same family SQL on Spark: DuckDB-dialect SQL transpiled by sqlglot.

    For data that outgrows one machine. Locally (``local[2]``) it is slower than DuckDB; its
    worth is that the identical feature logic runs on a cluster.
    """

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    @classmethod
    def local(cls, cores: int = 2) -> SparkEngine:
        """A local Spark session (UTC, quiet, small shuffles) for CI and one-box runs."""
        from pyspark.sql import SparkSession

        # Python UDFs (scoring) run in this interpreter, not whatever python3 is on PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (
            SparkSession.builder.master(f"local[{cores}]")
            .appName("healthscore")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(max(2, cores * 2)))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
            .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        return cls(spark)

    def load_tables(
        self, connection: duckdb.DuckDBPyConnection, tables: list[str], folder: Path
    ) -> None:
        """Hand the validated contract tables to Spark through Parquet files in ``folder``.

        The typed DuckDB views are written once and read by Spark directly, so nothing passes
        through pandas; on a cluster, point Spark at the lake's own copies instead.
        """
        for name in tables:
            path = folder / f"{name}.parquet"
            connection.execute(f"COPY (SELECT * FROM {name}) TO '{path}' (FORMAT parquet)")
            self.spark.read.parquet(str(path)).createOrReplaceTempView(name)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make ``frame`` queryable as the temporary view ``name`` in the Spark session."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark's own notices about pandas 3 deprecations
            self.spark.createDataFrame(_for_spark(frame)).createOrReplaceTempView(name)

    def query(self, sql: str) -> pd.DataFrame:
        """Run DuckDB-dialect ``sql`` on Spark (transpiled by sqlglot); its result as pandas."""
        import sqlglot

        (spark_sql,) = sqlglot.transpile(sql, read="duckdb", write="spark")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark's own notices about pandas 3 deprecations
            frame = self.spark.sql(spark_sql).toPandas()
        # Spark types literals like 1.0 as DECIMAL; the features are plain floats. Decimals only
        # come as objects: other columns are not scanned (and empty datetime ones cannot be).
        decimals = [
            c
            for c in frame
            if frame[c].dtype == object and frame[c].map(lambda v: isinstance(v, Decimal)).any()
        ]
        return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in decimals})


def _for_spark(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy-backed columns Spark's Arrow path accepts (no pandas extension dtypes)."""
    converted = {}
    for name, column in frame.items():
        if (
            isinstance(column.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(column)
            or (pd.api.types.is_bool_dtype(column) and column.isna().any())
        ):
            converted[name] = column.astype(object).where(column.notna(), None)
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            converted[name] = column.dt.tz_convert("UTC").dt.tz_localize(None)
        else:
            converted[name] = column
    return pd.DataFrame(converted)


def make_engine(name: str, raw: RawData, scratch: Path) -> DuckDBEngine | SparkEngine:
    """The engine named in params, holding the validated contract tables."""
    if name == "spark":
        engine = SparkEngine.local()
        engine.load_tables(raw.connection, list(raw.present), scratch)
        return engine
    return DuckDBEngine(raw.connection)
