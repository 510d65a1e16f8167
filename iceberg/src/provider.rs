//! DataFusion catalog, schema and table providers over an Iceberg catalog.
//!
//! Unlike `iceberg-datafusion`'s provider, nothing is listed or loaded eagerly: a table is looked
//! up in the catalog when a statement names it, so tables created by other tools (PyIceberg,
//! Spark) are visible at once. Loaded tables are cached by metadata location, which is immutable,
//! so a table that has not changed keeps its manifest cache between queries.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{
    DFSchema, DataFusionError, Result as DFResult, ScalarValue, Statistics, not_impl_err,
};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use iceberg::spec::SnapshotRef;
use iceberg::table::Table;
use iceberg::{NamespaceIdent, TableIdent};
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

use super::concurrent_files::DEFAULT_REMOTE_CONCURRENT_FILES;
use super::deletes::{DeleteFile, DeletePlanner};
use super::field_ids::{with_name_mapping, without_field_ids};
use super::metadata_tables::MetadataTable;
use super::scan::{IcebergScanExec, IcebergScanSpec, ScanFile};
use super::sink::IcebergSink;
use super::stats::{ManifestStatsCache, file_statistics, table_statistics};
use super::time_travel::resolve_version;
use super::{object_store_location, query_schema_of};
use crate::catalogs::FloeCatalog;
use floe_common::cache::BoundedCache;
use floe_common::config::S3Config;
use floe_common::error::{FloeError, iceberg_to_df};
use floe_common::options::FloeOptions;
use floe_common::table_names::TableVersion;

/// The metadata caches shared by every catalog of a session.
#[derive(Debug)]
pub struct MetadataCaches {
    /// Loaded tables by metadata location.
    pub tables: TableCache,
    /// Column bounds of data files by manifest path.
    pub manifests: ManifestStatsCache,
}

impl MetadataCaches {
    /// Caches bounded by the limits in [`floe_common::config`].
    pub fn new() -> Self {
        Self {
            tables: TableCache::new(floe_common::config::DEFAULT_TABLE_CACHE_ENTRIES),
            manifests: ManifestStatsCache::new(floe_common::config::DEFAULT_MANIFEST_CACHE_ENTRIES),
        }
    }
}

impl Default for MetadataCaches {
    fn default() -> Self {
        Self::new()
    }
}

/// Loaded tables by metadata location.
pub type TableCache = BoundedCache<Table>;

/// The cached table for `fresh`'s metadata location, or `fresh` itself (now cached).
fn intern_table(cache: &TableCache, fresh: Table) -> Table {
    match fresh.metadata_location().map(str::to_string) {
        Some(location) => cache.get_or_insert(&location, fresh),
        None => fresh,
    }
}

/// Non-Iceberg tables (`CREATE EXTERNAL TABLE` over Parquet/CSV files) registered into an
/// Iceberg namespace for the life of the session, by (namespace, table).
pub type SessionTables = Mutex<HashMap<(String, String), Arc<dyn TableProvider>>>;

/// Runs a catalog call from one of DataFusion's synchronous callbacks (`schema_names`,
/// `table_names`). Needs the multi-threaded runtime every Floe binary uses; elsewhere it gives
/// up rather than deadlock.
fn block_on_catalog<F: Future>(future: F) -> Option<F::Output> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return None;
    }
    Some(tokio::task::block_in_place(|| handle.block_on(future)))
}

/// A Floe catalog as DataFusion sees it.
#[derive(Debug)]
pub struct IcebergCatalogProvider {
    catalog: Arc<FloeCatalog>,
    caches: Arc<MetadataCaches>,
    session_tables: Arc<SessionTables>,
}

impl IcebergCatalogProvider {
    /// Wraps `catalog`, caching loaded tables in `tables`.
    pub fn new(catalog: Arc<FloeCatalog>, caches: Arc<MetadataCaches>) -> Self {
        Self {
            catalog,
            caches,
            session_tables: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl IcebergCatalogProvider {
    /// The tables this session registered into `namespace` (external tables, views), by name.
    pub fn session_tables_in(&self, namespace: &str) -> Vec<(String, Arc<dyn TableProvider>)> {
        let Ok(tables) = self.session_tables.lock() else {
            return Vec::new();
        };
        tables
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, name), table)| (name.clone(), Arc::clone(table)))
            .collect()
    }
}

impl CatalogProvider for IcebergCatalogProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        block_on_catalog(self.catalog.iceberg.list_namespaces(None))
            .and_then(Result::ok)
            .map(|names| names.iter().map(|ns| ns.join(".")).collect())
            .unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        // Existence is checked when a table is looked up, so that the error can name
        // the namespace rather than the table.
        let namespace = NamespaceIdent::from_strs(name.split('.')).ok()?;
        Some(Arc::new(IcebergSchemaProvider {
            catalog: Arc::clone(&self.catalog),
            namespace,
            caches: Arc::clone(&self.caches),
            session_tables: Arc::clone(&self.session_tables),
        }))
    }
}

/// One Iceberg namespace as a DataFusion schema.
#[derive(Debug)]
pub struct IcebergSchemaProvider {
    catalog: Arc<FloeCatalog>,
    namespace: NamespaceIdent,
    caches: Arc<MetadataCaches>,
    session_tables: Arc<SessionTables>,
}

impl IcebergSchemaProvider {
    fn session_key(&self, name: &str) -> (String, String) {
        (self.namespace.join("."), name.to_string())
    }

    fn session_table(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        let tables = self.session_tables.lock().ok()?;
        tables.get(&self.session_key(name)).cloned()
    }
}

#[async_trait]
impl SchemaProvider for IcebergSchemaProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            block_on_catalog(self.catalog.iceberg.list_tables(&self.namespace))
                .and_then(Result::ok)
                .map(|idents| idents.into_iter().map(|t| t.name).collect())
                .unwrap_or_default();
        if let Ok(tables) = self.session_tables.lock() {
            let namespace = self.namespace.join(".");
            names.extend(
                tables
                    .keys()
                    .filter(|(ns, _)| *ns == namespace)
                    .map(|(_, t)| t.clone()),
            );
        }
        names
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.session_table(name) {
            return Ok(Some(table));
        }
        let (name, metadata_table) = match MetadataTable::split(name) {
            Some((name, kind)) => (name, Some(kind)),
            None => (name, None),
        };
        let (name, version) = match TableVersion::split(name) {
            Some((name, version)) => (name, Some(version)),
            None => (name, None),
        };
        let ident = TableIdent::new(self.namespace.clone(), name.to_string());
        // A missing namespace is reported as a missing table here (so that DataFusion can still
        // try the name as a file path); the session names the namespace in the final error.
        let table = match self.catalog.iceberg.load_table(&ident).await {
            Ok(table) => table,
            Err(e)
                if matches!(
                    e.kind(),
                    iceberg::ErrorKind::TableNotFound | iceberg::ErrorKind::NamespaceNotFound
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(iceberg_to_df(e)),
        };
        // Vended credentials come with each load, in the table's FileIO too (manifests, writes):
        // a cached table would keep the first load's, so such tables are not cached.
        let storage = self.catalog.table_storage(&table);
        let table = if self.catalog.vended_credentials {
            table
        } else {
            intern_table(&self.caches.tables, table)
        };
        if let Some(kind) = metadata_table {
            return Ok(Some(
                kind.provider(&table).await.map_err(DataFusionError::from)?,
            ));
        }
        let catalog = Arc::clone(&self.catalog);
        let caches = Arc::clone(&self.caches);
        let mut provider = match version {
            None => IcebergTableProvider::try_new(catalog, table, caches)?,
            Some(version) => IcebergTableProvider::at_version(catalog, table, caches, &version)?,
        };
        provider.storage = storage;
        Ok(Some(Arc::new(provider.with_statistics().await)))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let key = self.session_key(&name);
        let mut tables = self
            .session_tables
            .lock()
            .map_err(|_| DataFusionError::Internal("session table registry poisoned".into()))?;
        Ok(tables.insert(key, table))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let key = self.session_key(name);
        let mut tables = self
            .session_tables
            .lock()
            .map_err(|_| DataFusionError::Internal("session table registry poisoned".into()))?;
        Ok(tables.remove(&key))
    }

    fn table_exist(&self, name: &str) -> bool {
        if self.session_table(name).is_some() {
            return true;
        }
        let ident = TableIdent::new(self.namespace.clone(), name.to_string());
        block_on_catalog(self.catalog.iceberg.table_exists(&ident))
            .and_then(Result::ok)
            .unwrap_or(false)
    }
}

/// One Iceberg table at one snapshot: the one current when the statement was planned, or the
/// one a time-travel clause chose.
#[derive(Debug)]
pub struct IcebergTableProvider {
    catalog: Arc<FloeCatalog>,
    table: Table,
    /// The snapshot a time-travel clause chose; `None` reads the current one.
    pinned_snapshot: Option<i64>,
    /// The table's columns with their field ids, for the scan to match file columns by.
    schema: SchemaRef,
    /// The same columns without field ids: what plans see.
    plan_schema: SchemaRef,
    caches: Arc<MetadataCaches>,
    /// Whole-table statistics from the manifests, for join ordering (`floe_core::join_order`).
    statistics: Option<Statistics>,
    /// Where and with which credentials the table's files are read.
    storage: Option<S3Config>,
}

impl IcebergTableProvider {
    /// A provider reading `table`'s current snapshot.
    pub fn try_new(
        catalog: Arc<FloeCatalog>,
        table: Table,
        caches: Arc<MetadataCaches>,
    ) -> DFResult<Self> {
        let schema = with_name_mapping(
            query_schema_of(table.metadata().current_schema())?,
            table.metadata().properties(),
        );
        let catalog_storage = catalog.table_storage(&table);
        Ok(Self {
            catalog,
            table,
            pinned_snapshot: None,
            plan_schema: without_field_ids(&schema),
            schema,
            caches,
            statistics: None,
            storage: catalog_storage,
        })
    }

    /// A provider reading the snapshot `version` names, with that snapshot's schema.
    pub fn at_version(
        catalog: Arc<FloeCatalog>,
        table: Table,
        caches: Arc<MetadataCaches>,
        version: &TableVersion,
    ) -> DFResult<Self> {
        let mut provider = Self::try_new(catalog, table, caches)?;
        let snapshot =
            resolve_version(provider.table.metadata(), version, &provider.display_name())
                .map_err(DataFusionError::from)?;
        let metadata = provider.table.metadata();
        let schema = snapshot
            .schema_id()
            .and_then(|id| metadata.schema_by_id(id))
            .map_or_else(|| Arc::clone(metadata.current_schema()), Arc::clone);
        provider.schema = with_name_mapping(query_schema_of(&schema)?, metadata.properties());
        provider.plan_schema = without_field_ids(&provider.schema);
        provider.pinned_snapshot = Some(snapshot.snapshot_id());
        Ok(provider)
    }

    /// The snapshot read: the pinned one, else the current one.
    fn snapshot(&self) -> Option<&SnapshotRef> {
        let metadata = self.table.metadata();
        match self.pinned_snapshot {
            Some(id) => metadata.snapshot_by_id(id),
            None => metadata.current_snapshot(),
        }
    }

    /// The provider with its table's statistics loaded from the manifests (cached by manifest
    /// path, and read by the scan anyway). Unreadable manifests only mean no statistics: the
    /// scan reports the error if it needs them.
    pub async fn with_statistics(mut self) -> Self {
        let metadata = self.table.metadata();
        if let Some(snapshot) = self.snapshot()
            && let Ok(bounds) = self
                .caches
                .manifests
                .snapshot_bounds(metadata, snapshot, self.table.file_io())
                .await
        {
            self.statistics = Some(table_statistics(&bounds, &self.schema));
        }
        self
    }

    fn display_name(&self) -> String {
        let ident = self.table.identifier();
        format!(
            "{}.{}.{}",
            self.catalog.name,
            ident.namespace().join("."),
            ident.name()
        )
    }

    /// Plans the files to read with the `iceberg` crate's manifest pruning, and the delete
    /// files they must apply.
    async fn plan_files(&self, filters: &[Expr]) -> DFResult<PlannedFiles> {
        let metadata = self.table.metadata();
        let Some(snapshot) = self.snapshot() else {
            return Ok(PlannedFiles::default());
        };
        let files_in_snapshot = snapshot
            .summary()
            .additional_properties
            .get("total-data-files")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut builder = self.table.scan().snapshot_id(snapshot.snapshot_id());
        if let Some(predicate) = convert_filters_to_predicate(&iceberg_comparable(filters)) {
            builder = builder.with_filter(predicate);
        }
        let tasks: Vec<_> = builder
            .build()
            .map_err(iceberg_to_df)?
            .plan_files()
            .await
            .map_err(iceberg_to_df)?
            .try_collect()
            .await
            .map_err(iceberg_to_df)?;
        let bounds = if tasks.is_empty() {
            Arc::default()
        } else {
            self.caches
                .manifests
                .snapshot_bounds(metadata, snapshot, self.table.file_io())
                .await
                .map_err(iceberg_to_df)?
        };
        let mut deletes = DeletePlanner::try_new(metadata, snapshot, self.table.file_io(), &tasks)
            .await
            .map_err(DataFusionError::from)?;
        let mut files = Vec::with_capacity(tasks.len());
        for task in tasks {
            let (_, path) = object_store_location(&task.data_file_path)?;
            let statistics = bounds
                .get(&task.data_file_path)
                .map(|b| Arc::new(file_statistics(b, &self.schema)));
            files.push(ScanFile {
                path,
                size_bytes: task.file_size_in_bytes,
                record_count: task.record_count,
                statistics,
                range: None,
                deletes: deletes.deletes_of(&task).map_err(DataFusionError::from)?,
                location: task.data_file_path,
            });
        }
        Ok(PlannedFiles {
            snapshot_id: Some(snapshot.snapshot_id()),
            files_in_snapshot: files_in_snapshot.max(files.len() as u64),
            files,
            delete_files: deletes.into_files(),
        })
    }
}

/// What [`IcebergTableProvider::plan_files`] found.
#[derive(Debug, Default)]
struct PlannedFiles {
    snapshot_id: Option<i64>,
    files: Vec<ScanFile>,
    files_in_snapshot: u64,
    delete_files: Vec<DeleteFile>,
}

/// `filters` with view-typed string and binary literals (as DataFusion types them for the
/// view-typed columns of [`query_schema_of`]) turned into plain ones, which the `iceberg`
/// crate's predicate conversion understands.
fn iceberg_comparable(filters: &[Expr]) -> Vec<Expr> {
    filters
        .iter()
        .map(|filter| {
            filter
                .clone()
                .transform(|expr| {
                    Ok(match expr {
                        Expr::Literal(
                            ScalarValue::Utf8View(v) | ScalarValue::LargeUtf8(v),
                            meta,
                        ) => Transformed::yes(Expr::Literal(ScalarValue::Utf8(v), meta)),
                        Expr::Literal(
                            ScalarValue::BinaryView(v) | ScalarValue::LargeBinary(v),
                            meta,
                        ) => Transformed::yes(Expr::Literal(ScalarValue::Binary(v), meta)),
                        other => Transformed::no(other),
                    })
                })
                .data()
                .unwrap_or_else(|_| filter.clone())
        })
        .collect()
}

/// Cuts files larger than an even share of the scan (`total / partitions`, at least
/// `min_bytes`: DataFusion's `datafusion.optimizer.repartition_file_min_size`) into byte ranges
/// of about that share, so one large file is read by several tasks. Each piece carries its
/// share of the file's rows; column bounds stay the file's (a range's values lie within them).
pub fn split_large_files(files: Vec<ScanFile>, partitions: usize, min_bytes: u64) -> Vec<ScanFile> {
    let total: u64 = files.iter().map(ScanFile::bytes).sum();
    let share = total
        .div_ceil(partitions.max(1) as u64)
        .max(min_bytes.max(1));
    let mut pieces = Vec::with_capacity(files.len());
    for file in files {
        if file.range.is_some() || file.size_bytes <= share {
            pieces.push(file);
            continue;
        }
        let count = file.size_bytes.div_ceil(share);
        let step = file.size_bytes.div_ceil(count);
        for start in (0..file.size_bytes).step_by(step as usize) {
            let end = (start + step).min(file.size_bytes);
            let fraction = (end - start) as f64 / file.size_bytes as f64;
            pieces.push(ScanFile {
                record_count: file
                    .record_count
                    .map(|rows| (rows as f64 * fraction).round() as u64),
                statistics: file
                    .statistics
                    .as_deref()
                    .map(|statistics| Arc::new(piece_statistics(statistics, fraction))),
                range: Some(start..end),
                ..file.clone()
            });
        }
    }
    pieces
}

/// A file's statistics scaled to a piece of it: rows, bytes and null counts by `fraction`.
fn piece_statistics(file: &Statistics, fraction: f64) -> Statistics {
    let scale = |value: &Precision<usize>| match value.get_value() {
        Some(n) => Precision::Inexact((*n as f64 * fraction).round() as usize),
        None => Precision::Absent,
    };
    let mut piece = file.clone();
    piece.num_rows = scale(&file.num_rows);
    piece.total_byte_size = scale(&file.total_byte_size);
    for column in &mut piece.column_statistics {
        column.null_count = scale(&column.null_count);
    }
    piece
}

/// Splits files into at most `partitions` groups of similar total size: largest file first,
/// each into the currently smallest group.
pub fn bin_pack(mut files: Vec<ScanFile>, partitions: usize) -> Vec<Vec<ScanFile>> {
    let groups_len = partitions.max(1).min(files.len());
    if groups_len == 0 {
        return Vec::new();
    }
    files.sort_by(|a, b| {
        b.bytes()
            .cmp(&a.bytes())
            .then_with(|| a.path.cmp(&b.path))
            .then_with(|| {
                a.range
                    .as_ref()
                    .map(|r| r.start)
                    .cmp(&b.range.as_ref().map(|r| r.start))
            })
    });
    let mut groups: Vec<(u64, Vec<ScanFile>)> = vec![(0, Vec::new()); groups_len];
    for file in files {
        let smallest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .map(|(bytes, group)| (bytes, group));
        if let Some((bytes, group)) = smallest {
            *bytes += file.bytes();
            group.push(file);
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[async_trait]
impl TableProvider for IcebergTableProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.plan_schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn statistics(&self) -> Option<Statistics> {
        self.statistics.clone()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let PlannedFiles {
            snapshot_id,
            files,
            files_in_snapshot,
            delete_files,
        } = self.plan_files(filters).await?;
        let object_store_url = object_store_location(self.table.metadata().location())?.0;
        crate::catalogs::ensure_object_store(
            &object_store_url,
            self.storage.as_ref(),
            state.runtime_env(),
        )
        .map_err(DataFusionError::from)?;
        let predicate = match conjunction(filters.iter().cloned()) {
            Some(expr) => {
                let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };
        let options = state.config_options();
        let concurrent_files = concurrent_files_for(options, &object_store_url);
        let spec = IcebergScanSpec {
            table_name: self.display_name(),
            snapshot_id,
            table_schema: Arc::clone(&self.schema),
            object_store_url,
            s3: self.storage.clone(),
            file_groups: bin_pack(
                if options.optimizer.repartition_file_scans {
                    split_large_files(
                        files,
                        options.execution.target_partitions,
                        options.optimizer.repartition_file_min_size as u64,
                    )
                } else {
                    files
                },
                options.execution.target_partitions,
            ),
            projection: projection.cloned(),
            predicate,
            pushdown_filters: options.execution.parquet.pushdown_filters,
            reorder_filters: options.execution.parquet.reorder_filters,
            // Filters are re-applied above the scan (Inexact), and deletes remove rows after
            // the reader, so a limit in the reader would be wrong with either.
            limit: if filters.is_empty() && delete_files.is_empty() {
                limit
            } else {
                None
            },
            batch_size: options.execution.batch_size,
            concurrent_files,
            files_in_snapshot,
            delete_files,
        };
        Ok(Arc::new(IcebergScanExec::try_new(
            spec,
            state.runtime_env(),
        )?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Pruning is by files, row groups and pages; rows still need the filter above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if let Some(snapshot) = self.pinned_snapshot {
            return Err(FloeError::NotSupported(format!(
                "cannot write to {} at snapshot {snapshot}: time travel reads only",
                self.display_name()
            ))
            .into());
        }
        if insert_op != InsertOp::Append {
            return not_impl_err!(
                "INSERT OVERWRITE into Iceberg table {} is not supported yet",
                self.display_name()
            );
        }
        let sink = IcebergSink::new(
            Arc::clone(&self.catalog),
            self.table.clone(),
            Arc::clone(&self.schema),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Files a scan partition reads at once: `floe.scan_concurrent_files`, or when 0 one for local
/// files and [`DEFAULT_REMOTE_CONCURRENT_FILES`] for remote stores.
fn concurrent_files_for(options: &ConfigOptions, object_store_url: &str) -> usize {
    let configured = options
        .extensions
        .get::<FloeOptions>()
        .map_or(0, |floe| floe.scan_concurrent_files);
    match configured {
        0 if object_store_url.starts_with("file://") => 1,
        0 => DEFAULT_REMOTE_CONCURRENT_FILES,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}
