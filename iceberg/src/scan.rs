//! `IcebergScanExec`: the Iceberg table scan, planned by the `iceberg` crate and executed by
//! DataFusion's own Parquet reader.
//!
//! Planning (on the coordinator) asks the `iceberg` crate for the data files of a snapshot that
//! survive manifest-list, partition and column-metrics pruning, then bin-packs them by size into
//! one file group per target partition. Execution hands those groups to a `DataSourceExec` over a
//! `ParquetSource` that shares the session's footer/page-index cache and resolves columns by
//! Iceberg field id ([`super::field_ids`]).
//!
//! The node is a leaf whose whole description ([`IcebergScanSpec`]) is plain data, so the Floe
//! plan codec can ship it to another process and rebuild the same `DataSourceExec` there.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::{Result, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::config::TableParquetOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileSource;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::concurrent_files;
use super::deletes::DeleteFile;
use super::deletes::apply::{DeleteMetrics, ScanWithDeletes};
use super::field_ids::{FieldIdAdapterFactory, without_field_ids};

/// One data file to read, or one byte range of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanFile {
    /// Path inside the object store (no scheme or bucket).
    pub path: String,
    /// File size in bytes, from the manifest (saves a HEAD request per file).
    pub size_bytes: u64,
    /// Rows in the file (in a range: its share of them), from the manifest (before deletes).
    pub record_count: Option<u64>,
    /// Inexact statistics from the manifest's column bounds.
    pub statistics: Option<Arc<Statistics>>,
    /// Bytes `start..end` of the file when it is split across tasks: the reader takes the row
    /// groups that start inside the range, so the ranges of one file read each row once.
    pub range: Option<std::ops::Range<u64>>,
    /// The file's location as the manifest writes it (position delete files name it so).
    pub location: String,
    /// Indices into [`IcebergScanSpec::delete_files`] of the deletes this file must apply.
    pub deletes: Vec<u32>,
}

impl ScanFile {
    /// Bytes this piece covers.
    pub fn bytes(&self) -> u64 {
        self.range
            .as_ref()
            .map_or(self.size_bytes, |range| range.end - range.start)
    }
}

/// Everything needed to rebuild an Iceberg scan in any process.
#[derive(Debug, Clone)]
pub struct IcebergScanSpec {
    /// `catalog.namespace.table`, for plans and metrics.
    pub table_name: String,
    /// The snapshot read; `None` for a table with no snapshot yet.
    pub snapshot_id: Option<i64>,
    /// The table's full Arrow schema, each field carrying its Iceberg field id.
    pub table_schema: SchemaRef,
    /// Object store of the table's files, e.g. `file://` or `s3://bucket`.
    pub object_store_url: String,
    /// S3 settings of the table's catalog, so a process without the catalog can read the files.
    pub s3: Option<floe_common::config::S3Config>,
    /// Files, bin-packed by size: one group per output partition.
    pub file_groups: Vec<Vec<ScanFile>>,
    /// Projected column indices into `table_schema`.
    pub projection: Option<Vec<usize>>,
    /// Filter for row-group and page pruning, and with [`Self::pushdown_filters`] for rows too.
    /// It holds the filters DataFusion pushed into the Parquet reader at planning time, so a
    /// scan rebuilt from the spec in another process filters what the planned one did.
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    /// The reader applies `predicate` to rows (`datafusion.execution.parquet.pushdown_filters`):
    /// then the planner removed the `FilterExec` above the scan, and nothing else filters.
    pub pushdown_filters: bool,
    /// The reader may reorder pushed-down row filters by cost
    /// (`datafusion.execution.parquet.reorder_filters`).
    pub reorder_filters: bool,
    /// Row limit pushed into the scan.
    pub limit: Option<usize>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Data files in the snapshot before pruning; `files planned` = sum of group lengths.
    pub files_in_snapshot: u64,
    /// Row-level delete files that some planned data file applies, each listed once.
    pub delete_files: Vec<DeleteFile>,
    /// Files a partition reads at once (see [`super::concurrent_files`]); 1 reads them in turn.
    pub concurrent_files: usize,
}

impl IcebergScanSpec {
    /// Number of files the scan will open.
    pub fn files_planned(&self) -> u64 {
        let paths: std::collections::HashSet<&str> = self
            .file_groups
            .iter()
            .flatten()
            .map(|file| file.path.as_str())
            .collect();
        paths.len() as u64
    }
}

/// Scans the data files of one Iceberg snapshot. See the module docs.
#[derive(Debug)]
pub struct IcebergScanExec {
    spec: IcebergScanSpec,
    parquet_scan: Arc<DataSourceExec>,
    metrics: ExecutionPlanMetricsSet,
    delete_metrics: DeleteMetrics,
}

impl IcebergScanExec {
    /// Builds the scan over `spec`, with the runtime's object store and metadata cache.
    pub fn try_new(spec: IcebergScanSpec, runtime: &RuntimeEnv) -> Result<Self> {
        let file_schema = without_field_ids(&spec.table_schema);
        let mut groups: Vec<FileGroup> = spec
            .file_groups
            .iter()
            .map(|files| {
                FileGroup::new(files.iter().map(partitioned_file).collect())
                    .with_statistics(Arc::new(row_count_statistics(files, &file_schema)))
            })
            .collect();
        if groups.is_empty() {
            groups.push(FileGroup::new(Vec::new()));
        }
        let all_files: Vec<ScanFile> = spec.file_groups.iter().flatten().cloned().collect();
        let config = parquet_config(
            &spec,
            runtime,
            ParquetRead {
                store_url: &spec.object_store_url,
                groups,
                projection: spec.projection.clone(),
                predicate: spec.predicate.clone(),
                limit: spec.limit,
            },
        )?;
        let config = FileScanConfigBuilder::from(config)
            .with_statistics(row_count_statistics(&all_files, &file_schema))
            .build();
        let parquet_scan = DataSourceExec::from_data_source(config);

        let metrics = ExecutionPlanMetricsSet::new();
        let planned = spec.files_planned();
        MetricBuilder::new(&metrics)
            .global_counter("data_files_planned")
            .add(planned as usize);
        MetricBuilder::new(&metrics)
            .global_counter("data_files_pruned")
            .add(spec.files_in_snapshot.saturating_sub(planned) as usize);
        let delete_metrics = DeleteMetrics::new(&metrics);
        Ok(Self {
            spec,
            parquet_scan,
            metrics,
            delete_metrics,
        })
    }

    /// The scan's description, as the plan codec ships it.
    pub fn spec(&self) -> &IcebergScanSpec {
        &self.spec
    }
}

/// Statistics of a set of files: the row count from the manifests (inexact: counted before
/// deletes), nothing else. The join planner needs it to see a small table and broadcast it
/// (DataFusion takes a scan's statistics from its file groups, not from the files in them);
/// without it every join would be a partitioned one with a shuffle of both sides.
fn row_count_statistics(files: &[ScanFile], schema: &arrow::datatypes::Schema) -> Statistics {
    let mut statistics = Statistics::new_unknown(schema);
    let rows: Option<u64> = files.iter().map(|file| file.record_count).sum();
    if let Some(rows) = rows {
        statistics.num_rows = Precision::Inexact(rows as usize);
    }
    statistics
}

/// What one Parquet read of a scan covers: the scan's own files, or one data or delete file.
pub(crate) struct ParquetRead<'a> {
    /// Object store of the files.
    pub store_url: &'a str,
    /// Files, one group per output partition.
    pub groups: Vec<FileGroup>,
    /// Column indices into the table schema.
    pub projection: Option<Vec<usize>>,
    /// Pruning (and with `pushdown_filters`, row) filter.
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    /// Rows to stop after, per partition.
    pub limit: Option<usize>,
}

/// DataFusion's Parquet reader over `read`, with the scan's table schema, field-id column
/// matching, options and the runtime's metadata cache.
pub(crate) fn parquet_config(
    spec: &IcebergScanSpec,
    runtime: &RuntimeEnv,
    read: ParquetRead<'_>,
) -> Result<FileScanConfig> {
    let store_url = crate::catalogs::ensure_object_store(read.store_url, spec.s3.as_ref(), runtime)
        .map_err(datafusion::error::DataFusionError::from)?;
    let store = runtime.object_store(&store_url)?;
    let reader_factory = Arc::new(CachedParquetFileReaderFactory::new(
        store,
        runtime.cache_manager.get_file_metadata_cache(),
    ));
    let mut parquet_options = TableParquetOptions::default();
    // Statistics and the page index make pruning work; bloom filters cost a read per row
    // group and rarely pay off for the range predicates analytics queries carry.
    parquet_options.global.pruning = true;
    parquet_options.global.enable_page_index = true;
    parquet_options.global.bloom_filter_on_read = false;
    parquet_options.global.pushdown_filters = spec.pushdown_filters;
    parquet_options.global.reorder_filters = spec.reorder_filters;
    let file_schema = without_field_ids(&spec.table_schema);
    let mut source = ParquetSource::new(TableSchema::from_file_schema(file_schema))
        .with_table_parquet_options(parquet_options)
        .with_parquet_file_reader_factory(reader_factory);
    if let Some(predicate) = read.predicate {
        source = source.with_predicate(predicate);
    }
    Ok(FileScanConfigBuilder::new(store_url, Arc::new(source))
        .with_file_groups(read.groups)
        .with_projection_indices(read.projection)?
        .with_limit(read.limit)
        .with_batch_size(Some(spec.batch_size))
        .with_expr_adapter(Some(Arc::new(FieldIdAdapterFactory::for_table(
            &spec.table_schema,
        ))))
        .build())
}

/// The reader's view of one data file or piece of it.
pub(crate) fn partitioned_file(file: &ScanFile) -> PartitionedFile {
    let mut partitioned = PartitionedFile::new(file.path.clone(), file.size_bytes);
    if let Some(statistics) = &file.statistics {
        partitioned = partitioned.with_statistics(Arc::clone(statistics));
    } else if let Some(rows) = file.record_count {
        let mut statistics = Statistics::new_unknown(&arrow::datatypes::Schema::empty());
        // Inexact: the manifest counts rows before deletes are applied.
        statistics.num_rows = Precision::Inexact(rows as usize);
        partitioned = partitioned.with_statistics(Arc::new(statistics));
    }
    if let Some(range) = &file.range {
        partitioned = partitioned.with_range(range.start as i64, range.end as i64);
    }
    partitioned
}

impl DisplayAs for IcebergScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let projection: Vec<&str> = match &self.spec.projection {
            Some(indices) => indices
                .iter()
                .filter_map(|i| self.spec.table_schema.fields().get(*i))
                .map(|f| f.name().as_str())
                .collect(),
            None => self
                .spec
                .table_schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect(),
        };
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "IcebergScanExec: table={}, snapshot={}, files={}/{}, partitions={}, projection=[{}]",
                    self.spec.table_name,
                    self.spec
                        .snapshot_id
                        .map_or_else(|| "none".to_string(), |id| id.to_string()),
                    self.spec.files_planned(),
                    self.spec.files_in_snapshot,
                    self.spec.file_groups.len().max(1),
                    projection.join(", "),
                )?;
                if let Some(predicate) = &self.spec.predicate {
                    write!(f, ", predicate={predicate}")?;
                    if self.spec.pushdown_filters {
                        write!(f, ", pushdown_filters=true")?;
                    }
                }
                if let Some(limit) = self.spec.limit {
                    write!(f, ", limit={limit}")?;
                }
                if !self.spec.delete_files.is_empty() {
                    write!(f, ", delete_files={}", self.spec.delete_files.len())?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", self.spec.table_name)?;
                write!(
                    f,
                    "files={}/{}",
                    self.spec.files_planned(),
                    self.spec.files_in_snapshot
                )
            }
        }
    }
}

impl ExecutionPlan for IcebergScanExec {
    fn name(&self) -> &str {
        "IcebergScanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.parquet_scan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let has_deletes = self
            .spec
            .file_groups
            .get(partition)
            .is_some_and(|files| files.iter().any(|file| !file.deletes.is_empty()));
        if !has_deletes {
            if self.spec.concurrent_files > 1
                && let Some(config) = parquet_scan_config(&self.parquet_scan)
            {
                return concurrent_files::execute(
                    config,
                    partition,
                    self.spec.concurrent_files,
                    context,
                );
            }
            return self.parquet_scan.execute(partition, context);
        }
        let config = parquet_scan_config(&self.parquet_scan).ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(
                "Iceberg scan without a Parquet file scan inside".into(),
            )
        })?;
        ScanWithDeletes {
            spec: Arc::new(self.spec.clone()),
            config: Arc::new(config.clone()),
            schema: self.schema(),
            metrics: self.delete_metrics.clone(),
        }
        .execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut all = self.parquet_scan.metrics().unwrap_or_default();
        for metric in self.metrics.clone_inner().iter() {
            all.push(Arc::clone(metric));
        }
        Some(all)
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Statistics> {
        self.parquet_scan.partition_statistics(partition)
    }

    /// Filters reach the Parquet reader inside: in the first phase the query's own filters
    /// (which, with `pushdown_filters`, DataFusion then removes from above the scan), later
    /// dynamic filters (a hash join's build keys, a TopK's threshold) for run-time pruning.
    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let inner =
            self.parquet_scan
                .handle_child_pushdown_result(phase, child_pushdown_result, config)?;
        let updated_node = inner.updated_node.and_then(|node| {
            let parquet_scan = node.as_any().downcast_ref::<DataSourceExec>()?;
            let mut spec = self.spec.clone();
            // The spec is what the codec ships and tasks rebuild the reader from, so it must
            // take in what the reader now filters. Dynamic filters are not taken: they are
            // snapshots once serialized, and every task re-derives its own (ARCHITECTURE.md).
            if phase == FilterPushdownPhase::Pre
                && let Some(source) = parquet_source(parquet_scan)
            {
                spec.predicate = source.filter();
                spec.pushdown_filters = source.table_parquet_options().global.pushdown_filters;
            }
            Some(Arc::new(Self {
                spec,
                parquet_scan: Arc::new(parquet_scan.clone()),
                metrics: self.metrics.clone(),
                delete_metrics: self.delete_metrics.clone(),
            }) as Arc<dyn ExecutionPlan>)
        });
        Ok(FilterPushdownPropagation {
            filters: inner.filters,
            updated_node,
        })
    }
}

/// The file scan configuration inside a scan's `DataSourceExec`.
fn parquet_scan_config(scan: &DataSourceExec) -> Option<&FileScanConfig> {
    scan.data_source().as_any().downcast_ref::<FileScanConfig>()
}

/// The Parquet reader configuration inside a scan's `DataSourceExec`.
fn parquet_source(scan: &DataSourceExec) -> Option<&ParquetSource> {
    parquet_scan_config(scan)?
        .file_source()
        .as_any()
        .downcast_ref::<ParquetSource>()
}
