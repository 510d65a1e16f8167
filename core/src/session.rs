//! `FloeSession`: parses SQL once with [`floe_sql::FloeParser`] and dispatches each statement.
//!
//! DataFusion plans and runs queries and DML from the parsed statement. Floe's own statements
//! run here, because they talk to Iceberg catalogs asynchronously or have syntax DataFusion
//! lacks; each family lives in a module of its own:
//! - `names`: resolving dotted names against the catalogs and the `USE` defaults, and naming
//!   what is missing when DataFusion reports a table as not found;
//! - `namespaces`: `USE`, `SHOW CATALOGS | SCHEMAS | TABLES`, `CREATE/DROP SCHEMA`;
//! - `tables`: `CREATE TABLE [AS]`, `DROP TABLE`, `SHOW CREATE TABLE`;
//! - [`browse`]: listing catalogs, namespaces and tables for Flight SQL's metadata RPCs;
//! - [`prepared`]: statements planned once and run with bound parameters.

pub mod browse;
mod names;
mod namespaces;
pub mod prepared;
mod tables;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::planner::IdentNormalizer;
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use iceberg::NamespaceIdent;

use crate::join_order::JoinOrder;
use floe_common::config::{CatalogType, FloeConfig};
use floe_common::error::{FloeError, Result};
use floe_common::options::FloeOptions;
use floe_iceberg::catalogs::FloeCatalog;
use floe_iceberg::provider::{IcebergCatalogProvider, MetadataCaches};
use floe_sql::{FloeStatement, parse_sql};

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
    /// The providers registered in `ctx` (which holds them wrapped for URL tables), for what
    /// DataFusion's catalog API does not reach: this session's own tables.
    providers: BTreeMap<String, Arc<IcebergCatalogProvider>>,
}

impl std::fmt::Debug for FloeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloeSession")
            .field("catalogs", &self.catalogs.keys().collect::<Vec<_>>())
            .finish()
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

/// What running a statement gave: a finished output, or DataFusion's plan still to run.
enum Outcome {
    Done(StatementOutput),
    // Boxed: a DataFrame holds a whole session state.
    Plan(Box<DataFrame>),
}

/// DataFusion's logical optimizer rules with Floe's join ordering right after filters are
/// pushed down (so it sees each join input's filters), on the cluster and in one process alike.
fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    let after_filters = rules
        .iter()
        .position(|rule| rule.name() == "push_down_filter")
        .map_or(rules.len(), |at| at + 1);
    rules.insert(after_filters, Arc::new(JoinOrder));
    rules
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
        let mut floe_options = FloeOptions::default();
        floe_options.single_task_max_scan_bytes = config.engine.single_task_max_scan_bytes;
        session_config = session_config.with_option_extension(floe_options);
        let runtime = RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(config.engine.metadata_cache_mib * 1024 * 1024)
            .build_arc()?;
        if query_planner.is_some() {
            // On a cluster a round-robin repartition is a stage cut: a one-file scan becomes a
            // task writing shuffle files that a second stage reads, which costs more than the
            // parallelism it buys (33 stages for TPC-DS q83). Scans get their parallelism from
            // file groups and byte-range splits instead. A session can still SET it back.
            session_config
                .options_mut()
                .optimizer
                .enable_round_robin_repartition = false;
        }
        let mut state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features();
        state = state.with_optimizer_rules(optimizer_rules());
        if let Some(planner) = query_planner {
            state = state.with_query_planner(planner);
        }
        let ctx = SessionContext::new_with_state(state.build()).enable_url_table();
        let mut providers = BTreeMap::new();
        for (name, catalog) in &catalogs.catalogs {
            let provider = Arc::new(IcebergCatalogProvider::new(
                Arc::clone(catalog),
                Arc::clone(&catalogs.caches),
            ));
            ctx.register_catalog(name, Arc::clone(&provider) as Arc<_>);
            providers.insert(name.clone(), provider);
        }
        Ok(Self {
            ctx,
            catalogs: catalogs.catalogs.clone(),
            providers,
        })
    }

    /// The DataFusion context (for embedding Floe and for tests).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs every statement of a script, stopping at the first error. The whole script is
    /// parsed first, so a syntax error anywhere runs nothing.
    pub async fn execute(&self, sql: &str) -> Result<Vec<StatementOutput>> {
        let mut outputs = Vec::new();
        for statement in self.parse(sql)? {
            outputs.push(self.collect(statement).await?);
        }
        Ok(outputs)
    }

    /// Runs one statement (a trailing `;` is fine; several statements are an error).
    pub async fn execute_statement(&self, sql: &str) -> Result<StatementOutput> {
        let statement = self.parse_one(sql)?;
        self.collect(statement).await
    }

    /// Runs one statement and returns its rows as a stream: queries and DML stream from their
    /// plan; Floe's own statements run to completion first. A statement without rows yields
    /// a schema with no fields whose metadata holds [`SUMMARY_METADATA_KEY`].
    pub async fn execute_statement_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let statement = self.parse_one(sql)?;
        self.stream_statement(statement, None).await
    }

    /// Runs a DataFusion plan made by [`FloeSession::prepare`], as a stream.
    async fn stream_plan(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
        match self.ctx.execute_logical_plan(plan).await {
            Ok(frame) => Ok(frame.execute_stream().await?),
            Err(err) => Err(self.explain_missing(err).await),
        }
    }

    /// Runs a parsed statement, with `parameters` bound to its `$1`, `$2`, ..., as a stream.
    async fn stream_statement(
        &self,
        statement: FloeStatement,
        parameters: Option<Vec<ScalarValue>>,
    ) -> Result<SendableRecordBatchStream> {
        match self.run_with(statement, parameters).await? {
            Outcome::Plan(frame) => Ok(frame.execute_stream().await?),
            Outcome::Done(output) => {
                let schema = match &output.summary {
                    Some(summary) => Arc::new(Schema::empty().with_metadata(HashMap::from([(
                        SUMMARY_METADATA_KEY.to_string(),
                        summary.clone(),
                    )]))),
                    None => output.schema,
                };
                Ok(Box::pin(MemoryStream::try_new(
                    output.batches,
                    schema,
                    None,
                )?))
            }
        }
    }

    /// Parses a script with the session's SQL dialect and recursion limit.
    fn parse(&self, sql: &str) -> Result<Vec<FloeStatement>> {
        let (dialect, recursion_limit) = {
            let state = self.ctx.state_ref();
            let state = state.read();
            let options = &state.config_options().sql_parser;
            (options.dialect, options.recursion_limit)
        };
        let parser_dialect = dialect_from_str(dialect).ok_or_else(|| {
            FloeError::plan(format!("unsupported SQL dialect `{}`", dialect.as_ref()))
        })?;
        Ok(parse_sql(sql, parser_dialect.as_ref(), recursion_limit)?)
    }

    /// Parses text that must hold exactly one statement.
    fn parse_one(&self, sql: &str) -> Result<FloeStatement> {
        let mut statements = self.parse(sql)?;
        match statements.len() {
            1 => Ok(statements.remove(0)),
            0 => Err(FloeError::plan("no SQL statement to run")),
            n => Err(FloeError::plan(format!(
                "expected one SQL statement, got {n}: run them one at a time or as a script"
            ))),
        }
    }

    /// Normalizes names as DataFusion does: unquoted lower-cased (unless the session turned
    /// `datafusion.sql_parser.enable_ident_normalization` off), quoted kept.
    fn normalizer(&self) -> IdentNormalizer {
        let state = self.ctx.state_ref();
        let normalize = state
            .read()
            .config_options()
            .sql_parser
            .enable_ident_normalization;
        IdentNormalizer::new(normalize)
    }

    /// Runs a statement and collects its rows.
    async fn collect(&self, statement: FloeStatement) -> Result<StatementOutput> {
        let frame = match self.run(statement).await? {
            Outcome::Done(output) => return Ok(output),
            Outcome::Plan(frame) => *frame,
        };
        let schema = Arc::new(frame.schema().as_arrow().clone());
        match frame.collect().await {
            Ok(batches) => Ok(StatementOutput::rows(schema, batches)),
            Err(err) => Err(self.explain_missing(err).await),
        }
    }

    /// The dispatcher: Floe's statements run to completion, DataFusion's are planned.
    async fn run(&self, statement: FloeStatement) -> Result<Outcome> {
        self.run_with(statement, None).await
    }

    /// [`Self::run`] with parameters bound; only DataFusion's statements take them.
    async fn run_with(
        &self,
        statement: FloeStatement,
        parameters: Option<Vec<ScalarValue>>,
    ) -> Result<Outcome> {
        if parameters.is_some() && !matches!(statement, FloeStatement::DataFusion(_)) {
            return Err(FloeError::NotSupported(
                "parameters in USE, SHOW and Floe's DDL statements".into(),
            ));
        }
        let output = match statement {
            FloeStatement::DataFusion(statement) => {
                return Ok(Outcome::Plan(Box::new(
                    self.plan(*statement, parameters).await?,
                )));
            }
            FloeStatement::Use(name) => self.use_statement(&name).await?,
            FloeStatement::ShowCatalogs => {
                StatementOutput::strings("catalog", self.catalogs.keys().cloned().collect())?
            }
            FloeStatement::ShowSchemas { catalog } => self.show_schemas(catalog.as_ref()).await?,
            FloeStatement::ShowTables { namespace } => self.show_tables(namespace.as_ref()).await?,
            FloeStatement::ShowCreateTable { table } => self.show_create_table(&table).await?,
            FloeStatement::CreateSchema {
                name,
                if_not_exists,
            } => self.create_schema(&name, if_not_exists).await?,
            FloeStatement::DropSchema {
                name,
                if_exists,
                cascade,
            } => self.drop_schema(&name, if_exists, cascade).await?,
            FloeStatement::CreateTable(create) => self.create_table(*create).await?,
            FloeStatement::DropTable {
                name,
                if_exists,
                purge,
            } => self.drop_table(&name, if_exists, purge).await?,
        };
        Ok(Outcome::Done(output))
    }

    /// DataFusion's plan for `statement` with `parameters` bound, as `SessionContext::sql`
    /// makes it from text.
    async fn plan(
        &self,
        statement: DFStatement,
        parameters: Option<Vec<ScalarValue>>,
    ) -> Result<DataFrame> {
        let mut plan = self.logical_plan(statement).await?;
        if let Some(parameters) = parameters {
            plan = plan.with_param_values(parameters)?;
        }
        match self.ctx.execute_logical_plan(plan).await {
            Ok(frame) => Ok(frame),
            Err(err) => Err(self.explain_missing(err).await),
        }
    }
}

/// Refuses a time-travel clause that reached the AST unresolved (see
/// [`floe_sql::time_travel`]).
fn refuse_unresolved_versions(statement: &DFStatement) -> Result<()> {
    use floe_sql::time_travel::refuse_unresolved_versions as refuse;
    let refused = match statement {
        DFStatement::Statement(statement) => refuse(statement.as_ref()),
        DFStatement::Explain(explain) => return refuse_unresolved_versions(&explain.statement),
        DFStatement::CopyTo(copy) => match &copy.source {
            datafusion::sql::parser::CopyToSource::Query(query) => refuse(query.as_ref()),
            datafusion::sql::parser::CopyToSource::Relation(_) => Ok(()),
        },
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => Ok(()),
    };
    refused.map_err(FloeError::NotSupported)
}
