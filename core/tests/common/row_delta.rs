//! Test fixtures written to the Iceberg spec with the `iceberg` crate's public types: a snapshot
//! that adds delete files (equality delete files, deletion vectors) to a table.
//!
//! No writer available here produces these (PyIceberg 0.12 writes neither; DuckDB's deletion
//! vectors are refused by `weed mini`), and `iceberg` 0.10 keeps its row-delta commit private.
//! So the fixture writes the delete files, a delete manifest, a manifest list, a snapshot and new
//! table metadata itself, and registers that metadata as a new table in the catalog.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use floe_iceberg::catalogs::FloeCatalog;
use floe_iceberg::deletes::vector;
use futures::TryStreamExt;
use iceberg::io::FileIO;
use iceberg::puffin::{Blob, CompressionCodec, DELETION_VECTOR_V1, PuffinReader, PuffinWriter};
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, FormatVersion, MAIN_BRANCH,
    ManifestList, ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot,
    SnapshotReference, SnapshotRetention, Summary, TableMetadataBuilder,
};
use iceberg::{MetadataLocation, TableIdent};
use parquet::arrow::{ArrowWriter, PARQUET_FIELD_ID_META_KEY};
use roaring::RoaringTreemap;

/// Locations of the data files of `table`'s current snapshot, in the order the scan plans them.
pub async fn data_files(catalog: &FloeCatalog, table: &TableIdent) -> Vec<String> {
    let table = catalog.iceberg.load_table(table).await.unwrap();
    let tasks: Vec<_> = table
        .scan()
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    tasks.into_iter().map(|task| task.data_file_path).collect()
}

/// A deletion vector of `data_file` deleting `positions`, in its own Puffin file.
pub async fn deletion_vector(
    file_io: &FileIO,
    location: &str,
    data_file: &str,
    positions: &[u64],
) -> DataFile {
    let bitmap: RoaringTreemap = positions.iter().copied().collect();
    let output = file_io.new_output(location).unwrap();
    let mut writer = PuffinWriter::new(&output, HashMap::new(), false)
        .await
        .unwrap();
    let blob = Blob::builder()
        .r#type(DELETION_VECTOR_V1.to_string())
        .fields(Vec::new())
        .snapshot_id(-1)
        .sequence_number(-1)
        .data(vector::encode(&bitmap))
        .properties(HashMap::from([
            ("referenced-data-file".to_string(), data_file.to_string()),
            ("cardinality".to_string(), positions.len().to_string()),
        ]))
        .build();
    writer.add(blob, CompressionCodec::None).await.unwrap();
    writer.close().await.unwrap();
    let input = file_io.new_input(location).unwrap();
    let size = input.metadata().await.unwrap().size;
    let metadata = PuffinReader::new(input)
        .file_metadata()
        .await
        .unwrap()
        .clone();
    let blob = &metadata.blobs()[0];
    DataFileBuilder::default()
        .content(DataContentType::PositionDeletes)
        .file_path(location.to_string())
        .file_format(DataFileFormat::Puffin)
        .record_count(positions.len() as u64)
        .file_size_in_bytes(size)
        .referenced_data_file(Some(data_file.to_string()))
        .content_offset(Some(blob.offset() as i64))
        .content_size_in_bytes(Some(blob.length() as i64))
        .build()
        .unwrap()
}

/// An equality delete file on the BIGINT column with `field_id`, deleting rows whose value is in
/// `values` (a `None` deletes rows where the column is null).
pub fn equality_deletes(
    path: &std::path::Path,
    field_id: i32,
    name: &str,
    values: &[Option<i64>],
) -> DataFile {
    let field = Field::new(name, DataType::Int64, true).with_metadata(HashMap::from([(
        PARQUET_FIELD_ID_META_KEY.to_string(),
        field_id.to_string(),
    )]));
    let schema = Arc::new(Schema::new(vec![field]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(values.to_vec()))],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    DataFileBuilder::default()
        .content(DataContentType::EqualityDeletes)
        .file_path(path.display().to_string())
        .file_format(DataFileFormat::Parquet)
        .record_count(values.len() as u64)
        .file_size_in_bytes(std::fs::metadata(path).unwrap().len())
        .equality_ids(Some(vec![field_id]))
        .build()
        .unwrap()
}

/// Commits a snapshot adding `deletes` on top of `table`'s current one, as new metadata registered
/// under `registered`.
pub async fn register_with_deletes(
    catalog: &FloeCatalog,
    table: &TableIdent,
    registered: &TableIdent,
    deletes: Vec<DataFile>,
) {
    let table = catalog.iceberg.load_table(table).await.unwrap();
    let metadata = table.metadata();
    let file_io = table.file_io();
    let parent = metadata.current_snapshot().unwrap();
    let snapshot_id = parent.snapshot_id() + 1;
    let sequence_number = metadata.last_sequence_number() + 1;
    let location = metadata.location();
    let id = uuid::Uuid::new_v4();

    let manifest_output = file_io
        .new_output(format!("{location}/metadata/{id}-m0.avro"))
        .unwrap();
    let builder = ManifestWriterBuilder::new(
        manifest_output,
        Some(snapshot_id),
        Arc::clone(metadata.current_schema()),
        metadata.default_partition_spec().as_ref().clone(),
    );
    let mut writer = match metadata.format_version() {
        FormatVersion::V3 => builder.build_v3_deletes(),
        _ => builder.build_v2_deletes(),
    };
    let added = deletes.len();
    for delete in deletes {
        writer.add_file(delete, sequence_number).unwrap();
    }
    let delete_manifest = writer.write_manifest_file().await.unwrap();

    let list_bytes = file_io
        .new_input(parent.manifest_list())
        .unwrap()
        .read()
        .await
        .unwrap();
    let existing =
        ManifestList::parse_with_version(&list_bytes, metadata.format_version()).unwrap();
    let list_location = format!("{location}/metadata/snap-{snapshot_id}-{id}.avro");
    let list_output = file_io
        .new_output(&list_location)
        .unwrap()
        .writer()
        .await
        .unwrap();
    let mut list = match metadata.format_version() {
        FormatVersion::V3 => ManifestListWriter::v3(
            list_output,
            snapshot_id,
            Some(parent.snapshot_id()),
            sequence_number,
            Some(metadata.next_row_id()),
        ),
        _ => ManifestListWriter::v2(
            list_output,
            snapshot_id,
            Some(parent.snapshot_id()),
            sequence_number,
        ),
    };
    list.add_manifests(existing.entries().iter().cloned().chain([delete_manifest]))
        .unwrap();
    list.close().await.unwrap();

    let summary = Summary {
        operation: Operation::Delete,
        additional_properties: HashMap::from([(
            "added-delete-files".to_string(),
            added.to_string(),
        )]),
    };
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(parent.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(parent.timestamp_ms() + 1)
        .with_manifest_list(list_location)
        .with_summary(summary)
        .with_schema_id(metadata.current_schema_id());
    let snapshot = match metadata.format_version() {
        FormatVersion::V3 => snapshot.with_row_range(metadata.next_row_id(), 0).build(),
        _ => snapshot.build(),
    };
    let new_metadata = TableMetadataBuilder::new_from_metadata(
        metadata.clone(),
        table.metadata_location().map(str::to_string),
    )
    .add_snapshot(snapshot)
    .unwrap()
    .set_ref(
        MAIN_BRANCH,
        SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
    )
    .unwrap()
    .build()
    .unwrap()
    .metadata;
    let new_location = MetadataLocation::new_with_metadata(location, &new_metadata);
    new_metadata.write_to(file_io, &new_location).await.unwrap();
    catalog
        .iceberg
        .register_table(registered, new_location.to_string())
        .await
        .unwrap();
}
