//! Executes one partition of an Iceberg scan whose files carry deletes.
//!
//! The partition's files without deletes are read together by the planned Parquet scan (with
//! its dynamic filters). Each file with deletes is then read on its own, so that its deletes
//! apply to its rows only: deleted positions become a [`ParquetAccessPlan`] (rows skipped
//! before decoding, whole row groups when all their rows are gone); equality deletes need their
//! compared columns, so the file is read with those columns added, filtered, and projected back.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetAccessPlan, ParquetFileReaderFactory, RowGroupAccess,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt, stream};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::metadata::ParquetMetaData;
use roaring::RoaringTreemap;
use tokio::sync::Mutex;

use super::load::{EqualityKeys, TaskDeletes};
use crate::scan::{IcebergScanSpec, ParquetRead, ScanFile, parquet_config, partitioned_file};

/// `EXPLAIN ANALYZE` counters of deletes applied.
#[derive(Debug, Clone)]
pub struct DeleteMetrics {
    /// Delete files (and deletion vectors) read.
    pub files_read: Count,
    /// Data rows removed by deletes.
    pub rows_deleted: Count,
}

impl DeleteMetrics {
    /// Counters registered in `metrics`.
    pub fn new(metrics: &ExecutionPlanMetricsSet) -> Self {
        Self {
            files_read: MetricBuilder::new(metrics).global_counter("delete_files_read"),
            rows_deleted: MetricBuilder::new(metrics).global_counter("rows_deleted"),
        }
    }
}

/// One partition's read with deletes; see the module docs.
pub struct ScanWithDeletes {
    /// The scan.
    pub spec: Arc<IcebergScanSpec>,
    /// The planned Parquet scan of all partitions.
    pub config: Arc<FileScanConfig>,
    /// The scan's output schema.
    pub schema: SchemaRef,
    /// Counters.
    pub metrics: DeleteMetrics,
}

impl ScanWithDeletes {
    /// The rows of `partition` with its files' deletes applied.
    pub fn execute(
        self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self
            .spec
            .file_groups
            .get(partition)
            .cloned()
            .unwrap_or_default();
        let (with_deletes, without): (Vec<ScanFile>, Vec<ScanFile>) =
            files.into_iter().partition(|file| !file.deletes.is_empty());
        let mut parts: Vec<SendableRecordBatchStream> = Vec::new();
        if !without.is_empty() {
            let group = FileGroup::new(without.iter().map(partitioned_file).collect());
            let config = FileScanConfigBuilder::from(self.config.as_ref().clone())
                .with_file_groups(vec![group])
                .build();
            parts.push(DataSourceExec::from_data_source(config).execute(0, Arc::clone(&context))?);
        }
        let deletes = Arc::new(Mutex::new(TaskDeletes::new(
            Arc::clone(&self.spec),
            Arc::clone(&context),
        )));
        let this = Arc::new(self);
        let schema = Arc::clone(&this.schema);
        let per_file = stream::iter(with_deletes)
            .then(move |file| {
                let this = Arc::clone(&this);
                let deletes = Arc::clone(&deletes);
                let context = Arc::clone(&context);
                async move { this.open_file(file, &deletes, context).await }
            })
            .try_flatten();
        let all = stream::iter(parts).flatten().chain(per_file);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, all)))
    }

    /// The rows of one data file (or piece) with its deletes applied.
    async fn open_file(
        &self,
        file: ScanFile,
        deletes: &Mutex<TaskDeletes>,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (positions, equality) = {
            let mut deletes = deletes.lock().await;
            let before = deletes.files_read;
            let positions = deletes.positions_of(&file.location, &file.deletes).await?;
            let equality = deletes.equality_of(&file.deletes).await?;
            self.metrics.files_read.add(deletes.files_read - before);
            (positions, equality)
        };
        let mut partitioned = partitioned_file(&file);
        if let Some(positions) = &positions {
            let metadata = self.file_metadata(&partitioned, &context).await?;
            let (plan, removed) = access_plan(&metadata, positions, file.range.as_ref());
            self.metrics.rows_deleted.add(removed as usize);
            partitioned = partitioned.with_extensions(Arc::new(plan));
        }
        let group = FileGroup::new(vec![partitioned]);
        if equality.is_empty() {
            let config = FileScanConfigBuilder::from(self.config.as_ref().clone())
                .with_file_groups(vec![group])
                .with_limit(None)
                .build();
            return DataSourceExec::from_data_source(config).execute(0, context);
        }
        self.open_with_equality(group, equality, context)
    }

    /// Reads `group` (one file) with the equality deletes' columns added, drops the rows whose
    /// keys are deleted, and returns the scan's own columns.
    fn open_with_equality(
        &self,
        group: FileGroup,
        equality: Vec<Arc<EqualityKeys>>,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let table_width = self.spec.table_schema.fields().len();
        let mut projection = self
            .spec
            .projection
            .clone()
            .unwrap_or_else(|| (0..table_width).collect());
        let output_width = projection.len();
        for keys in &equality {
            for column in &keys.columns {
                if !projection.contains(column) {
                    projection.push(*column);
                }
            }
        }
        let key_positions: Vec<Vec<usize>> = equality
            .iter()
            .map(|keys| {
                keys.columns
                    .iter()
                    .filter_map(|c| projection.iter().position(|p| p == c))
                    .collect()
            })
            .collect();
        let config = parquet_config(
            &self.spec,
            &context.runtime_env(),
            ParquetRead {
                store_url: &self.spec.object_store_url,
                groups: vec![group],
                projection: Some(projection),
                predicate: self.spec.predicate.clone(),
                limit: None,
            },
        )?;
        let rows_deleted = self.metrics.rows_deleted.clone();
        let output: Vec<usize> = (0..output_width).collect();
        let schema = Arc::clone(&self.schema);
        let batches = DataSourceExec::from_data_source(config)
            .execute(0, context)?
            .map(move |batch| {
                let batch = batch?;
                let kept = drop_deleted_keys(&batch, &equality, &key_positions)?;
                rows_deleted.add(batch.num_rows() - kept.num_rows());
                let projected = kept.project(&output)?;
                Ok(RecordBatch::try_new_with_options(
                    Arc::clone(&schema),
                    projected.columns().to_vec(),
                    &arrow::array::RecordBatchOptions::new()
                        .with_row_count(Some(projected.num_rows())),
                )?)
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }

    /// The data file's Parquet footer, through the metadata cache the scan then reuses.
    async fn file_metadata(
        &self,
        file: &datafusion::datasource::listing::PartitionedFile,
        context: &TaskContext,
    ) -> Result<Arc<ParquetMetaData>> {
        let runtime = context.runtime_env();
        let store = runtime.object_store(&self.config.object_store_url)?;
        let factory = CachedParquetFileReaderFactory::new(
            store,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut reader =
            factory.create_reader(0, file.clone(), None, &ExecutionPlanMetricsSet::new())?;
        Ok(reader.get_metadata(None).await?)
    }
}

/// The rows of `batch` whose keys no equality delete holds.
fn drop_deleted_keys(
    batch: &RecordBatch,
    equality: &[Arc<EqualityKeys>],
    key_positions: &[Vec<usize>],
) -> Result<RecordBatch> {
    let mut keep = vec![true; batch.num_rows()];
    for (keys, positions) in equality.iter().zip(key_positions) {
        let columns: Vec<_> = positions
            .iter()
            .map(|&p| Arc::clone(batch.column(p)))
            .collect();
        let rows = keys.converter.convert_columns(&columns)?;
        for (row, kept) in rows.iter().zip(keep.iter_mut()) {
            if *kept && keys.keys.contains(row.as_ref()) {
                *kept = false;
            }
        }
    }
    Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
}

/// Which rows of the file to read: row groups outside `range` (when the file is split) are
/// skipped as DataFusion would skip them, and deleted positions are deselected. Returns the plan
/// and the number of rows it removes.
fn access_plan(
    metadata: &ParquetMetaData,
    deleted: &RoaringTreemap,
    range: Option<&Range<u64>>,
) -> (ParquetAccessPlan, u64) {
    let mut plan = Vec::with_capacity(metadata.num_row_groups());
    let mut removed = 0;
    let mut first_row = 0u64;
    for row_group in metadata.row_groups() {
        let rows = row_group.num_rows().max(0) as u64;
        let rows_range = first_row..first_row + rows;
        first_row += rows;
        let column = row_group.column(0);
        let start = column
            .dictionary_page_offset()
            .unwrap_or_else(|| column.data_page_offset()) as u64;
        if range.is_some_and(|range| !range.contains(&start)) {
            plan.push(RowGroupAccess::Skip);
            continue;
        }
        let deleted_here = deleted.range_cardinality(rows_range.clone());
        removed += deleted_here;
        plan.push(if deleted_here == 0 {
            RowGroupAccess::Scan
        } else if deleted_here >= rows {
            RowGroupAccess::Skip
        } else {
            RowGroupAccess::Selection(selection(deleted, rows_range))
        });
    }
    (ParquetAccessPlan::new(plan), removed)
}

/// The rows of `rows` (file positions) not in `deleted`, relative to the row group's start.
fn selection(deleted: &RoaringTreemap, rows: Range<u64>) -> RowSelection {
    let mut selectors = Vec::new();
    let mut next = rows.start;
    let mut push = |selector: RowSelector| selectors.push(selector);
    let mut positions = deleted.iter();
    positions.advance_to(rows.start);
    for position in positions {
        if position >= rows.end {
            break;
        }
        if position > next {
            push(RowSelector::select((position - next) as usize));
        }
        push(RowSelector::skip(1));
        next = position + 1;
    }
    if next < rows.end {
        push(RowSelector::select((rows.end - next) as usize));
    }
    RowSelection::from(selectors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn selection_skips_exactly_the_deleted_rows_of_a_row_group() {
        let deleted: RoaringTreemap = [1u64, 2, 9, 10, 14, 30].into_iter().collect();
        let selection = selection(&deleted, 10..15);
        // Rows 10..15 of the file: 10 and 14 are deleted.
        let expected = RowSelection::from(vec![
            RowSelector::skip(1),
            RowSelector::select(3),
            RowSelector::skip(1),
        ]);
        assert_eq!(selection, expected);
        assert_eq!(selection.row_count(), 3);
    }
}
