"""Floe through a second Flight SQL client nobody here wrote: InfluxData's `flightsql-dbapi`
(pyarrow's Flight client underneath, what its SQLAlchemy dialect for Superset uses). Lists
catalogs, schemas and tables, reads the SqlInfo ids its dialect requires, runs a query, a
prepared statement with a bound parameter and an update; prints one JSON object.

usage: flightsql_dbapi_client.py HOST:PORT
"""

import json
import sys

import pyarrow as pa
from flightsql import FlightSQLClient


def read(client, info):
    tables = [client.do_get(endpoint.ticket).read_all() for endpoint in info.endpoints]
    return pa.concat_tables(tables).to_pylist() if tables else []


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    client = FlightSQLClient(host=host, port=int(port), insecure=True)
    out = {}
    out["catalogs"] = [r["catalog_name"] for r in read(client, client.get_catalogs())]
    out["schemas"] = sorted(
        r["db_schema_name"] for r in read(client, client.get_db_schemas(catalog="local"))
    )
    tables = read(client, client.get_tables(catalog="local", db_schema_filter_pattern="shop"))
    out["tables"] = sorted([r["table_name"], r["table_type"]] for r in tables)
    info = read(client, client.get_sql_info([0, 2, 3, 504]))
    out["sql_info"] = {str(r["info_name"]): r["value"] for r in info}
    out["query"] = read(client, client.execute("SELECT count(*) AS n FROM shop.orders"))
    with client.prepare("SELECT id FROM shop.orders WHERE id > $1 ORDER BY id") as prepared:
        binding = pa.record_batch([pa.array([2], type=pa.int64())], names=["$1"])
        out["prepared"] = [r["id"] for r in read(client, prepared.execute(binding))]
    out["update"] = client.execute_update("INSERT INTO shop.orders VALUES (100), (101)")
    out["after_update"] = read(client, client.execute("SELECT count(*) AS n FROM shop.orders"))
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
