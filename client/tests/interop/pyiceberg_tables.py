"""PyIceberg side of Floe's interoperability tests.

Usage:
  pyiceberg_tables.py write  <warehouse_dir>   # PyIceberg creates and fills pyi.trips, then evolves it
  pyiceberg_tables.py write_types <warehouse_dir>
      # pyi.mapped: a Parquet file without field ids added with add_files (name mapping), then a
      #   column renamed; pyi.nested: struct, list, map and uuid columns, a nested field renamed
      #   after the first file; pyi.evolving: a file before and files after a partition spec
      #   change
  pyiceberg_tables.py read   <warehouse_dir> <namespace.table>   # prints rows as JSON lines, sorted
  pyiceberg_tables.py count  <warehouse_dir> <namespace.table>   # {"rows", "distinct_ids", "sum_ids", "snapshots"}

Both sides use the catalog `local` on <warehouse_dir>/catalog.db, Floe's default layout.
"""
import json
import sys
from datetime import date, datetime, timezone
from decimal import Decimal

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.types import DoubleType

from table_summary import print_summary


def catalog(warehouse: str) -> SqlCatalog:
    return SqlCatalog(
        "local",
        uri=f"sqlite:///{warehouse}/catalog.db",
        warehouse=f"file://{warehouse}",
    )


def write(warehouse: str) -> None:
    cat = catalog(warehouse)
    cat.create_namespace_if_not_exists("pyi")
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "city": pa.array(["Oslo", "Lima", None], pa.string()),
            "fare": pa.array([Decimal("12.50"), Decimal("7.25"), Decimal("0.00")], pa.decimal128(9, 2)),
            "day": pa.array([date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)], pa.date32()),
            "at": pa.array(
                [datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)] * 3, pa.timestamp("us", tz="UTC")
            ),
        }
    )
    table = cat.create_table("pyi.trips", schema=data.schema)
    table.append(data)
    # Schema evolution Floe must read by field id: a rename and an added column.
    with table.update_schema() as update:
        update.rename_column("city", "town")
        update.add_column("tip", DoubleType())
    table = cat.load_table("pyi.trips")
    more = pa.table(
        {
            "id": pa.array([4], pa.int64()),
            "town": pa.array(["Pune"], pa.string()),
            "fare": pa.array([Decimal("3.10")], pa.decimal128(9, 2)),
            "day": pa.array([date(2024, 5, 4)], pa.date32()),
            "at": pa.array([datetime(2024, 5, 4, 9, 30, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC")),
            "tip": pa.array([1.5], pa.float64()),
        }
    )
    table.append(more)


def write_types(warehouse: str) -> None:
    import uuid

    import pyarrow.parquet as pq
    from pyiceberg.schema import Schema
    from pyiceberg.types import (
        IntegerType, ListType, LongType, MapType, NestedField, StringType, StructType,
        UUIDType,
    )

    cat = catalog(warehouse)
    cat.create_namespace_if_not_exists("pyi")

    # A file as a migration leaves it: plain Parquet, no field ids.
    path = f"{warehouse}/migrated.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["old-a", "old-b"]}), path)
    mapped = cat.create_table(
        "pyi.mapped",
        schema=Schema(
            NestedField(1, "id", LongType(), required=False),
            NestedField(2, "name", StringType(), required=False),
        ),
    )
    mapped.add_files([path])
    with mapped.update_schema() as update:
        update.rename_column("name", "label")
    mapped = cat.load_table("pyi.mapped")
    mapped.append(pa.table({"id": pa.array([3], pa.int64()), "label": ["new-c"]}))

    nested = cat.create_table(
        "pyi.nested",
        schema=Schema(
            NestedField(1, "id", LongType(), required=False),
            NestedField(2, "s", StructType(
                NestedField(3, "a", IntegerType(), required=False),
                NestedField(4, "b", StringType(), required=False),
            ), required=False),
            NestedField(5, "l", ListType(6, LongType(), element_required=False), required=False),
            NestedField(7, "m", MapType(8, StringType(), 9, LongType(), value_required=False), required=False),
            NestedField(10, "u", UUIDType(), required=False),
        ),
    )
    rows = [
        {"id": 1, "s": {"a": 10, "b": "x"}, "l": [1, 2, 3], "m": {"k": 7},
         "u": uuid.UUID("12345678-1234-5678-1234-567812345678").bytes},
        {"id": 2, "s": {"a": 20, "b": "y"}, "l": [], "m": {"k": 8, "j": 9}, "u": None},
    ]
    nested.append(pa.Table.from_pylist(rows, schema=nested.schema().as_arrow()))
    with nested.update_schema() as update:
        update.rename_column("s.b", "bee")
    nested = cat.load_table("pyi.nested")
    more = [{"id": 3, "s": {"a": 30, "bee": "z"}, "l": [4], "m": {}, "u": None}]
    nested.append(pa.Table.from_pylist(more, schema=nested.schema().as_arrow()))

    # Partition spec evolution: a file written unpartitioned, then two under identity(cat).
    evolving = cat.create_table(
        "pyi.evolving",
        schema=Schema(
            NestedField(1, "id", LongType(), required=False),
            NestedField(2, "cat", StringType(), required=False),
        ),
    )
    evolving.append(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "cat": ["x", "y", "x"]}))
    with evolving.update_spec() as update:
        update.add_identity("cat")
    evolving = cat.load_table("pyi.evolving")
    evolving.append(pa.table({"id": pa.array([10, 11], pa.int64()), "cat": ["x", "x"]}))
    evolving.append(pa.table({"id": pa.array([20], pa.int64()), "cat": ["z"]}))


def plain(value):
    if isinstance(value, (Decimal, date, datetime)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def read(warehouse: str, name: str) -> None:
    table = catalog(warehouse).load_table(name)
    rows = table.scan().to_arrow().to_pylist()
    lines = sorted(json.dumps({k: plain(v) for k, v in row.items()}, sort_keys=True) for row in rows)
    for line in lines:
        print(line)


if __name__ == "__main__":
    command, warehouse = sys.argv[1], sys.argv[2]
    if command == "write":
        write(warehouse)
    elif command == "write_types":
        write_types(warehouse)
    elif command == "read":
        read(warehouse, sys.argv[3])
    elif command == "count":
        print_summary(catalog(warehouse).load_table(sys.argv[3]))
    else:
        sys.exit(f"unknown command {command}")
