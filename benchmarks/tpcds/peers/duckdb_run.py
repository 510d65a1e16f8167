"""Runs the 99 TPC-DS queries on DuckDB over the Parquet files of a Floe-generated warehouse.

The peer side of a side-by-side measurement: the same queries (benchmarks/tpcds/queries), the
same data files Floe reads (each table's current files, as Iceberg metadata lists them, read
with PyIceberg), the same rounds, and the same CSV columns as `floe-tpcds run`
(query,median_s,min_s,max_s,rows,status).

    python3 -m venv .peer && .peer/bin/pip install duckdb 'pyiceberg[sql-sqlite,pyarrow]'
    .peer/bin/python benchmarks/tpcds/peers/duckdb_run.py \
        --warehouse floe-warehouse --namespace tpcds_sf1 --rounds 3 --output duckdb.csv
"""

import argparse
import math
import pathlib
import statistics
import sys
import time

import duckdb
from pyiceberg.catalog.sql import SqlCatalog

TABLES = [
    "call_center", "catalog_page", "catalog_returns", "catalog_sales", "customer",
    "customer_address", "customer_demographics", "date_dim", "household_demographics",
    "income_band", "inventory", "item", "promotion", "reason", "ship_mode", "store",
    "store_returns", "store_sales", "time_dim", "warehouse", "web_page", "web_returns",
    "web_sales", "web_site",
]


def data_files(catalog, namespace, table):
    """The table's current data files, from its Iceberg metadata (no stale files)."""
    scan = catalog.load_table(f"{namespace}.{table}").scan()
    return [task.file.file_path.removeprefix("file://") for task in scan.plan_files()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="floe-warehouse")
    parser.add_argument("--namespace", default="tpcds_sf1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="duckdb.csv")
    args = parser.parse_args()

    warehouse = pathlib.Path(args.warehouse).resolve()
    catalog = SqlCatalog(
        "local",
        uri=f"sqlite:///{warehouse / 'catalog.db'}",
        warehouse=f"file://{warehouse}",
    )
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    for table in TABLES:
        files = data_files(catalog, args.namespace, table)
        listed = ", ".join(f"'{f}'" for f in files)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}])")

    queries = pathlib.Path(__file__).resolve().parent.parent / "queries"
    lines = ["query,median_s,min_s,max_s,rows,status"]
    medians = []
    for n in range(1, 100):
        name = f"q{n:02}"
        sql = (queries / f"{name}.sql").read_text()
        times, rows, status = [], 0, "ran"
        for _ in range(args.rounds):
            started = time.perf_counter()
            try:
                rows = len(con.execute(sql).fetchall())
            except duckdb.Error as err:
                status = "error"
                print(f"{name}: {err}", file=sys.stderr)
                break
            times.append(time.perf_counter() - started)
        if times:
            median = statistics.median(times)
            medians.append(median)
            lines.append(f"{name},{median:.3f},{min(times):.3f},{max(times):.3f},{rows},{status}")
        else:
            lines.append(f"{name},,,,0,{status}")
        print(lines[-1], file=sys.stderr)
    pathlib.Path(args.output).write_text("\n".join(lines) + "\n")
    geomean = math.exp(sum(math.log(max(m, 1e-6)) for m in medians) / len(medians))
    print(f"DuckDB {duckdb.__version__}: total {sum(medians):.2f} s, "
          f"geometric mean {geomean:.3f} s ({len(medians)} queries)")


if __name__ == "__main__":
    main()
