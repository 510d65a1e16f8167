//! Reads delete files in the task that applies them, each at most once per task.
//!
//! A position delete file lists `(file_path, pos)` for any number of data files, so it is read
//! whole once and kept by data file; a deletion vector is one ranged read of its Puffin file; an
//! equality delete file becomes a set of row keys in the table's column types (read through the
//! same field-id matching as data files, so a renamed or promoted column compares right).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetObjectReader;
use roaring::RoaringTreemap;

use super::{DeleteFile, DeleteKind, vector};
use crate::field_ids::field_id;
use crate::object_store_location;
use crate::scan::{IcebergScanSpec, ParquetRead, parquet_config};
use floe_common::error::FloeError;

/// Keys of one equality delete file.
#[derive(Debug)]
pub struct EqualityKeys {
    /// The compared columns, as indices into the table schema.
    pub columns: Vec<usize>,
    /// Encodes a row's compared values; the same converter encodes the probing rows.
    pub converter: RowConverter,
    /// Encoded deleted keys. Nulls are encoded as values, so a null key deletes rows whose
    /// column is null, as the spec's equality semantics require.
    pub keys: HashSet<Box<[u8]>>,
}

/// The delete files one task has read, by index into the scan's delete files.
pub struct TaskDeletes {
    spec: Arc<IcebergScanSpec>,
    context: Arc<TaskContext>,
    positions: HashMap<u32, Arc<HashMap<String, RoaringTreemap>>>,
    equality: HashMap<u32, Arc<EqualityKeys>>,
    /// Delete files read so far (for `delete_files_read`).
    pub files_read: usize,
}

impl TaskDeletes {
    /// An empty cache for one task of the scan `spec`.
    pub fn new(spec: Arc<IcebergScanSpec>, context: Arc<TaskContext>) -> Self {
        Self {
            spec,
            context,
            positions: HashMap::new(),
            equality: HashMap::new(),
            files_read: 0,
        }
    }

    fn file(&self, index: u32) -> Result<&DeleteFile> {
        self.spec
            .delete_files
            .get(index as usize)
            .ok_or_else(|| DataFusionError::Internal(format!("scan has no delete file {index}")))
    }

    /// Deleted row positions of the data file at `location`, from all its position delete files
    /// and deletion vectors; `None` when it has neither.
    pub async fn positions_of(
        &mut self,
        location: &str,
        deletes: &[u32],
    ) -> Result<Option<RoaringTreemap>> {
        let mut all: Option<RoaringTreemap> = None;
        for &index in deletes {
            let file = self.file(index)?.clone();
            let positions = match &file.kind {
                DeleteKind::Equality { .. } => continue,
                DeleteKind::Vector { offset, length } => {
                    self.files_read += 1;
                    let bytes = self.read_range(&file.location, *offset, *length).await?;
                    vector::decode(&bytes, &file.location)?
                }
                DeleteKind::Positions => {
                    let by_file = match self.positions.get(&index) {
                        Some(by_file) => Arc::clone(by_file),
                        None => {
                            self.files_read += 1;
                            let by_file = Arc::new(self.read_position_file(&file).await?);
                            self.positions.insert(index, Arc::clone(&by_file));
                            by_file
                        }
                    };
                    match by_file.get(location) {
                        Some(positions) => positions.clone(),
                        None => continue,
                    }
                }
            };
            match &mut all {
                Some(all) => *all |= positions,
                None => all = Some(positions),
            }
        }
        Ok(all)
    }

    /// The equality delete keys the data file must apply.
    pub async fn equality_of(&mut self, deletes: &[u32]) -> Result<Vec<Arc<EqualityKeys>>> {
        let mut all = Vec::new();
        for &index in deletes {
            let file = self.file(index)?.clone();
            let DeleteKind::Equality { field_ids } = &file.kind else {
                continue;
            };
            let keys = match self.equality.get(&index) {
                Some(keys) => Arc::clone(keys),
                None => {
                    self.files_read += 1;
                    let keys = Arc::new(self.read_equality_file(&file, field_ids).await?);
                    self.equality.insert(index, Arc::clone(&keys));
                    keys
                }
            };
            all.push(keys);
        }
        Ok(all)
    }

    async fn read_range(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let (store, path) = self.store_of(location)?;
        let bytes = store
            .get_range(&path, offset..offset + length)
            .await
            .map_err(|e| read_error(location, e))?;
        Ok(bytes.to_vec())
    }

    fn store_of(&self, location: &str) -> Result<(Arc<dyn object_store::ObjectStore>, Path)> {
        let (store_url, path) = object_store_location(location)?;
        let runtime = self.context.runtime_env();
        let store_url =
            crate::catalogs::ensure_object_store(&store_url, self.spec.s3.as_ref(), &runtime)?;
        let store = runtime.object_store(&store_url)?;
        Ok((store, Path::from(path)))
    }

    /// A position delete file's positions, by data file location.
    async fn read_position_file(
        &self,
        file: &DeleteFile,
    ) -> Result<HashMap<String, RoaringTreemap>> {
        let (store, path) = self.store_of(&file.location)?;
        let reader = ParquetObjectReader::new(store, path).with_file_size(file.size_bytes);
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| read_error(&file.location, e))?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), ["file_path", "pos"]);
        let mut batches = builder
            .with_projection(mask)
            .build()
            .map_err(|e| read_error(&file.location, e))?;
        let mut by_file: HashMap<String, RoaringTreemap> = HashMap::new();
        while let Some(batch) = batches
            .try_next()
            .await
            .map_err(|e| read_error(&file.location, e))?
        {
            let (paths, positions) = position_columns(&batch, &file.location)?;
            let paths = paths.as_string::<i32>();
            let positions = positions.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                if paths.is_null(row) || positions.is_null(row) {
                    return Err(FloeError::plan(format!(
                        "position delete file {} has a null file_path or pos",
                        file.location
                    ))
                    .into());
                }
                by_file
                    .entry(paths.value(row).to_string())
                    .or_default()
                    .insert(positions.value(row) as u64);
            }
        }
        Ok(by_file)
    }

    /// An equality delete file's keys, in the table's types for `field_ids`.
    async fn read_equality_file(
        &self,
        file: &DeleteFile,
        field_ids: &[i32],
    ) -> Result<EqualityKeys> {
        let columns = table_columns(&self.spec.table_schema, field_ids, &file.location)?;
        let (store_url, path) = object_store_location(&file.location)?;
        let group = FileGroup::new(vec![PartitionedFile::new(path, file.size_bytes)]);
        let config = parquet_config(
            &self.spec,
            &self.context.runtime_env(),
            ParquetRead {
                store_url: &store_url,
                groups: vec![group],
                projection: Some(columns.clone()),
                predicate: None,
                limit: None,
            },
        )?;
        let batches: Vec<RecordBatch> = DataSourceExec::from_data_source(config)
            .execute(0, Arc::clone(&self.context))?
            .try_collect()
            .await?;
        let fields = columns
            .iter()
            .map(|&i| SortField::new(self.spec.table_schema.field(i).data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let mut keys = HashSet::new();
        for batch in &batches {
            let rows = converter.convert_columns(batch.columns())?;
            keys.extend(rows.iter().map(|row| Box::<[u8]>::from(row.as_ref())));
        }
        Ok(EqualityKeys {
            columns,
            converter,
            keys,
        })
    }
}

/// The `file_path` (as UTF-8) and `pos` columns of a position delete batch.
fn position_columns(
    batch: &RecordBatch,
    location: &str,
) -> Result<(Arc<dyn Array>, Arc<dyn Array>)> {
    let column = |name: &str, to: &DataType| -> Result<Arc<dyn Array>> {
        let array = batch.column_by_name(name).ok_or_else(|| {
            FloeError::plan(format!(
                "position delete file {location} has no `{name}` column"
            ))
        })?;
        Ok(cast(array, to)?)
    };
    Ok((
        column("file_path", &DataType::Utf8)?,
        column("pos", &DataType::Int64)?,
    ))
}

/// Indices into `table_schema` of the columns with `field_ids`.
fn table_columns(
    table_schema: &SchemaRef,
    field_ids: &[i32],
    location: &str,
) -> Result<Vec<usize>> {
    field_ids
        .iter()
        .map(|id| {
            table_schema
                .fields()
                .iter()
                .position(|field| field_id(field) == Some(*id))
                .ok_or_else(|| {
                    DataFusionError::from(FloeError::NotSupported(format!(
                        "equality delete file {location} compares field id {id}, which the \
                         table's current schema no longer has"
                    )))
                })
        })
        .collect()
}

fn read_error(location: &str, error: impl std::fmt::Display) -> DataFusionError {
    FloeError::plan(format!("cannot read delete file {location}: {error}")).into()
}
