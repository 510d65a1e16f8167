"""Runs the 99 TPC-DS queries on DuckDB over the Parquet files of a Floe-generated warehouse.

The peer side of a side-by-side measurement: the same queries (benchmarks/tpcds/queries), the
same data files Floe reads (each table's current files, as Iceberg metadata lists them, read
with PyIceberg), the same rounds, and the same CSV columns as `floe-tpcds run`
(query,median_s,min_s,max_s,rows,status). A query that fails has status `error`, one
interrupted after --timeout seconds `timeout`; neither has a time.

With --answers DIR it also writes each query's first result to DIR/qNN.csv in the form of the
reference answers (`col|col` header, one `|`-separated line per row, `NULL` for nulls, `(empty)`
for empty strings), so that DuckDB can be the oracle Floe's results are checked against.

`floe-tpcds run --duckdb PYTHON` runs this script itself, after Floe's rounds, and merges its
CSV into its report. To run it alone:

    python3 -m venv .peer && .peer/bin/pip install 'duckdb==1.5.5' 'pyiceberg[sql-sqlite,pyarrow]==0.12.*'
    .peer/bin/python benchmarks/tpcds/peers/duckdb_run.py \
        --warehouse floe-warehouse --namespace tpcds_sf1 --rounds 3 --output duckdb.csv
"""

import argparse
import datetime
import decimal
import math
import pathlib
import statistics
import sys
import threading
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

ALL_QUERIES = [f"q{n:02}" for n in range(1, 100)]


def data_files(catalog, namespace, table):
    """The table's current data files, from its Iceberg metadata (no stale files)."""
    scan = catalog.load_table(f"{namespace}.{table}").scan()
    return [task.file.file_path.removeprefix("file://") for task in scan.plan_files()]


def query_names(listed):
    """`--queries`: names separated by commas (q7 and q07 both name query 7)."""
    names = []
    for name in filter(None, (part.strip() for part in listed.split(","))):
        if not (name[:1] in "qQ" and name[1:].isdigit() and 1 <= int(name[1:]) <= 99):
            raise SystemExit(f"--queries: `{name}` is not a TPC-DS query (q01..q99)")
        names.append(f"q{int(name[1:]):02}")
    return names


def answer_field(value):
    """One field as the reference answers write it (and Floe's `text_rows` prints it)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "(empty)"
    if isinstance(value, float):
        # Arrow's spelling of the values Python spells `nan` and `inf`.
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (int, decimal.Decimal, datetime.date, datetime.datetime)):
        return str(value)
    return str(value)


def answer_text(columns, rows):
    """A result in the reference answers' form."""
    lines = ["|".join(columns)]
    lines.extend("|".join(answer_field(v) for v in row) for row in rows)
    return "\n".join(lines) + "\n"


def run_once(con, sql, timeout):
    """Runs `sql` once; returns (column names, rows), or None if `timeout` seconds passed
    first."""
    interrupted = threading.Event()

    def interrupt():
        interrupted.set()
        con.interrupt()

    timer = threading.Timer(timeout, interrupt) if timeout else None
    if timer:
        timer.start()
    try:
        cursor = con.execute(sql)
        rows = cursor.fetchall()
        return [column[0] for column in cursor.description], rows
    except Exception:  # duckdb.InterruptException, whatever its base class
        if interrupted.is_set():
            return None
        raise
    finally:
        if timer:
            timer.cancel()


def run_query(con, name, sql, rounds, timeout, answers):
    """One query's rounds: (times, rows, status). The first round's result goes to
    `answers/qNN.csv` when `answers` is a directory."""
    times, rows = [], 0
    for round in range(rounds):
        started = time.perf_counter()
        try:
            result = run_once(con, sql, timeout)
        except duckdb.Error as err:
            print(f"{name}: {err}", file=sys.stderr)
            return [], 0, "error"
        if result is None:
            print(f"{name}: interrupted after {timeout} s", file=sys.stderr)
            return [], 0, "timeout"
        times.append(time.perf_counter() - started)
        columns, result_rows = result
        rows = len(result_rows)
        if round == 0 and answers:
            (answers / f"{name}.csv").write_text(answer_text(columns, result_rows))
    return times, rows, "ran"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="floe-warehouse")
    parser.add_argument("--namespace", default="tpcds_sf1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--queries", default=",".join(ALL_QUERIES),
                        help="query names separated by commas (default: all 99)")
    parser.add_argument("--query-dir", default=None,
                        help="directory of qNN.sql (default: benchmarks/tpcds/queries)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="interrupt a query running longer than this many seconds")
    parser.add_argument("--output", default="duckdb.csv")
    parser.add_argument("--answers", default=None,
                        help="directory to write each query's first result to, as qNN.csv")
    args = parser.parse_args()
    answers = pathlib.Path(args.answers) if args.answers else None
    if answers:
        answers.mkdir(parents=True, exist_ok=True)

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

    if args.query_dir:
        queries = pathlib.Path(args.query_dir)
    else:
        queries = pathlib.Path(__file__).resolve().parent.parent / "queries"
    lines = ["query,median_s,min_s,max_s,rows,status"]
    medians = []
    for name in query_names(args.queries):
        sql = (queries / f"{name}.sql").read_text()
        times, rows, status = run_query(con, name, sql, args.rounds, args.timeout, answers)
        if times:
            median = statistics.median(times)
            medians.append(median)
            lines.append(f"{name},{median:.3f},{min(times):.3f},{max(times):.3f},{rows},{status}")
        else:
            lines.append(f"{name},,,,0,{status}")
        print(lines[-1], file=sys.stderr)
    pathlib.Path(args.output).write_text("\n".join(lines) + "\n")
    if medians:
        geomean = math.exp(sum(math.log(max(m, 1e-6)) for m in medians) / len(medians))
        print(f"DuckDB {duckdb.__version__}: total {sum(medians):.2f} s, "
              f"geometric mean {geomean:.3f} s ({len(medians)} queries)")
    else:
        print(f"DuckDB {duckdb.__version__}: no query finished")


if __name__ == "__main__":
    main()
