"""Prepared statements, parameters and updates as the ADBC Flight SQL driver's DB-API uses them
(it prepares every new statement text), and a query read into a polars DataFrame: prints one
JSON object with what each step gave.

usage: adbc_prepared.py HOST:PORT
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import polars
from adbc_driver_manager import Error


def main() -> None:
    address = sys.argv[1]
    out = {}
    with flightsql.connect(f"grpc://{address}", autocommit=True) as conn:
        with conn.cursor() as cursor:
            query = "SELECT id FROM shop.orders WHERE id > ? ORDER BY id"
            parameters = cursor.adbc_prepare(query)
            out["parameter_schema"] = [[f.name, str(f.type)] for f in parameters]
            out["result_schema"] = [
                [f.name, str(f.type)] for f in cursor.adbc_execute_schema(query)
            ]
            for bound in (0, 2):
                cursor.execute(query, (bound,))
                out[f"above_{bound}"] = [row[0] for row in cursor.fetchall()]
            # DDL and DML through the same path, and their row counts.
            cursor.execute("CREATE TABLE shop.lines (id BIGINT, note VARCHAR)")
            out["create"] = cursor.fetchall()
            cursor.executemany(
                "INSERT INTO shop.lines VALUES (?, ?)", [(1, "a"), (2, "b"), (3, None)]
            )
            out["insert_many_rowcount"] = cursor.rowcount
            statement = cursor.adbc_statement
            statement.set_sql_query("INSERT INTO shop.lines VALUES (10, 'x'), (11, 'y')")
            out["update_count"] = statement.execute_update()
            cursor.execute("SELECT count(*) FROM shop.lines")
            out["lines"] = cursor.fetchone()[0]
            try:
                cursor.execute("SELECT * FROM shop.orders WHERE id > ?", (1, 2))
                cursor.fetchall()
                out["wrong_arity"] = "ran"
            except Error as err:
                out["wrong_arity"] = err.status_code.name
            cursor.execute("SELECT id, note FROM shop.lines WHERE id < ? ORDER BY id", (3,))
            frame = polars.from_arrow(cursor.fetch_arrow_table())
            out["polars"] = {"shape": list(frame.shape), "ids": frame["id"].to_list()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
