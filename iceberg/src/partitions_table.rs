//! The `partitions` metadata table: live files, rows and bytes per partition of the current
//! snapshot, with Spark's columns.
//!
//! `partition` is a struct of the default spec's partition fields. A file written under an older
//! spec fills the fields it shares with the default spec (matched by partition field id) and
//! leaves the others null, so partitions of every spec appear, each row keyed by its spec id too.
//! An unpartitioned table has no `partition` column and one row.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StructArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use iceberg::arrow::type_to_arrow_type;
use iceberg::spec::{DataContentType, Literal, TableMetadata};

use super::metadata_tables::Entry;
use super::stats::literal_to_scalar;
use floe_common::error::FloeError;

/// What the table counts for one partition.
#[derive(Debug, Default)]
struct Totals {
    record_count: i64,
    file_count: i32,
    total_data_file_size_in_bytes: i64,
    position_delete_record_count: i64,
    position_delete_file_count: i32,
    equality_delete_record_count: i64,
    equality_delete_file_count: i32,
    last_updated: Option<(i64, i64)>,
}

/// The table's rows for the entries of the current snapshot.
pub(crate) fn partitions(
    metadata: &TableMetadata,
    entries: &[Entry],
) -> Result<RecordBatch, FloeError> {
    let partition_type = metadata
        .default_partition_spec()
        .partition_type(metadata.current_schema())?;
    let output_ids: Vec<i32> = partition_type.fields().iter().map(|f| f.id).collect();
    let mut totals: BTreeMap<(i32, String), (Vec<Option<Literal>>, Totals)> = BTreeMap::new();
    for (entry, spec_id) in entries.iter().filter(|(entry, _)| entry.is_alive()) {
        let file = entry.data_file();
        let spec_ids: Vec<i32> = metadata
            .partition_spec_by_id(*spec_id)
            .map(|spec| spec.fields().iter().map(|f| f.field_id).collect())
            .unwrap_or_default();
        let values: Vec<Option<Literal>> = output_ids
            .iter()
            .map(|id| {
                let position = spec_ids.iter().position(|own| own == id)?;
                file.partition().fields().get(position).cloned().flatten()
            })
            .collect();
        let key = (*spec_id, format!("{values:?}"));
        let (_, total) = totals
            .entry(key)
            .or_insert_with(|| (values, Totals::default()));
        let records = file.record_count() as i64;
        match file.content_type() {
            DataContentType::Data => {
                total.record_count += records;
                total.file_count += 1;
                total.total_data_file_size_in_bytes += file.file_size_in_bytes() as i64;
            }
            DataContentType::PositionDeletes => {
                total.position_delete_record_count += records;
                total.position_delete_file_count += 1;
            }
            DataContentType::EqualityDeletes => {
                total.equality_delete_record_count += records;
                total.equality_delete_file_count += 1;
            }
        }
        if let Some(snapshot) = entry
            .snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id))
        {
            let updated = (snapshot.timestamp_ms(), snapshot.snapshot_id());
            total.last_updated = total.last_updated.max(Some(updated));
        }
    }
    let rows: Vec<(i32, Vec<Option<Literal>>, Totals)> = totals
        .into_iter()
        .map(|((spec_id, _), (values, total))| (spec_id, values, total))
        .collect();

    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if !output_ids.is_empty() {
        let mut struct_fields = Vec::new();
        let mut struct_columns = Vec::new();
        for (index, field) in partition_type.fields().iter().enumerate() {
            let data_type = type_to_arrow_type(&field.field_type)?;
            let scalars = rows.iter().map(|(_, values, _)| match &values[index] {
                Some(Literal::Primitive(literal)) => literal_to_scalar(literal, &data_type)
                    .map_or_else(|| ScalarValue::try_from(&data_type), Ok),
                _ => ScalarValue::try_from(&data_type),
            });
            let scalars = scalars.collect::<Result<Vec<_>, _>>()?;
            struct_columns.push(if scalars.is_empty() {
                arrow::array::new_empty_array(&data_type)
            } else {
                ScalarValue::iter_to_array(scalars)?
            });
            struct_fields.push(Field::new(&field.name, data_type, true));
        }
        let partition = StructArray::try_new(Fields::from(struct_fields), struct_columns, None)?;
        fields.push(Field::new(
            "partition",
            partition.data_type().clone(),
            false,
        ));
        columns.push(Arc::new(partition));
    }
    let int = |pick: fn(&Totals) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|(_, _, t)| pick(t)),
        ))
    };
    let long = |pick: fn(&Totals) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, _, t)| pick(t)),
        ))
    };
    columns.extend([
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|(spec_id, _, _)| *spec_id),
        )) as ArrayRef,
        long(|t| t.record_count),
        int(|t| t.file_count),
        long(|t| t.total_data_file_size_in_bytes),
        long(|t| t.position_delete_record_count),
        int(|t| t.position_delete_file_count),
        long(|t| t.equality_delete_record_count),
        int(|t| t.equality_delete_file_count),
        Arc::new(
            TimestampMillisecondArray::from_iter(
                rows.iter().map(|(_, _, t)| t.last_updated.map(|u| u.0)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|(_, _, t)| t.last_updated.map(|u| u.1)),
        )),
    ]);
    for (name, data_type, nullable) in [
        ("spec_id", DataType::Int32, false),
        ("record_count", DataType::Int64, false),
        ("file_count", DataType::Int32, false),
        ("total_data_file_size_in_bytes", DataType::Int64, false),
        ("position_delete_record_count", DataType::Int64, false),
        ("position_delete_file_count", DataType::Int32, false),
        ("equality_delete_record_count", DataType::Int64, false),
        ("equality_delete_file_count", DataType::Int32, false),
        (
            "last_updated_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        ("last_updated_snapshot_id", DataType::Int64, true),
    ] {
        fields.push(Field::new(name, data_type, nullable));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
