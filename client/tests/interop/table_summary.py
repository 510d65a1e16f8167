"""What PyIceberg reads of a table that several writers filled at once: its rows, the distinct
and summed values of its `id` column, and its snapshots, printed as one JSON object. Shared by
the SQL-catalog and REST-catalog scripts."""

import json


def print_summary(table) -> None:
    ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
    print(json.dumps({
        "rows": len(ids),
        "distinct_ids": len(set(ids)),
        "sum_ids": sum(ids),
        "snapshots": len(table.snapshots()),
    }))
