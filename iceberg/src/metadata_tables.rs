//! Iceberg metadata tables: `snapshots`, `history`, `refs`, `manifests`, `files` (with
//! `data_files` and `delete_files`), `entries` and `partitions` (`partitions_table.rs`) of a
//! table, with the columns Spark and Trino give them.
//!
//! They are reached as Trino names them, `"orders$snapshots"`, and as Spark does,
//! `lake.ns.orders.snapshots` (rewritten to the first form by `floe_sql::metadata_names`).
//! The schema provider loads the table through the same catalog and cache as a read of the table,
//! and the rows are built from its metadata and manifests at planning time: they are small, and an
//! in-memory table ships to executors like any other plan.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int32Builder, Int64Array, ListBuilder, MapBuilder,
    RecordBatch, StringArray, StringBuilder, StructArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, ManifestContentType, ManifestEntryRef, ManifestFile, ManifestList,
    SnapshotReference, SnapshotRetention, TableMetadata,
};
use iceberg::table::Table;

use floe_common::error::FloeError;

/// One kind of metadata table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataTable {
    /// Every snapshot of the table.
    Snapshots,
    /// The snapshot log: which snapshot was current when.
    History,
    /// Branches and tags.
    Refs,
    /// Manifests of the current snapshot.
    Manifests,
    /// Live data and delete files of the current snapshot.
    Files,
    /// Live data files.
    DataFiles,
    /// Live delete files.
    DeleteFiles,
    /// Manifest entries of the current snapshot, with their status.
    Entries,
    /// Live files and rows per partition.
    Partitions,
}

impl MetadataTable {
    /// The kind `name` names.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "snapshots" => Self::Snapshots,
            "history" => Self::History,
            "refs" => Self::Refs,
            "manifests" => Self::Manifests,
            "files" => Self::Files,
            "data_files" => Self::DataFiles,
            "delete_files" => Self::DeleteFiles,
            "entries" => Self::Entries,
            "partitions" => Self::Partitions,
            _ => return None,
        })
    }

    /// Splits `orders$snapshots` into the table's name and the kind.
    pub fn split(name: &str) -> Option<(&str, Self)> {
        let (table, kind) = name.rsplit_once('$')?;
        Some((table, Self::from_name(kind)?))
    }

    /// The rows of this metadata table of `table`.
    pub async fn provider(self, table: &Table) -> Result<Arc<dyn TableProvider>, FloeError> {
        let metadata = table.metadata();
        let batch =
            match self {
                Self::Snapshots => snapshots(metadata)?,
                Self::History => history(metadata)?,
                Self::Refs => refs(metadata)?,
                Self::Manifests => manifests(&manifest_files(metadata, table.file_io()).await?)?,
                Self::Files | Self::DataFiles | Self::DeleteFiles => {
                    let entries = entries_of(metadata, table.file_io()).await?;
                    let live = entries.iter().filter(|(entry, _)| entry.is_alive()).filter(
                        |(entry, _)| {
                            let is_data = entry.content_type() == DataContentType::Data;
                            match self {
                                Self::DataFiles => is_data,
                                Self::DeleteFiles => !is_data,
                                _ => true,
                            }
                        },
                    );
                    let (fields, columns) = file_columns(&live.collect::<Vec<_>>())?;
                    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?
                }
                Self::Entries => entries(&entries_of(metadata, table.file_io()).await?)?,
                Self::Partitions => super::partitions_table::partitions(
                    metadata,
                    &entries_of(metadata, table.file_io()).await?,
                )?,
            };
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}

fn timestamp_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        nullable,
    )
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

fn snapshots(metadata: &TableMetadata) -> Result<RecordBatch, FloeError> {
    let mut snapshots: Vec<_> = metadata.snapshots().collect();
    snapshots.sort_by_key(|s| (s.timestamp_ms(), s.sequence_number()));
    let mut summary = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for snapshot in &snapshots {
        let mut pairs: Vec<_> = snapshot.summary().additional_properties.iter().collect();
        pairs.sort();
        for (key, value) in pairs {
            summary.keys().append_value(key);
            summary.values().append_value(value);
        }
        summary.append(true)?;
    }
    let columns: Vec<ArrayRef> = vec![
        timestamps(snapshots.iter().map(|s| s.timestamp_ms()).collect()),
        Arc::new(Int64Array::from_iter_values(
            snapshots.iter().map(|s| s.snapshot_id()),
        )),
        Arc::new(Int64Array::from_iter(
            snapshots.iter().map(|s| s.parent_snapshot_id()),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| s.summary().operation.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| s.manifest_list()),
        )),
        Arc::new(summary.finish()),
    ];
    let schema = Schema::new(vec![
        timestamp_field("committed_at", false),
        Field::new("snapshot_id", DataType::Int64, false),
        Field::new("parent_id", DataType::Int64, true),
        Field::new("operation", DataType::Utf8, false),
        Field::new("manifest_list", DataType::Utf8, false),
        Field::new("summary", columns[5].data_type().clone(), true),
    ]);
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

fn history(metadata: &TableMetadata) -> Result<RecordBatch, FloeError> {
    let mut ancestors = HashSet::new();
    let mut next = metadata.current_snapshot().map(|s| s.snapshot_id());
    while let Some(id) = next {
        if !ancestors.insert(id) {
            break;
        }
        next = metadata
            .snapshot_by_id(id)
            .and_then(|s| s.parent_snapshot_id());
    }
    let log = metadata.history();
    let parent = |id: i64| {
        metadata
            .snapshot_by_id(id)
            .and_then(|s| s.parent_snapshot_id())
    };
    let schema = Schema::new(vec![
        timestamp_field("made_current_at", false),
        Field::new("snapshot_id", DataType::Int64, false),
        Field::new("parent_id", DataType::Int64, true),
        Field::new("is_current_ancestor", DataType::Boolean, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            timestamps(log.iter().map(|e| e.timestamp_ms).collect()),
            Arc::new(Int64Array::from_iter_values(
                log.iter().map(|e| e.snapshot_id),
            )),
            Arc::new(Int64Array::from_iter(
                log.iter().map(|e| parent(e.snapshot_id)),
            )),
            Arc::new(BooleanArray::from_iter(
                log.iter().map(|e| Some(ancestors.contains(&e.snapshot_id))),
            )),
        ],
    )?)
}

/// Branches and tags of `metadata`, by name. `iceberg` 0.10 keeps the map private; its serialized
/// form (the spec's `refs` object) is public.
pub fn table_refs(metadata: &TableMetadata) -> Result<Vec<(String, SnapshotReference)>, FloeError> {
    let json = serde_json::to_value(metadata)
        .map_err(|e| FloeError::plan(format!("cannot read table refs: {e}")))?;
    let refs: std::collections::BTreeMap<String, SnapshotReference> = match json.get("refs") {
        Some(refs) => serde_json::from_value(refs.clone())
            .map_err(|e| FloeError::plan(format!("cannot read table refs: {e}")))?,
        None => Default::default(),
    };
    Ok(refs.into_iter().collect())
}

fn refs(metadata: &TableMetadata) -> Result<RecordBatch, FloeError> {
    let refs = table_refs(metadata)?;
    let retention = |r: &SnapshotRetention| match r {
        SnapshotRetention::Branch {
            min_snapshots_to_keep,
            max_snapshot_age_ms,
            max_ref_age_ms,
        } => (
            "BRANCH",
            *max_ref_age_ms,
            *min_snapshots_to_keep,
            *max_snapshot_age_ms,
        ),
        SnapshotRetention::Tag { max_ref_age_ms } => ("TAG", *max_ref_age_ms, None, None),
    };
    let rows: Vec<_> = refs
        .iter()
        .map(|(name, reference)| {
            (
                name.as_str(),
                reference.snapshot_id,
                retention(&reference.retention),
            )
        })
        .collect();
    let schema = Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("snapshot_id", DataType::Int64, false),
        Field::new("max_reference_age_in_ms", DataType::Int64, true),
        Field::new("min_snapshots_to_keep", DataType::Int32, true),
        Field::new("max_snapshot_age_in_ms", DataType::Int64, true),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2.1))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.2.2))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2.3))),
        ],
    )?)
}

/// The manifests of the current snapshot.
async fn manifest_files(
    metadata: &TableMetadata,
    file_io: &FileIO,
) -> Result<Vec<ManifestFile>, FloeError> {
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Vec::new());
    };
    let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
    Ok(list.entries().to_vec())
}

/// A manifest entry and the partition spec id of its manifest.
pub(crate) type Entry = (ManifestEntryRef, i32);

/// Every entry of the current snapshot's manifests.
async fn entries_of(metadata: &TableMetadata, file_io: &FileIO) -> Result<Vec<Entry>, FloeError> {
    let mut entries = Vec::new();
    for manifest_file in manifest_files(metadata, file_io).await? {
        let manifest = manifest_file.load_manifest(file_io).await?;
        let spec_id = manifest_file.partition_spec_id;
        entries.extend(
            manifest
                .entries()
                .iter()
                .map(|entry| (Arc::clone(entry), spec_id)),
        );
    }
    Ok(entries)
}

fn manifests(files: &[ManifestFile]) -> Result<RecordBatch, FloeError> {
    let count =
        |select: fn(&ManifestFile) -> Option<u32>, content: ManifestContentType| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(files.iter().map(|f| {
                if f.content == content {
                    select(f).unwrap_or(0) as i32
                } else {
                    0
                }
            })))
        };
    let data = ManifestContentType::Data;
    let deletes = ManifestContentType::Deletes;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(files.iter().map(
            |f| match f.content {
                ManifestContentType::Data => 0,
                ManifestContentType::Deletes => 1,
            },
        ))),
        Arc::new(StringArray::from_iter_values(
            files.iter().map(|f| f.manifest_path.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            files.iter().map(|f| f.manifest_length),
        )),
        Arc::new(Int32Array::from_iter_values(
            files.iter().map(|f| f.partition_spec_id),
        )),
        Arc::new(Int64Array::from_iter_values(
            files.iter().map(|f| f.added_snapshot_id),
        )),
        count(|f| f.added_files_count, data),
        count(|f| f.existing_files_count, data),
        count(|f| f.deleted_files_count, data),
        count(|f| f.added_files_count, deletes),
        count(|f| f.existing_files_count, deletes),
        count(|f| f.deleted_files_count, deletes),
    ];
    let int = |name: &str| Field::new(name, DataType::Int32, false);
    let schema = Schema::new(vec![
        int("content"),
        Field::new("path", DataType::Utf8, false),
        Field::new("length", DataType::Int64, false),
        int("partition_spec_id"),
        Field::new("added_snapshot_id", DataType::Int64, false),
        int("added_data_files_count"),
        int("existing_data_files_count"),
        int("deleted_data_files_count"),
        int("added_delete_files_count"),
        int("existing_delete_files_count"),
        int("deleted_delete_files_count"),
    ]);
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// The columns of the `files` table for `entries`' files.
fn file_columns(live: &[&Entry]) -> Result<(Vec<Field>, Vec<ArrayRef>), FloeError> {
    let files: Vec<_> = live.iter().map(|(entry, _)| entry.data_file()).collect();
    let mut equality_ids = ListBuilder::new(Int32Builder::new());
    for file in &files {
        match file.equality_ids() {
            Some(ids) => {
                equality_ids.values().append_slice(&ids);
                equality_ids.append(true);
            }
            None => equality_ids.append(false),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            files.iter().map(|f| content_code(f.content_type())),
        )),
        Arc::new(StringArray::from_iter_values(
            files.iter().map(|f| f.file_path()),
        )),
        Arc::new(StringArray::from_iter_values(
            files
                .iter()
                .map(|f| f.file_format().to_string().to_uppercase()),
        )),
        Arc::new(Int32Array::from_iter_values(
            live.iter().map(|(_, spec_id)| *spec_id),
        )),
        Arc::new(Int64Array::from_iter_values(
            files.iter().map(|f| f.record_count() as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            files.iter().map(|f| f.file_size_in_bytes() as i64),
        )),
        Arc::new(equality_ids.finish()),
        Arc::new(StringArray::from_iter(
            files.iter().map(|f| f.referenced_data_file()),
        )),
        Arc::new(Int64Array::from_iter(
            files.iter().map(|f| f.content_offset()),
        )),
        Arc::new(Int64Array::from_iter(
            files.iter().map(|f| f.content_size_in_bytes()),
        )),
    ];
    let fields = vec![
        Field::new("content", DataType::Int32, false),
        Field::new("file_path", DataType::Utf8, false),
        Field::new("file_format", DataType::Utf8, false),
        Field::new("spec_id", DataType::Int32, false),
        Field::new("record_count", DataType::Int64, false),
        Field::new("file_size_in_bytes", DataType::Int64, false),
        Field::new("equality_ids", columns[6].data_type().clone(), true),
        Field::new("referenced_data_file", DataType::Utf8, true),
        Field::new("content_offset", DataType::Int64, true),
        Field::new("content_size_in_bytes", DataType::Int64, true),
    ];
    Ok((fields, columns))
}

/// `content` as the metadata tables number it: 0 data, 1 position deletes, 2 equality deletes.
fn content_code(content: DataContentType) -> i32 {
    match content {
        DataContentType::Data => 0,
        DataContentType::PositionDeletes => 1,
        DataContentType::EqualityDeletes => 2,
    }
}

fn entries(entries: &[Entry]) -> Result<RecordBatch, FloeError> {
    let all: Vec<&Entry> = entries.iter().collect();
    let (fields, columns) = file_columns(&all)?;
    let data_file = StructArray::try_new(Fields::from(fields), columns, None)?;
    let status = |entry: &ManifestEntryRef| match entry.status() {
        iceberg::spec::ManifestStatus::Existing => 0,
        iceberg::spec::ManifestStatus::Added => 1,
        iceberg::spec::ManifestStatus::Deleted => 2,
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            entries.iter().map(|(e, _)| status(e)),
        )),
        Arc::new(Int64Array::from_iter(
            entries.iter().map(|(e, _)| e.snapshot_id()),
        )),
        Arc::new(Int64Array::from_iter(
            entries.iter().map(|(e, _)| e.sequence_number()),
        )),
        Arc::new(Int64Array::from_iter(
            entries.iter().map(|(e, _)| e.file_sequence_number),
        )),
        Arc::new(data_file),
    ];
    let schema = Schema::new(vec![
        Field::new("status", DataType::Int32, false),
        Field::new("snapshot_id", DataType::Int64, true),
        Field::new("sequence_number", DataType::Int64, true),
        Field::new("file_sequence_number", DataType::Int64, true),
        Field::new("data_file", columns[4].data_type().clone(), false),
    ]);
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}
