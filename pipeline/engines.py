"""Engines the feature families run on. DuckDB (embedded, out of core) is the default."""

from __future__ import annotations

import duckdb
import pandas as pd


class DuckDBEngine:
    """Runs family SQL on a DuckDB connection that holds the contract tables as views."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, threads: int | None = None) -> None:
        self.connection = connection
        if threads:
            connection.execute(f"SET threads = {int(threads)}")

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.connection.register(name, frame)

    def query(self, sql: str) -> pd.DataFrame:
        result = self.connection.execute(sql)
        if result.description is None:
            return pd.DataFrame()
        return result.df()
