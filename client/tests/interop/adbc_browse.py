"""Floe's catalog as a BI tool's navigator sees it through the ADBC Flight SQL driver (the
driver pandas, polars and ADBC-based BI tools use): prints one JSON object with what the driver's
metadata calls returned, or `{"error": ...}` naming the ADBC status of the first that failed.

usage: adbc_browse.py HOST:PORT CATALOG NAMESPACE TABLE
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
from adbc_driver_manager import Error


def columns_of(objects, catalog, namespace, table):
    for cat in objects:
        if cat["catalog_name"] != catalog:
            continue
        for schema in cat["catalog_db_schemas"] or []:
            if schema["db_schema_name"] != namespace:
                continue
            for entry in schema["db_schema_tables"] or []:
                if entry["table_name"] == table:
                    return [
                        (
                            column["column_name"],
                            column["ordinal_position"],
                            column["xdbc_type_name"],
                        )
                        for column in entry["table_columns"] or []
                    ]
    return None


def tables_of(objects):
    return sorted(
        [cat["catalog_name"], schema["db_schema_name"], entry["table_name"], entry["table_type"]]
        for cat in objects
        for schema in cat["catalog_db_schemas"] or []
        for entry in schema["db_schema_tables"] or []
    )


def main() -> None:
    address, catalog, namespace, table = sys.argv[1:5]
    out = {}
    with flightsql.connect(f"grpc://{address}", autocommit=True) as conn:
        try:
            info = conn.adbc_get_info()
            out["vendor_name"] = info.get("vendor_name")
            out["vendor_version"] = info.get("vendor_version")
            out["table_types"] = sorted(conn.adbc_get_table_types())
            everything = conn.adbc_get_objects(depth="all").read_all().to_pylist()
            out["catalogs"] = sorted(cat["catalog_name"] for cat in everything)
            out["tables"] = tables_of(everything)
            out["columns"] = columns_of(everything, catalog, namespace, table)
            # JDBC patterns: `%` runs, `_` one character, `\_` a literal underscore.
            for key, pattern in [("like_prefix", table[:2] + "%"), ("like_escaped", "%\\_%")]:
                found = conn.adbc_get_objects(
                    depth="tables", catalog_filter=catalog, table_name_filter=pattern
                )
                out[key] = tables_of(found.read_all().to_pylist())
            system = conn.adbc_get_objects(
                depth="tables",
                catalog_filter=catalog,
                db_schema_filter=namespace,
                table_name_filter=table + "$%",
                table_types_filter=["SYSTEM TABLE"],
            )
            out["system_tables"] = tables_of(system.read_all().to_pylist())
            schema = conn.adbc_get_table_schema(
                table, catalog_filter=catalog, db_schema_filter=namespace
            )
            out["table_schema"] = [[field.name, str(field.type)] for field in schema]
            try:
                conn.adbc_get_table_schema("nowhere", catalog_filter=catalog,
                                           db_schema_filter=namespace)
                out["missing_table"] = "found"
            except Error as err:
                out["missing_table"] = err.status_code.name
        except Error as err:
            out["error"] = f"{err.status_code.name} {err}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
