"""Scoring inside Spark: the registered MLflow model applied as a Spark UDF.

Past one machine the same registered pyfunc that the embedded stage unpickles runs on every
executor through :func:`mlflow.pyfunc.spark_udf`; the features come from the Spark engine
(``features.engine: spark``). The UDF returns what the pyfunc's signature declares: the win
probability, its interval and the health score. Explanations stay in the embedded stage (the
exact contributions need the ensemble object, which the UDF does not expose).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlflow
import pandas as pd

from pipeline.io import registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RESULT = "win_probability double, win_probability_low double, win_probability_high double, " \
    "health long"  # fmt: skip


def spark_scores(
    spark: SparkSession, features: DataFrame, model_uri: str, names: list[str],
    categorical: list[str], keys: list[str],
) -> DataFrame:  # fmt: skip
    """``keys`` plus the model's outputs for every row of a Spark DataFrame of features.

    The model runs in the executors' own Python (``env_manager="local"``): on a cluster, install
    the project's requirements there as the registered model lists them.
    """
    from pyspark.sql import functions as F

    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=RESULT, env_manager="local")
    cast = [
        F.col(n).cast("string").alias(n) if n in categorical else F.col(n).cast("double").alias(n)
        for n in names
    ]
    frame = features.select(*keys, *cast)
    scored = frame.withColumn("_out", predict(F.struct(*[F.col(n) for n in names])))
    return scored.select(*keys, "_out.*")


def spark_frame(
    spark: SparkSession, table: pd.DataFrame, names: list[str], categorical: list[str],
    keys: list[str],
) -> DataFrame:  # fmt: skip
    """A pandas feature table as a Spark DataFrame: keys, then features as the model takes them."""
    plain = registry.as_model_input(table[names], categorical)
    frame = pd.concat([table[keys].astype({k: str for k in keys}), plain], axis=1)
    return spark.createDataFrame(frame.astype({c: object for c in categorical}))
