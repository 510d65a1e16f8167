"""PyIceberg 0.12 over a REST catalog and S3 (SeaweedFS `weed mini` in the tests): writes a table
with several snapshots, a schema change and a tag, and prints what PyIceberg itself reads of it.

    pyiceberg_rest.py S3_HOST:PORT REST_HOST:PORT write
        creates pyi.events in four snapshots (a column is added before the third), tags the
        second `first_two`, and prints one JSON object:
        {"snapshots": [{"snapshot_id", "committed_at_ms", "rows", "total", "columns"}...],
         "inspect_snapshots": [[snapshot_id, parent_id, operation]...],
         "inspect_files": [[file_path, record_count, file_size_in_bytes, content]...]}

    pyiceberg_rest.py S3_HOST:PORT REST_HOST:PORT count NAMESPACE.TABLE
        prints {"rows", "distinct_ids", "sum_ids", "snapshots"} of the table (its `id` column)

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, also the catalog's OAuth2 client
credentials.
"""

import json
import os
import sys

import pyarrow as pa
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.types import LongType

from table_summary import print_summary


def catalog(s3, rest):
    key = os.environ["AWS_ACCESS_KEY_ID"]
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    return RestCatalog(
        "lake",
        uri=f"http://{rest}",
        warehouse="warehouse",
        credential=f"{key}:{secret}",
        **{
            "s3.endpoint": f"http://{s3}",
            "s3.access-key-id": key,
            "s3.secret-access-key": secret,
            "s3.region": "us-east-1",
            "s3.force-virtual-addressing": False,
        },
    )


def write(cat):
    cat.create_namespace_if_not_exists("pyi")
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    table = cat.create_table("pyi.events", schema=schema)
    table.append(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}, schema=schema))
    table.append(pa.table({"id": [4, 5], "name": ["d", "e"]}, schema=schema))
    table.manage_snapshots().create_tag(table.current_snapshot().snapshot_id, "first_two").commit()
    with table.update_schema() as update:
        update.add_column("score", LongType())
    table = cat.load_table("pyi.events")
    wide = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.int64())])
    table.append(pa.table({"id": [6, 7], "name": ["f", "g"], "score": [60, 70]}, schema=wide))
    table.delete("id = 2")
    table = cat.load_table("pyi.events")

    snapshots = []
    for snapshot in sorted(table.snapshots(), key=lambda s: s.timestamp_ms):
        rows = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
        snapshots.append(
            {
                "snapshot_id": snapshot.snapshot_id,
                "committed_at_ms": snapshot.timestamp_ms,
                "rows": rows.num_rows,
                "total": sum(rows.column("id").to_pylist()),
                "columns": rows.column_names,
            }
        )
    inspected = table.inspect.snapshots().sort_by("committed_at")
    files = table.inspect.files().sort_by("file_path")
    print(
        json.dumps(
            {
                "snapshots": snapshots,
                "inspect_snapshots": [
                    [r["snapshot_id"], r["parent_id"], r["operation"]]
                    for r in inspected.to_pylist()
                ],
                "inspect_files": [
                    [r["file_path"], r["record_count"], r["file_size_in_bytes"], r["content"]]
                    for r in files.to_pylist()
                ],
            }
        )
    )


def main():
    s3, rest, command = sys.argv[1:4]
    if command == "write":
        write(catalog(s3, rest))
    elif command == "count":
        print_summary(catalog(s3, rest).load_table(sys.argv[4]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
