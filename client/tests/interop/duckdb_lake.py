"""DuckDB 1.5.5 with its iceberg extension as an independent Iceberg writer and reader, over a
REST catalog and S3 (SeaweedFS `weed mini` in the tests).

    duckdb_lake.py S3_HOST:PORT REST_HOST:PORT write
        creates lake.duck.orders and changes it with DELETE and UPDATE (v2 merge-on-read:
        position delete files)
    duckdb_lake.py S3_HOST:PORT REST_HOST:PORT query SQL [SQL ...]
        prints each query's rows as one JSON line, `[{"column": value, ...}, ...]`, the shape
        `floe --format json` prints

Credentials are the S3 key pair in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, which the
catalog also takes as OAuth2 client credentials. The extensions are loaded from their wheels
by path: DuckDB would otherwise try to download them.
"""

import json
import os
import pathlib
import sys

import duckdb
import duckdb_extension_avro
import duckdb_extension_httpfs
import duckdb_extension_iceberg


def extension_path(module, name):
    return next(pathlib.Path(module.__file__).parent.rglob(f"{name}.duckdb_extension"))


def connect(s3, rest):
    con = duckdb.connect()
    for module, name in [
        (duckdb_extension_httpfs, "httpfs"),
        (duckdb_extension_avro, "avro"),
        (duckdb_extension_iceberg, "iceberg"),
    ]:
        con.execute(f"LOAD '{extension_path(module, name)}'")
    key = os.environ["AWS_ACCESS_KEY_ID"]
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    con.execute(
        f"CREATE SECRET s3 (TYPE s3, KEY_ID '{key}', SECRET '{secret}', ENDPOINT '{s3}', "
        "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
    )
    con.execute(
        f"CREATE SECRET rest (TYPE iceberg, CLIENT_ID '{key}', CLIENT_SECRET '{secret}', "
        f"OAUTH2_SERVER_URI 'http://{rest}/v1/oauth/tokens')"
    )
    con.execute(f"ATTACH 'warehouse' AS lake (TYPE iceberg, SECRET rest, ENDPOINT 'http://{rest}')")
    return con


def write(con):
    con.execute("CREATE SCHEMA IF NOT EXISTS lake.duck")
    con.execute("CREATE TABLE lake.duck.orders (id BIGINT, region VARCHAR, qty BIGINT)")
    # Two inserts: two data files, so deletes apply to some files and not others.
    con.execute(
        "INSERT INTO lake.duck.orders "
        "SELECT i, ['north', 'south', 'east'][1 + i % 3], i * 3 FROM range(0, 600) t(i)"
    )
    con.execute(
        "INSERT INTO lake.duck.orders "
        "SELECT i, ['north', 'south', 'east'][1 + i % 3], i * 3 FROM range(600, 1000) t(i)"
    )
    con.execute("DELETE FROM lake.duck.orders WHERE id % 7 = 0")
    con.execute("UPDATE lake.duck.orders SET qty = -qty WHERE region = 'east' AND id < 100")
    con.execute("DELETE FROM lake.duck.orders WHERE id BETWEEN 900 AND 949")


def query(con, sql):
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    return json.dumps(rows, separators=(",", ":"), default=str)


def main():
    s3, rest, command, *rest_args = sys.argv[1:]
    con = connect(s3, rest)
    if command == "write":
        write(con)
    elif command == "query":
        for sql in rest_args:
            print(query(con, sql))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
