//! `FloeSession`: runs SQL statements against the configured catalogs.
//!
//! DataFusion plans and runs queries and DML. A few statements are Floe's own, because they
//! talk to Iceberg catalogs asynchronously or use syntax DataFusion's parser does not have:
//! `USE`, `SHOW CATALOGS | SCHEMAS | TABLES | CREATE TABLE`, `CREATE/DROP SCHEMA`,
//! `CREATE TABLE [... PARTITIONED BY (...)] [TBLPROPERTIES (...)] [AS SELECT ...]` and
//! `DROP TABLE`. Everything else goes to DataFusion unchanged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, cast, col};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use iceberg::spec::FormatVersion;
use iceberg::{NamespaceIdent, TableCreation, TableIdent};

use crate::catalogs::{FloeCatalog, normalize_location};
use crate::config::{CatalogType, FloeConfig};
use crate::error::{FloeError, Result};
use crate::iceberg::ddl::{
    iceberg_schema_for_create, parse_partition_items, partition_spec, show_create_table,
};
use crate::iceberg::provider::{IcebergCatalogProvider, MetadataCaches};
use crate::sql_text::{matching_paren, next_code_char, split_statements, words};

/// What one statement produced.
#[derive(Debug, Clone)]
pub struct StatementOutput {
    /// Schema of the rows (empty for statements without a result set).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// A one-line summary for statements without rows (`Created table local.db.t`).
    pub summary: Option<String>,
}

impl StatementOutput {
    fn rows(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self {
            schema,
            batches,
            summary: None,
        }
    }

    fn done(summary: impl Into<String>) -> Self {
        Self {
            schema: Arc::new(Schema::empty()),
            batches: Vec::new(),
            summary: Some(summary.into()),
        }
    }

    fn strings(column: &str, values: Vec<String>) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(values))],
        )
        .map_err(|e| FloeError::DataFusion(e.into()))?;
        Ok(Self::rows(schema, vec![batch]))
    }

    /// Number of result rows.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Schema metadata key carrying the one-line summary of a statement without rows, when its
/// result travels as a stream (`Created table local.db.t`).
pub const SUMMARY_METADATA_KEY: &str = "floe.summary";

/// A SQL session over Floe's catalogs.
pub struct FloeSession {
    ctx: SessionContext,
    catalogs: BTreeMap<String, Arc<FloeCatalog>>,
}

impl std::fmt::Debug for FloeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloeSession")
            .field("catalogs", &self.catalogs.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a dotted name points once `USE` defaults are applied.
#[derive(Debug, Clone)]
struct ResolvedTable {
    catalog: Arc<FloeCatalog>,
    ident: TableIdent,
}

impl ResolvedTable {
    fn display(&self) -> String {
        format!(
            "{}.{}.{}",
            self.catalog.name,
            self.ident.namespace().join("."),
            self.ident.name()
        )
    }
}

/// The catalogs of a process, connected once and shared by all its sessions.
pub struct FloeCatalogs {
    config: FloeConfig,
    catalogs: BTreeMap<String, Arc<FloeCatalog>>,
    caches: Arc<MetadataCaches>,
}

impl std::fmt::Debug for FloeCatalogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloeCatalogs")
            .field("catalogs", &self.catalogs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FloeCatalogs {
    /// Connects every configured catalog; creates the default namespace of a local catalog.
    pub async fn connect(config: &FloeConfig) -> Result<Arc<Self>> {
        let mut catalogs = BTreeMap::new();
        for (name, catalog_config) in &config.catalogs {
            let catalog = FloeCatalog::connect(name, catalog_config).await?;
            catalogs.insert(name.clone(), Arc::new(catalog));
        }
        let connected = Self {
            config: config.clone(),
            catalogs,
            caches: Arc::new(MetadataCaches::new()),
        };
        connected.ensure_default_namespace().await?;
        Ok(Arc::new(connected))
    }

    /// Like Spark's `default` database: the default namespace of a local (SQL or memory)
    /// catalog exists from the start, so `CREATE TABLE t` works on a fresh warehouse.
    async fn ensure_default_namespace(&self) -> Result<()> {
        let config = &self.config;
        let name = config.default_catalog_name();
        let (Some(catalog), Some(catalog_config)) =
            (self.catalogs.get(&name), config.catalogs.get(&name))
        else {
            return Ok(());
        };
        if !matches!(
            catalog_config.catalog_type,
            CatalogType::Sql | CatalogType::Memory
        ) {
            return Ok(());
        }
        let namespace = NamespaceIdent::from_strs(config.default_namespace.split('.'))?;
        if !catalog.iceberg.namespace_exists(&namespace).await? {
            catalog
                .iceberg
                .create_namespace(&namespace, HashMap::new())
                .await?;
        }
        Ok(())
    }
}

impl FloeSession {
    /// Connects every configured catalog and builds a session that runs plans in-process.
    pub async fn new(config: &FloeConfig) -> Result<Self> {
        Self::with_catalogs(&FloeCatalogs::connect(config).await?, None)
    }

    /// A session over already connected catalogs. With a `query_planner`, physical plans are
    /// made (and run) by it: the scheduler's planner runs them on the cluster.
    pub fn with_catalogs(
        catalogs: &Arc<FloeCatalogs>,
        query_planner: Option<Arc<dyn QueryPlanner + Send + Sync>>,
    ) -> Result<Self> {
        let config = &catalogs.config;
        let default_catalog = config.default_catalog_name();
        let mut session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(&default_catalog, &config.default_namespace)
            .with_batch_size(config.engine.batch_size);
        // `TIMESTAMP WITH TIME ZONE` values are stored as UTC instants (Iceberg's timestamptz);
        // DataFusion only types them with a zone when the session has one.
        session_config.options_mut().execution.time_zone = Some("+00:00".to_string());
        if let Some(partitions) = config.engine.target_partitions {
            session_config = session_config.with_target_partitions(partitions);
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(config.engine.metadata_cache_mib * 1024 * 1024)
            .build_arc()?;
        let mut state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features();
        if let Some(planner) = query_planner {
            state = state.with_query_planner(planner);
        }
        let ctx = SessionContext::new_with_state(state.build()).enable_url_table();
        for (name, catalog) in &catalogs.catalogs {
            ctx.register_catalog(
                name,
                Arc::new(IcebergCatalogProvider::new(
                    Arc::clone(catalog),
                    Arc::clone(&catalogs.caches),
                )),
            );
        }
        Ok(Self {
            ctx,
            catalogs: catalogs.catalogs.clone(),
        })
    }

    /// The DataFusion context (for embedding Floe and for tests).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs every statement of a script, stopping at the first error.
    pub async fn execute(&self, sql: &str) -> Result<Vec<StatementOutput>> {
        let mut outputs = Vec::new();
        for statement in split_statements(sql) {
            outputs.push(self.execute_statement(&statement).await?);
        }
        Ok(outputs)
    }

    /// Runs one statement and returns its rows as a stream: queries and DML stream from their
    /// plan; Floe's own statements run to completion first. A statement without rows yields
    /// a schema with no fields whose metadata holds [`SUMMARY_METADATA_KEY`].
    pub async fn execute_statement_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        if let Some(output) = self.floe_statement(sql).await? {
            let schema = match &output.summary {
                Some(summary) => Arc::new(Schema::empty().with_metadata(HashMap::from([(
                    SUMMARY_METADATA_KEY.to_string(),
                    summary.clone(),
                )]))),
                None => output.schema,
            };
            return Ok(Box::pin(MemoryStream::try_new(
                output.batches,
                schema,
                None,
            )?));
        }
        let frame = match self.ctx.sql(sql).await {
            Ok(frame) => frame,
            Err(err) => return Err(self.explain_missing(err).await),
        };
        Ok(frame.execute_stream().await?)
    }

    /// Runs one statement (no trailing `;` needed).
    pub async fn execute_statement(&self, sql: &str) -> Result<StatementOutput> {
        match self.floe_statement(sql).await? {
            Some(output) => Ok(output),
            None => self.run_datafusion(sql).await,
        }
    }

    /// Runs `sql` if it is one of Floe's own statements; `None` leaves it to DataFusion.
    async fn floe_statement(&self, sql: &str) -> Result<Option<StatementOutput>> {
        let words = words(sql);
        let keyword = |i: usize| words.get(i).map(|w| w.upper.as_str()).unwrap_or("");
        // The text after word `i`: a name, which may be quoted (quoted text is not a word).
        let after = |i: usize| words.get(i).map_or("", |w| sql[w.end..].trim());
        // A trailing option keyword (`CASCADE`, `PURGE`) that ends the statement.
        let trailing = |options: &[&str]| {
            words
                .last()
                .filter(|w| options.contains(&w.upper.as_str()) && w.end == sql.trim_end().len())
                .map(|w| (w.upper.clone(), w.start))
        };
        let output = match (keyword(0), keyword(1)) {
            ("USE", _) => self.use_statement(after(0)).await,
            ("SHOW", "CATALOGS") => {
                StatementOutput::strings("catalog", self.catalogs.keys().cloned().collect())
            }
            ("SHOW", "SCHEMAS" | "DATABASES" | "NAMESPACES") => {
                let from = matches!(keyword(2), "FROM" | "IN");
                self.show_schemas(if from { after(2) } else { "" }).await
            }
            ("SHOW", "TABLES") => {
                let from = matches!(keyword(2), "FROM" | "IN");
                self.show_tables(if from { after(2) } else { "" }).await
            }
            ("SHOW", "CREATE") if keyword(2) == "TABLE" => {
                let table = self.resolve_table(after(2))?;
                let loaded = table
                    .catalog
                    .iceberg
                    .load_table(&table.ident)
                    .await
                    .map_err(|e| self.table_error(&table, e))?;
                let text = show_create_table(&table.display(), loaded.metadata());
                StatementOutput::strings("create_statement", vec![text])
            }
            ("CREATE", "SCHEMA" | "DATABASE" | "NAMESPACE") => {
                let if_not_exists = keyword(2) == "IF";
                let name = after(if if_not_exists { 4 } else { 1 });
                self.create_schema(name, if_not_exists).await
            }
            ("DROP", "SCHEMA" | "DATABASE" | "NAMESPACE") => {
                let if_exists = keyword(2) == "IF";
                let option = trailing(&["CASCADE", "RESTRICT"]);
                let name = name_between(sql, &words, if if_exists { 3 } else { 1 }, &option);
                let cascade = option.is_some_and(|(kw, _)| kw == "CASCADE");
                self.drop_schema(name, if_exists, cascade).await
            }
            ("CREATE", "TABLE") => self.create_table(sql).await,
            ("CREATE", "OR") if keyword(2) == "REPLACE" && keyword(3) == "TABLE" => {
                self.create_table(sql).await
            }
            ("DROP", "TABLE") => {
                let if_exists = keyword(2) == "IF";
                let option = trailing(&["PURGE"]);
                let name = name_between(sql, &words, if if_exists { 3 } else { 1 }, &option);
                self.drop_table(name, if_exists, option.is_some()).await
            }
            _ => return Ok(None),
        };
        output.map(Some)
    }

    async fn run_datafusion(&self, sql: &str) -> Result<StatementOutput> {
        let result = async {
            let frame = self.ctx.sql(sql).await?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok::<_, datafusion::error::DataFusionError>(StatementOutput::rows(schema, batches))
        }
        .await;
        match result {
            Ok(output) => Ok(output),
            Err(err) => Err(self.explain_missing(err).await),
        }
    }

    /// DataFusion reports `table 'a.b.c' not found` also when the catalog or namespace is what
    /// is missing; say which.
    async fn explain_missing(&self, err: datafusion::error::DataFusionError) -> FloeError {
        let message = err.to_string();
        let Some(name) = message
            .split("table '")
            .nth(1)
            .and_then(|rest| rest.split("' not found").next())
        else {
            return FloeError::DataFusion(err);
        };
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() >= 3 {
            let catalog_name = parts[0];
            let Some(catalog) = self.catalogs.get(catalog_name) else {
                return FloeError::NotFound {
                    kind: "catalog",
                    name: format!("{catalog_name} (known catalogs: {})", self.catalog_names()),
                };
            };
            if let Ok(namespace) =
                NamespaceIdent::from_strs(parts[1..parts.len() - 1].iter().copied())
                && let Ok(false) = catalog.iceberg.namespace_exists(&namespace).await
            {
                return FloeError::NotFound {
                    kind: "namespace",
                    name: format!("{catalog_name}.{}", namespace.join(".")),
                };
            }
            return FloeError::NotFound {
                kind: "table",
                name: name.to_string(),
            };
        }
        FloeError::DataFusion(err)
    }

    fn catalog_names(&self) -> String {
        self.catalogs.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn defaults(&self) -> (String, String) {
        let state = self.ctx.state();
        let options = &state.config_options().catalog;
        (
            options.default_catalog.clone(),
            options.default_schema.clone(),
        )
    }

    fn catalog(&self, name: &str) -> Result<Arc<FloeCatalog>> {
        self.catalogs
            .get(name)
            .cloned()
            .ok_or_else(|| FloeError::NotFound {
                kind: "catalog",
                name: format!("{name} (known catalogs: {})", self.catalog_names()),
            })
    }

    /// `ns`, `catalog.ns` (when `catalog` is a catalog) or the current namespace when empty.
    fn resolve_namespace(&self, text: &str) -> Result<(Arc<FloeCatalog>, NamespaceIdent)> {
        let parts = parse_object_name(text)?;
        let (default_catalog, default_schema) = self.defaults();
        let (catalog, namespace): (String, Vec<String>) = match parts.as_slice() {
            [] => (
                default_catalog,
                default_schema.split('.').map(str::to_string).collect(),
            ),
            [first, rest @ ..] if !rest.is_empty() && self.catalogs.contains_key(first) => {
                (first.clone(), rest.to_vec())
            }
            _ => (default_catalog, parts.clone()),
        };
        Ok((
            self.catalog(&catalog)?,
            NamespaceIdent::from_vec(namespace)?,
        ))
    }

    /// `t`, `ns.t`, `catalog.ns.t` (or deeper namespaces) against the `USE` defaults.
    fn resolve_table(&self, text: &str) -> Result<ResolvedTable> {
        let parts = parse_object_name(text)?;
        self.resolve_parts(parts)
    }

    fn resolve_parts(&self, parts: Vec<String>) -> Result<ResolvedTable> {
        let (default_catalog, default_schema) = self.defaults();
        let (catalog, namespace, table) = match parts.as_slice() {
            [table] => (default_catalog, vec![default_schema], table.clone()),
            [namespace, table] => (default_catalog, vec![namespace.clone()], table.clone()),
            [catalog, namespace @ .., table] if !namespace.is_empty() => {
                (catalog.clone(), namespace.to_vec(), table.clone())
            }
            _ => return Err(FloeError::plan("expected a table name")),
        };
        let catalog = self.catalog(&catalog)?;
        let ident = TableIdent::new(NamespaceIdent::from_vec(namespace)?, table);
        Ok(ResolvedTable { catalog, ident })
    }

    fn table_error(&self, table: &ResolvedTable, err: iceberg::Error) -> FloeError {
        if err.kind() == iceberg::ErrorKind::TableNotFound {
            FloeError::NotFound {
                kind: "table",
                name: table.display(),
            }
        } else {
            FloeError::Iceberg(err)
        }
    }

    async fn require_namespace(
        &self,
        catalog: &FloeCatalog,
        namespace: &NamespaceIdent,
    ) -> Result<()> {
        if !catalog.iceberg.namespace_exists(namespace).await? {
            return Err(FloeError::NotFound {
                kind: "namespace",
                name: format!("{}.{}", catalog.name, namespace.join(".")),
            });
        }
        Ok(())
    }

    async fn use_statement(&self, target: &str) -> Result<StatementOutput> {
        let parts = parse_object_name(target)?;
        let (catalog, namespace) = match parts.as_slice() {
            [] => return Err(FloeError::plan("USE needs a catalog or namespace name")),
            [only] if self.catalogs.contains_key(only) => {
                // Like Trino/Spark: switching catalogs lands in its `default` namespace.
                (only.clone(), None)
            }
            [catalog, namespace @ ..]
                if !namespace.is_empty() && self.catalogs.contains_key(catalog) =>
            {
                (catalog.clone(), Some(namespace.join(".")))
            }
            _ if parts.len() >= 2 && !self.catalogs.contains_key(&parts[0]) => {
                return Err(FloeError::NotFound {
                    kind: "catalog",
                    name: format!("{} (known catalogs: {})", parts[0], self.catalog_names()),
                });
            }
            _ => (self.defaults().0, Some(parts.join("."))),
        };
        let floe_catalog = self.catalog(&catalog)?;
        let namespace = namespace.unwrap_or_else(|| "default".to_string());
        if parts.len() > 1 || !self.catalogs.contains_key(&parts[0]) {
            let ident = NamespaceIdent::from_strs(namespace.split('.'))?;
            self.require_namespace(&floe_catalog, &ident).await?;
        }
        {
            let state = self.ctx.state_ref();
            let mut state = state.write();
            let options = &mut state.config_mut().options_mut().catalog;
            options.default_catalog = catalog.clone();
            options.default_schema = namespace.clone();
        }
        Ok(StatementOutput::done(format!(
            "Using {catalog}.{namespace}"
        )))
    }

    async fn show_schemas(&self, target: &str) -> Result<StatementOutput> {
        let catalog_name = match parse_object_name(target)?.as_slice() {
            [] => self.defaults().0,
            [catalog] => catalog.clone(),
            _ => {
                return Err(FloeError::plan(format!(
                    "SHOW SCHEMAS FROM expects a catalog, got `{target}`"
                )));
            }
        };
        let catalog = self.catalog(&catalog_name)?;
        let mut names: Vec<String> = catalog
            .iceberg
            .list_namespaces(None)
            .await?
            .iter()
            .map(|ns| ns.join("."))
            .collect();
        names.sort();
        StatementOutput::strings("namespace", names)
    }

    async fn show_tables(&self, target: &str) -> Result<StatementOutput> {
        let (catalog, namespace) = self.resolve_namespace(target)?;
        self.require_namespace(&catalog, &namespace).await?;
        let mut names: Vec<String> = catalog
            .iceberg
            .list_tables(&namespace)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        StatementOutput::strings("table", names)
    }

    async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<StatementOutput> {
        let (catalog, namespace) = self.resolve_namespace(name)?;
        let display = format!("{}.{}", catalog.name, namespace.join("."));
        if catalog.iceberg.namespace_exists(&namespace).await? {
            if if_not_exists {
                return Ok(StatementOutput::done(format!(
                    "Namespace {display} already exists"
                )));
            }
            return Err(FloeError::AlreadyExists {
                kind: "namespace",
                name: display,
            });
        }
        catalog
            .iceberg
            .create_namespace(&namespace, HashMap::new())
            .await?;
        Ok(StatementOutput::done(format!(
            "Created namespace {display}"
        )))
    }

    async fn drop_schema(
        &self,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> Result<StatementOutput> {
        let (catalog, namespace) = self.resolve_namespace(name)?;
        let display = format!("{}.{}", catalog.name, namespace.join("."));
        if !catalog.iceberg.namespace_exists(&namespace).await? {
            if if_exists {
                return Ok(StatementOutput::done(format!(
                    "Namespace {display} does not exist"
                )));
            }
            return Err(FloeError::NotFound {
                kind: "namespace",
                name: display,
            });
        }
        let tables = catalog.iceberg.list_tables(&namespace).await?;
        if !tables.is_empty() {
            if !cascade {
                return Err(FloeError::plan(format!(
                    "namespace {display} is not empty ({} tables); use DROP SCHEMA ... CASCADE",
                    tables.len()
                )));
            }
            for table in &tables {
                catalog.iceberg.drop_table(table).await?;
            }
        }
        catalog.iceberg.drop_namespace(&namespace).await?;
        Ok(StatementOutput::done(format!(
            "Dropped namespace {display}"
        )))
    }

    async fn drop_table(
        &self,
        name: &str,
        if_exists: bool,
        purge: bool,
    ) -> Result<StatementOutput> {
        let table = self.resolve_table(name)?;
        // A session-registered (external) table of that name goes first, as in DataFusion.
        let reference = TableReference::full(
            table.catalog.name.clone(),
            table.ident.namespace().join("."),
            table.ident.name().to_string(),
        );
        if self.ctx.deregister_table(reference)?.is_some() {
            return Ok(StatementOutput::done(format!(
                "Dropped table {}",
                table.display()
            )));
        }
        if !table.catalog.iceberg.table_exists(&table.ident).await? {
            if if_exists {
                return Ok(StatementOutput::done(format!(
                    "Table {} does not exist",
                    table.display()
                )));
            }
            self.require_namespace(&table.catalog, table.ident.namespace())
                .await?;
            return Err(FloeError::NotFound {
                kind: "table",
                name: table.display(),
            });
        }
        if purge {
            table.catalog.iceberg.purge_table(&table.ident).await?;
        } else {
            table.catalog.iceberg.drop_table(&table.ident).await?;
        }
        Ok(StatementOutput::done(format!(
            "Dropped table {}",
            table.display()
        )))
    }

    async fn create_table(&self, sql: &str) -> Result<StatementOutput> {
        let clauses = extract_create_clauses(sql)?;
        let state = self.ctx.state();
        let plan = state.create_logical_plan(&clauses.remaining_sql).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
            return Err(FloeError::plan("expected CREATE TABLE"));
        };
        if create.or_replace {
            return Err(FloeError::NotSupported("CREATE OR REPLACE TABLE".into()));
        }
        if create.temporary {
            return Err(FloeError::NotSupported(
                "CREATE TEMPORARY TABLE on an Iceberg catalog".into(),
            ));
        }
        let table = self.resolve_parts(table_reference_parts(&create.name))?;
        self.require_namespace(&table.catalog, table.ident.namespace())
            .await?;
        if table.catalog.iceberg.table_exists(&table.ident).await? {
            if create.if_not_exists {
                return Ok(StatementOutput::done(format!(
                    "Table {} already exists",
                    table.display()
                )));
            }
            return Err(FloeError::AlreadyExists {
                kind: "table",
                name: table.display(),
            });
        }

        let input_schema = create.input.schema().as_arrow().clone();
        let schema = iceberg_schema_for_create(&input_schema)?;
        let spec = partition_spec(&schema, &clauses.partition_items)?;
        let mut properties = clauses.properties;
        let format_version = match properties.remove("format-version").as_deref() {
            None | Some("2") => FormatVersion::V2,
            Some("1") => FormatVersion::V1,
            Some("3") => FormatVersion::V3,
            Some(other) => {
                return Err(FloeError::plan(format!(
                    "TBLPROPERTIES 'format-version' must be 1, 2 or 3, got '{other}'"
                )));
            }
        };
        let creation = TableCreation::builder()
            .name(table.ident.name().to_string())
            .schema(schema)
            .partition_spec(spec.into_unbound())
            .properties(properties)
            .format_version(format_version)
            .location_opt(
                clauses
                    .location
                    .map(|l| normalize_location(&l))
                    .transpose()?,
            )
            .build();
        let created = table
            .catalog
            .iceberg
            .create_table(table.ident.namespace(), creation)
            .await?;

        let is_ctas =
            !matches!(create.input.as_ref(), LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        if !is_ctas {
            return Ok(StatementOutput::done(format!(
                "Created table {}",
                table.display()
            )));
        }
        let table_schema = crate::iceberg::query_schema_of(created.metadata().current_schema())?;
        let insert = async {
            let frame = DataFrame::new(state.clone(), create.input.as_ref().clone());
            let casts = create
                .input
                .schema()
                .columns()
                .into_iter()
                .zip(table_schema.fields())
                .map(|(from, to)| cast(col(from), to.data_type().clone()).alias(to.name()))
                .collect::<Vec<_>>();
            let reference = TableReference::full(
                table.catalog.name.clone(),
                table.ident.namespace().join("."),
                table.ident.name().to_string(),
            );
            frame
                .select(casts)?
                .write_table(&reference.to_quoted_string(), DataFrameWriteOptions::new())
                .await
        }
        .await;
        match insert {
            Ok(batches) => {
                let rows = count_from_batches(&batches);
                Ok(StatementOutput::done(format!(
                    "Created table {} with {rows} rows",
                    table.display()
                )))
            }
            Err(err) => {
                // CTAS is one statement: leave no empty table behind when its query fails.
                if let Err(drop_err) = table.catalog.iceberg.drop_table(&table.ident).await {
                    return Err(FloeError::plan(format!(
                        "{err}; the table {} created by this statement could not be dropped \
                         again: {drop_err}",
                        table.display()
                    )));
                }
                Err(err.into())
            }
        }
    }
}

/// The name in `sql` after word `after_word` and before a trailing option keyword.
fn name_between<'a>(
    sql: &'a str,
    words: &[crate::sql_text::Word],
    after_word: usize,
    option: &Option<(String, usize)>,
) -> &'a str {
    let start = words.get(after_word).map_or(sql.len(), |w| w.end);
    let end = option
        .as_ref()
        .map_or(sql.len(), |(_, start)| *start)
        .max(start);
    sql[start..end].trim()
}

fn count_from_batches(batches: &[RecordBatch]) -> u64 {
    batches
        .first()
        .and_then(|b| b.columns().first().cloned())
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
}

fn table_reference_parts(reference: &TableReference) -> Vec<String> {
    match reference {
        TableReference::Bare { table } => vec![table.to_string()],
        TableReference::Partial { schema, table } => vec![schema.to_string(), table.to_string()],
        TableReference::Full {
            catalog,
            schema,
            table,
        } => {
            vec![catalog.to_string(), schema.to_string(), table.to_string()]
        }
    }
}

/// Parses a dotted name: unquoted parts are lower-cased (as DataFusion does), `"quoted"` and
/// `` `quoted` `` parts keep their case.
pub fn parse_object_name(text: &str) -> Result<Vec<String>> {
    let text = text.trim().trim_end_matches(';').trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        match chars.peek() {
            Some(&quote @ ('"' | '`')) => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == quote => {
                            if chars.peek() == Some(&quote) {
                                chars.next();
                                part.push(quote);
                            } else {
                                break;
                            }
                        }
                        Some(c) => part.push(c),
                        None => {
                            return Err(FloeError::plan(format!(
                                "unterminated quoted name in `{text}`"
                            )));
                        }
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '$' {
                        part.push(c.to_ascii_lowercase());
                        chars.next();
                    } else {
                        break;
                    }
                }
                if part.is_empty() {
                    return Err(FloeError::plan(format!("invalid name `{text}`")));
                }
            }
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(_) => return Err(FloeError::plan(format!("invalid name `{text}`"))),
        }
    }
    Ok(parts)
}

/// The Floe-only clauses of a `CREATE TABLE`, and the statement without them.
#[derive(Debug, Default)]
struct CreateClauses {
    remaining_sql: String,
    partition_items: Vec<crate::iceberg::ddl::PartitionItem>,
    properties: HashMap<String, String>,
    location: Option<String>,
}

fn extract_create_clauses(sql: &str) -> Result<CreateClauses> {
    let mut clauses = CreateClauses::default();
    // Byte ranges to blank out; blanking (not deleting) keeps DataFusion's error positions true.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let all = words(sql);
    let top: Vec<_> = all.iter().filter(|w| w.depth == 0).collect();
    // Stop at `AS` (the CTAS query) so clauses inside the query are left alone.
    let query_start = top
        .iter()
        .find(|w| w.upper == "AS" || w.upper == "SELECT")
        .map(|w| w.start);
    let before_query = |pos: usize| query_start.is_none_or(|q| pos < q);
    for (i, word) in top.iter().enumerate() {
        if !before_query(word.start) {
            break;
        }
        let paren_clause = |from: usize| -> Result<(usize, usize)> {
            let (open, c) = next_code_char(sql, from)
                .filter(|(_, c)| *c == '(')
                .ok_or_else(|| FloeError::plan(format!("expected `(` after {}", word.upper)))?;
            debug_assert_eq!(c, '(');
            let close = matching_paren(sql, open).ok_or_else(|| {
                FloeError::plan(format!("unbalanced parentheses in {}", word.upper))
            })?;
            Ok((open, close))
        };
        match word.upper.as_str() {
            "PARTITIONED" if top.get(i + 1).is_some_and(|w| w.upper == "BY") => {
                let (open, close) = paren_clause(top[i + 1].end)?;
                clauses.partition_items = parse_partition_items(&sql[open + 1..close])?;
                cuts.push((word.start, close + 1));
            }
            "TBLPROPERTIES" => {
                let (open, close) = paren_clause(word.end)?;
                clauses.properties = parse_properties(&sql[open + 1..close])?;
                cuts.push((word.start, close + 1));
            }
            "USING" => {
                let format = top.get(i + 1).map(|w| w.upper.as_str()).unwrap_or("");
                if format != "ICEBERG" {
                    return Err(FloeError::NotSupported(format!(
                        "CREATE TABLE ... USING {format}: tables in Iceberg catalogs are Iceberg tables"
                    )));
                }
                cuts.push((word.start, top[i + 1].end));
            }
            "LOCATION" => {
                // The path literal is not code to the scanner, so read it directly.
                let literal = sql[word.end..].trim_start();
                let literal_start = sql.len() - literal.len();
                let path_len = literal
                    .strip_prefix('\'')
                    .and_then(|body| body.find('\''))
                    .ok_or_else(|| {
                        FloeError::plan("LOCATION expects a quoted path, e.g. LOCATION '/data/t'")
                    })?;
                clauses.location = Some(literal[1..1 + path_len].to_string());
                cuts.push((word.start, literal_start + path_len + 2));
            }
            _ => {}
        }
    }
    let mut remaining = sql.to_string();
    for (start, end) in cuts {
        remaining.replace_range(start..end, &" ".repeat(end - start));
    }
    clauses.remaining_sql = remaining;
    Ok(clauses)
}

/// Parses `'key' = 'value', ...`.
fn parse_properties(text: &str) -> Result<HashMap<String, String>> {
    let mut properties = HashMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(FloeError::plan(format!(
                "TBLPROPERTIES item `{item}` is not 'key' = 'value'"
            )));
        };
        let unquote = |s: &str| s.trim().trim_matches('\'').trim_matches('"').to_string();
        properties.insert(unquote(key), unquote(value));
    }
    Ok(properties)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        assert_eq!(
            parse_object_name("Local.DB.\"MyTable\"").unwrap(),
            vec!["local", "db", "MyTable"]
        );
        assert!(parse_object_name("a b").is_err());
    }

    #[test]
    fn create_clauses_are_lifted_out() {
        let sql = "CREATE TABLE t (id INT, ts TIMESTAMP) USING iceberg PARTITIONED BY (day(ts), bucket(4, id)) \
                   LOCATION '/tmp/x' TBLPROPERTIES ('format-version' = '2', 'a'='b')";
        let clauses = extract_create_clauses(sql).unwrap();
        assert_eq!(clauses.partition_items.len(), 2);
        assert_eq!(clauses.properties["a"], "b");
        assert_eq!(clauses.location.as_deref(), Some("/tmp/x"));
        assert_eq!(
            clauses
                .remaining_sql
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            "CREATE TABLE t (id INT, ts TIMESTAMP)"
        );
    }
}
