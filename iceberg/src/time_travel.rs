//! Which snapshot a time-travel clause (`floe_sql::time_travel`) reads, from the table's
//! metadata: a snapshot id, a branch or tag, or the snapshot current at a point in time (the last
//! entry of the snapshot log at or before it, as Spark and Trino choose).

use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use iceberg::spec::{SnapshotRef, TableMetadata};

use floe_common::error::FloeError;
use floe_common::table_names::TableVersion;

/// The snapshot of `metadata` that `version` names; `table` names the table in errors.
pub fn resolve_version(
    metadata: &TableMetadata,
    version: &TableVersion,
    table: &str,
) -> Result<SnapshotRef, FloeError> {
    match version {
        TableVersion::Snapshot(id) => metadata
            .snapshot_by_id(*id)
            .cloned()
            .ok_or_else(|| FloeError::plan(format!("table {table} has no snapshot {id}"))),
        TableVersion::Ref(name) => metadata.snapshot_for_ref(name).cloned().ok_or_else(|| {
            let known: Vec<String> = super::metadata_tables::table_refs(metadata)
                .map(|refs| refs.into_iter().map(|(name, _)| name).collect())
                .unwrap_or_default();
            FloeError::plan(format!(
                "table {table} has no branch or tag `{name}` (it has: {})",
                known.join(", ")
            ))
        }),
        TableVersion::Timestamp(text) => {
            let nanos = string_to_timestamp_nanos(text).map_err(|e| {
                FloeError::plan(format!(
                    "time travel on {table}: `{text}` is not a timestamp: {e}"
                ))
            })?;
            snapshot_at(metadata, nanos.div_euclid(1_000_000), text, table)
        }
    }
}

/// The snapshot current at `millis` since the epoch.
fn snapshot_at(
    metadata: &TableMetadata,
    millis: i64,
    text: &str,
    table: &str,
) -> Result<SnapshotRef, FloeError> {
    let mut log: Vec<(i64, i64)> = metadata
        .history()
        .iter()
        .map(|entry| (entry.timestamp_ms, entry.snapshot_id))
        .collect();
    if log.is_empty() {
        log = metadata
            .snapshots()
            .map(|snapshot| (snapshot.timestamp_ms(), snapshot.snapshot_id()))
            .collect();
        log.sort_unstable();
    }
    let Some(first) = log.first().map(|(at, _)| *at) else {
        return Err(FloeError::plan(format!("table {table} has no snapshots")));
    };
    let chosen = log
        .iter()
        .rev()
        .find(|(at, _)| *at <= millis)
        .map(|(_, id)| *id)
        .ok_or_else(|| {
            FloeError::plan(format!(
                "table {table} has no snapshot at or before {text}: its first snapshot was \
                 committed at {} (UTC)",
                format_millis(first)
            ))
        })?;
    metadata.snapshot_by_id(chosen).cloned().ok_or_else(|| {
        FloeError::plan(format!(
            "table {table}: snapshot {chosen} of its history is no longer in its metadata \
             (expired)"
        ))
    })
}

fn format_millis(millis: i64) -> String {
    arrow::temporal_conversions::timestamp_ms_to_datetime(millis).map_or_else(
        || millis.to_string(),
        |at| at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
    )
}
