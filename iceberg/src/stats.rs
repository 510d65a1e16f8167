//! Per-file column statistics from Iceberg manifests, handed to DataFusion as inexact
//! `Statistics` on each `PartitionedFile`.
//!
//! The `iceberg` crate's planned `FileScanTask`s carry only a row count, but the manifests they
//! came from hold each file's column lower/upper bounds and null counts. DataFusion uses them for
//! join ordering and for pruning whole files against dynamic filters. Manifests are immutable, so
//! the bounds read from one are cached by its path.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use iceberg::io::FileIO;
use iceberg::spec::{
    Datum, ManifestContentType, ManifestList, PrimitiveLiteral, Snapshot, TableMetadata,
};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use floe_common::cache::BoundedCache;

/// Bounds of one data file, by Iceberg field id.
#[derive(Debug)]
pub struct FileBounds {
    record_count: u64,
    size_bytes: u64,
    lower: HashMap<i32, Datum>,
    upper: HashMap<i32, Datum>,
    null_counts: HashMap<i32, u64>,
}

/// Bounds of data files by file path.
pub type ManifestBounds = Arc<HashMap<String, Arc<FileBounds>>>;

/// Bounds of live data files by manifest path, and of whole snapshots by manifest-list path.
#[derive(Debug)]
pub struct ManifestStatsCache {
    manifests: BoundedCache<ManifestBounds>,
    snapshots: BoundedCache<ManifestBounds>,
}

impl ManifestStatsCache {
    /// A cache of at most `max_manifests` manifests (and as many snapshots).
    pub fn new(max_manifests: usize) -> Self {
        Self {
            manifests: BoundedCache::new(max_manifests),
            snapshots: BoundedCache::new(max_manifests),
        }
    }

    /// Bounds of every live data file in `snapshot` of the table, by file path.
    pub async fn snapshot_bounds(
        &self,
        metadata: &TableMetadata,
        snapshot: &Snapshot,
        file_io: &FileIO,
    ) -> iceberg::Result<ManifestBounds> {
        let mut all = HashMap::new();
        if let Some(cached) = self.snapshots.get(snapshot.manifest_list()) {
            return Ok(cached);
        }
        let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
        let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
        for manifest_file in list.entries() {
            if manifest_file.content != ManifestContentType::Data {
                continue;
            }
            let bounds = match self.manifests.get(&manifest_file.manifest_path) {
                Some(bounds) => bounds,
                None => {
                    let manifest = manifest_file.load_manifest(file_io).await?;
                    let bounds: HashMap<String, Arc<FileBounds>> = manifest
                        .entries()
                        .iter()
                        .filter(|entry| entry.is_alive())
                        .map(|entry| {
                            let file = entry.data_file();
                            let bounds = FileBounds {
                                record_count: file.record_count(),
                                size_bytes: file.file_size_in_bytes(),
                                lower: file.lower_bounds().clone(),
                                upper: file.upper_bounds().clone(),
                                null_counts: file.null_value_counts().clone(),
                            };
                            (file.file_path().to_string(), Arc::new(bounds))
                        })
                        .collect();
                    self.manifests
                        .get_or_insert(&manifest_file.manifest_path, Arc::new(bounds))
                }
            };
            all.extend(bounds.iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
        }
        Ok(self
            .snapshots
            .get_or_insert(snapshot.manifest_list(), Arc::new(all)))
    }
}

/// DataFusion statistics for one file of a table with Arrow schema `schema`.
pub fn file_statistics(bounds: &FileBounds, schema: &Schema) -> Statistics {
    let column_statistics = schema
        .fields()
        .iter()
        .map(|field| {
            let Some(id) = field
                .metadata()
                .get(PARQUET_FIELD_ID_META_KEY)
                .and_then(|id| id.parse::<i32>().ok())
            else {
                return ColumnStatistics::new_unknown();
            };
            let scalar = |datum: Option<&Datum>| {
                datum
                    .and_then(|d| datum_to_scalar(d, field.data_type()))
                    .map_or(Precision::Absent, Precision::Inexact)
            };
            ColumnStatistics {
                null_count: bounds
                    .null_counts
                    .get(&id)
                    .map_or(Precision::Absent, |n| Precision::Inexact(*n as usize)),
                min_value: scalar(bounds.lower.get(&id)),
                max_value: scalar(bounds.upper.get(&id)),
                ..ColumnStatistics::new_unknown()
            }
        })
        .collect();
    // Inexact throughout: row counts are before deletes and string bounds may be truncated.
    Statistics {
        num_rows: Precision::Inexact(bounds.record_count as usize),
        total_byte_size: Precision::Inexact(bounds.size_bytes as usize),
        column_statistics,
    }
}

/// Statistics of a whole table (every file of `bounds` merged): rows, and per column the
/// overall bounds and null count. Inexact, like each file's.
pub fn table_statistics(bounds: &ManifestBounds, schema: &Schema) -> Statistics {
    let files: Vec<Statistics> = bounds
        .values()
        .map(|file| file_statistics(file, schema))
        .collect();
    Statistics::try_merge_iter(&files, schema).unwrap_or_else(|_| Statistics::new_unknown(schema))
}

fn datum_to_scalar(datum: &Datum, data_type: &DataType) -> Option<ScalarValue> {
    literal_to_scalar(datum.literal(), data_type)
}

/// `literal` as a value of the Arrow type `data_type`; `None` for a pair this does not map.
pub(crate) fn literal_to_scalar(
    literal: &PrimitiveLiteral,
    data_type: &DataType,
) -> Option<ScalarValue> {
    let value = match (literal, data_type) {
        (PrimitiveLiteral::Boolean(b), DataType::Boolean) => ScalarValue::Boolean(Some(*b)),
        (PrimitiveLiteral::Int(v), DataType::Int32) => ScalarValue::Int32(Some(*v)),
        (PrimitiveLiteral::Int(v), DataType::Date32) => ScalarValue::Date32(Some(*v)),
        (PrimitiveLiteral::Long(v), DataType::Int64) => ScalarValue::Int64(Some(*v)),
        (PrimitiveLiteral::Long(v), DataType::Time64(TimeUnit::Microsecond)) => {
            ScalarValue::Time64Microsecond(Some(*v))
        }
        (PrimitiveLiteral::Long(v), DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
            ScalarValue::TimestampMicrosecond(Some(*v), tz.clone())
        }
        (PrimitiveLiteral::Long(v), DataType::Timestamp(TimeUnit::Nanosecond, tz)) => {
            ScalarValue::TimestampNanosecond(Some(*v), tz.clone())
        }
        (PrimitiveLiteral::Float(v), DataType::Float32) if !v.is_nan() => {
            ScalarValue::Float32(Some(v.0))
        }
        (PrimitiveLiteral::Double(v), DataType::Float64) if !v.is_nan() => {
            ScalarValue::Float64(Some(v.0))
        }
        (PrimitiveLiteral::String(s), DataType::Utf8) => ScalarValue::Utf8(Some(s.clone())),
        (PrimitiveLiteral::String(s), DataType::Utf8View) => ScalarValue::Utf8View(Some(s.clone())),
        (PrimitiveLiteral::String(s), DataType::LargeUtf8) => {
            ScalarValue::LargeUtf8(Some(s.clone()))
        }
        (PrimitiveLiteral::Int128(v), DataType::Decimal128(p, s)) => {
            ScalarValue::Decimal128(Some(*v), *p, *s)
        }
        _ => return None,
    };
    Some(value)
}
