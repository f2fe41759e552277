"""Runs the end-to-end test's query against a Spark Connect endpoint.

Usage: python3 spark_query.py sc://127.0.0.1:PORT
Prints the sum of 0..999, which is 499500 when the engine works.
"""
import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
try:
    print(spark.range(1000).selectExpr("sum(id)").collect()[0][0])
finally:
    spark.stop()
