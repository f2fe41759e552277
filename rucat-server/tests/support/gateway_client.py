"""A real Spark Connect client (pyspark) for the gateway's tests.

Usage: python3 gateway_client.py COMMAND ENDPOINT [ARG ...]
Prints one JSON value: what the command observed.

Commands:
  sum ENDPOINT                     sum(id) over range(1000)
  sum-or-error ENDPOINT            sum's result as {"sum": N}, or the error it raised as {"error": TEXT}
  digest ENDPOINT ROWS             sha256 of the rows of a ROWS-row result, and their count
  udf ENDPOINT                     a Python UDF's results
  interrupt ENDPOINT               interruptAll() of a long query: seconds until it ended, and the error
  sessions ENDPOINT                two sessions on one engine: a temp view of one is absent in the other
  view-create ENDPOINT NAME        creates global temp view NAME
  view-exists ENDPOINT NAME        whether global temp view NAME exists
  conf ENDPOINT KEY                spark.conf.get(KEY) through the endpoint
  arrow ENDPOINT ROWS              toArrow() of ROWS rows: rows and seconds (best of 3)
  tiny ENDPOINT N                  N times select 1: median milliseconds
  concurrent ENDPOINT N            N sessions at once, each running select 1: how many answered, seconds
  config-latency ENDPOINT N        N unary Config RPCs with raw grpc stubs: median milliseconds
  rpc ENDPOINT [METADATA_JSON]     one Config RPC with raw grpc stubs: status code name and details
  sleep ENDPOINT SECONDS           a query of one-second sleeping tasks lasting about SECONDS: rows and seconds
"""
import hashlib
import json
import statistics
import sys
import threading
import time

import grpc
from pyspark.sql import SparkSession
from pyspark.sql.functions import col, udf


OPENED = []


def session(endpoint):
    return opened(SparkSession.builder.remote(endpoint).getOrCreate())


def opened(spark):
    """Sessions are stopped before exit: a session left to the garbage
    collector at interpreter exit can hang closing its gRPC channel."""
    OPENED.append(spark)
    return spark


def cmd_sum(endpoint):
    return session(endpoint).range(1000).selectExpr("sum(id)").collect()[0][0]


def cmd_sum_or_error(endpoint):
    try:
        return {"sum": cmd_sum(endpoint)}
    except Exception as error:  # what a user of stock pyspark would see
        return {"error": str(error)}


def cmd_digest(endpoint, rows):
    spark = session(endpoint)
    df = spark.range(int(rows)).selectExpr(
        "id", "id * 3 as x", "cast(id as string) as s", "uuid() is not null as b"
    )
    digest = hashlib.sha256()
    count = 0
    for row in df.collect():
        digest.update(repr(tuple(row)).encode())
        count += 1
    return {"rows": count, "sha256": digest.hexdigest()}


def cmd_udf(endpoint):
    spark = session(endpoint)
    plus_one = udf(lambda x: x + 1, "long")
    rows = spark.range(5).select(plus_one(col("id")).alias("y")).collect()
    return [r.y for r in rows]


def cmd_interrupt(endpoint):
    spark = session(endpoint)
    outcome = {}

    def long_query():
        started = time.time()
        try:
            # About 5 minutes of sleeping tasks: long enough that only an
            # interrupt ends it in time, finite if one is missed, and idle
            # on the CPU so a loaded machine stays responsive.
            spark.range(0, 600, 1, 2).selectExpr(
                "reflect('java.lang.Thread', 'sleep', cast(1000 as bigint))"
            ).collect()
            outcome["error"] = None
        except Exception as e:  # the interrupted query's error
            outcome["error"] = type(e).__name__ + ": " + str(e)[:300]
        outcome["seconds"] = time.time() - started

    # A daemon: a query that outlives the test must not keep the
    # interpreter from exiting with its answer.
    worker = threading.Thread(target=long_query, daemon=True)
    worker.start()
    # Interrupt once the query is running, and again while it is: on a
    # loaded machine an interrupt may come before the query reaches the
    # server (nothing to interrupt) or race its start.
    time.sleep(2)
    interrupted = set()
    deadline = time.time() + 90
    while worker.is_alive() and time.time() < deadline:
        interrupted.update(spark.interruptAll())
        worker.join(1 if interrupted else 0.5)
    worker.join(60)
    outcome["interrupted"] = len(interrupted)
    outcome["alive"] = worker.is_alive()
    return outcome


def cmd_sessions(endpoint):
    first = opened(SparkSession.builder.remote(endpoint).create())
    second = opened(SparkSession.builder.remote(endpoint).create())
    first.range(3).createOrReplaceTempView("only_in_first")
    return {
        "distinct_sessions": first.client._session_id != second.client._session_id,
        "in_first": first.catalog.tableExists("only_in_first"),
        "in_second": second.catalog.tableExists("only_in_first"),
        "first_count": first.sql("select count(*) from only_in_first").collect()[0][0],
    }


def cmd_view_create(endpoint, name):
    spark = session(endpoint)
    spark.range(7).createOrReplaceGlobalTempView(name)
    return spark.sql(f"select count(*) from global_temp.{name}").collect()[0][0]


def cmd_view_exists(endpoint, name):
    return session(endpoint).catalog.tableExists(f"global_temp.{name}")


def cmd_conf(endpoint, key):
    return session(endpoint).conf.get(key, None)


def cmd_arrow(endpoint, rows):
    spark = session(endpoint)
    df = spark.range(int(rows)).selectExpr("id", "id * 2 as x")
    best = None
    count = 0
    for _ in range(3):
        started = time.perf_counter()
        table = df.toArrow()
        took = time.perf_counter() - started
        count = table.num_rows
        best = took if best is None else min(best, took)
    return {"rows": count, "seconds": best}


def cmd_tiny(endpoint, n):
    spark = session(endpoint)
    spark.sql("select 1").collect()
    times = []
    for _ in range(int(n)):
        started = time.perf_counter()
        spark.sql("select 1").collect()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def cmd_concurrent(endpoint, n):
    answered = []
    lock = threading.Lock()

    def one():
        spark = opened(SparkSession.builder.remote(endpoint).create())
        value = spark.sql("select 1").collect()[0][0]
        with lock:
            answered.append(value)

    started = time.perf_counter()
    workers = [threading.Thread(target=one) for _ in range(int(n))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    return {"answered": answered.count(1), "seconds": time.perf_counter() - started}


def cmd_config_latency(endpoint, n):
    """The cost of one unary RPC, with no Spark work to speak of: what a
    proxy adds shows here without the engine's noise."""
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    target, _, params = endpoint.removeprefix("sc://").partition("/;")
    metadata = []
    for param in filter(None, params.split(";")):
        key, _, value = param.partition("=")
        if key == "token":
            metadata.append(("authorization", "Bearer " + value))
        elif key != "use_ssl":
            metadata.append((key, value))
    request = base_pb2.ConfigRequest(
        session_id="00112233-4455-6677-8899-aabbccddeeff",
        user_context=base_pb2.UserContext(user_id="bench"),
        operation=base_pb2.ConfigRequest.Operation(get_all=base_pb2.ConfigRequest.GetAll()),
    )
    with grpc.insecure_channel(target) as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)
        for _ in range(50):
            stub.Config(request, metadata=metadata)
        times = []
        for _ in range(int(n)):
            started = time.perf_counter()
            stub.Config(request, metadata=metadata)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def cmd_rpc(endpoint, metadata="[]"):
    """One Config RPC through pyspark's own generated stubs, with no retries,
    so the status the server answered is what we see."""
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    target = endpoint.removeprefix("sc://").split("/")[0]
    with grpc.insecure_channel(target) as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)
        request = base_pb2.ConfigRequest(
            session_id="00112233-4455-6677-8899-aabbccddeeff",
            user_context=base_pb2.UserContext(user_id="test"),
            operation=base_pb2.ConfigRequest.Operation(
                get_all=base_pb2.ConfigRequest.GetAll()
            ),
        )
        try:
            stub.Config(request, metadata=[tuple(m) for m in json.loads(metadata)], timeout=30)
            return {"code": "OK", "details": ""}
        except grpc.RpcError as e:
            return {"code": e.code().name, "details": e.details()}


def cmd_sleep(endpoint, seconds):
    """A query that runs for about SECONDS and is idle on the CPU: one
    partition of one-second sleeps, so its length does not depend on the
    engine's cores. Its ExecutePlan stream stays open all along."""
    spark = session(endpoint)
    spark.sql("select 1").collect()  # connected: what follows is the query
    started = time.time()
    rows = spark.range(0, int(seconds), 1, 1).selectExpr(
        "reflect('java.lang.Thread', 'sleep', cast(1000 as bigint))"
    ).collect()
    return {"rows": len(rows), "seconds": time.time() - started}


def main():
    command = sys.argv[1].replace("-", "_")
    try:
        result = globals()["cmd_" + command](*sys.argv[2:])
    finally:
        for spark in OPENED:
            spark.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
