//! Prepared statements: parsed and planned once, to learn the result's schema and the
//! parameters' types (what JDBC's and ADBC's `prepare` ask for), then run any number of times
//! with bound values.
//!
//! A plan pins the tables at the snapshot current when it was made, and a statement prepared by
//! a BI tool and run an hour later must see the rows committed since: a statement kept for later
//! ([`PreparedStatement::without_plan`]) is planned again from its parsed form on each run. A run
//! right after preparing (a Flight SQL ticket redeemed moments after `GetFlightInfo`) uses the
//! plan made then, so no table is loaded twice. Parameters are DataFusion's `$1`, `$2`, ... (a `?` is
//! numbered so by the tokenizer), bound by position.
//!
//! A statement is an *update* when it has no result set of its own: DDL, DML (whose single row
//! is its count), `USE`, `SET`. JDBC decides between `executeQuery` and `executeUpdate` by an
//! empty result schema, so an update's [`PreparedStatement::dataset_schema`] is empty.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;

use super::FloeSession;
use floe_common::error::{FloeError, Result};
use floe_sql::FloeStatement;

/// A statement ready to run with bound parameters; see the module docs.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    statement: FloeStatement,
    /// The plan `prepare` made, for one run without parameters soon after.
    plan: Option<LogicalPlan>,
    result_schema: SchemaRef,
    dataset_schema: SchemaRef,
    parameter_schema: SchemaRef,
    is_update: bool,
}

impl PreparedStatement {
    /// The schema of the rows a run returns; empty for an update.
    pub fn dataset_schema(&self) -> SchemaRef {
        Arc::clone(&self.dataset_schema)
    }

    /// The schema of the stream a run returns, updates included (DML's `count`; Floe's own
    /// statements without rows add their summary to it as metadata when they run).
    pub fn result_schema(&self) -> SchemaRef {
        Arc::clone(&self.result_schema)
    }

    /// One field per parameter, `$1` first; a parameter whose type the plan does not fix is
    /// `Null` (any value binds).
    pub fn parameter_schema(&self) -> SchemaRef {
        Arc::clone(&self.parameter_schema)
    }

    /// This statement without its plan: each run plans it again (see the module docs).
    pub fn without_plan(mut self) -> Self {
        self.plan = None;
        self
    }

    /// Whether the statement changes something rather than returning rows.
    pub fn is_update(&self) -> bool {
        self.is_update
    }
}

/// The schema Floe's own statements return rows in, when they return rows.
fn floe_statement_schema(statement: &FloeStatement) -> Option<SchemaRef> {
    let column = match statement {
        FloeStatement::ShowCatalogs => "catalog",
        FloeStatement::ShowSchemas { .. } => "namespace",
        FloeStatement::ShowTables { .. } => "table",
        FloeStatement::ShowCreateTable { .. } => "create_statement",
        _ => return None,
    };
    Some(Arc::new(Schema::new(vec![Field::new(
        column,
        DataType::Utf8,
        false,
    )])))
}

/// Whether a planned DataFusion statement returns rows of its own.
fn plan_is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
    )
}

/// `$1`, `$2`, ... in order, with their types.
fn parameter_schema(plan: &LogicalPlan) -> Result<SchemaRef> {
    let mut parameters: Vec<(usize, Field)> = Vec::new();
    for (name, field) in plan.get_parameter_fields()? {
        let position = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                FloeError::NotSupported(format!(
                    "named parameter `{name}`: bind parameters by position ($1 or ?)"
                ))
            })?;
        let field = match field {
            Some(field) => field.as_ref().clone().with_name(name.clone()),
            None => Field::new(name.clone(), DataType::Null, true),
        };
        parameters.push((position, field));
    }
    parameters.sort_by_key(|(position, _)| *position);
    Ok(Arc::new(Schema::new(
        parameters
            .into_iter()
            .map(|(_, field)| field)
            .collect::<Vec<_>>(),
    )))
}

impl FloeSession {
    /// Parses and plans `sql` (one statement) without running it.
    pub async fn prepare(&self, sql: &str) -> Result<PreparedStatement> {
        let statement = self.parse_one(sql)?;
        let FloeStatement::DataFusion(parsed) = &statement else {
            let rows = floe_statement_schema(&statement);
            let schema = rows.clone().unwrap_or_else(|| Arc::new(Schema::empty()));
            return Ok(PreparedStatement {
                plan: None,
                is_update: rows.is_none(),
                result_schema: Arc::clone(&schema),
                dataset_schema: schema,
                parameter_schema: Arc::new(Schema::empty()),
                statement,
            });
        };
        let plan = self.logical_plan(parsed.as_ref().clone()).await?;
        let is_update = !plan_is_query(&plan);
        let result_schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let dataset_schema = if is_update {
            Arc::new(Schema::empty())
        } else {
            Arc::clone(&result_schema)
        };
        Ok(PreparedStatement {
            result_schema,
            parameter_schema: parameter_schema(&plan)?,
            dataset_schema,
            is_update,
            statement,
            plan: Some(plan),
        })
    }

    /// Runs `prepared` with `parameters` bound to `$1`, `$2`, ... (planned afresh; see the
    /// module docs); its rows stream as [`FloeSession::execute_statement_stream`]'s do.
    pub async fn execute_prepared(
        &self,
        prepared: &PreparedStatement,
        parameters: Vec<ScalarValue>,
    ) -> Result<SendableRecordBatchStream> {
        let expected = prepared.parameter_schema.fields().len();
        if parameters.len() != expected {
            return Err(FloeError::plan(format!(
                "the statement takes {expected} parameters, {} were bound",
                parameters.len()
            )));
        }
        if let (Some(plan), true) = (&prepared.plan, parameters.is_empty()) {
            return self.stream_plan(plan.clone()).await;
        }
        let parameters = (!parameters.is_empty()).then_some(parameters);
        self.stream_statement(prepared.statement.clone(), parameters)
            .await
    }

    /// DataFusion's logical plan of a parsed statement, with Floe's checks and its error
    /// messages for missing names.
    pub(super) async fn logical_plan(&self, statement: DFStatement) -> Result<LogicalPlan> {
        super::refuse_unresolved_versions(&statement)?;
        match self.ctx.state().statement_to_plan(statement).await {
            Ok(plan) => Ok(plan),
            Err(err) => Err(self.explain_missing(err).await),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::Int64Type;
    use futures::TryStreamExt;

    use floe_common::FloeConfig;

    async fn session() -> (tempfile::TempDir, FloeSession) {
        let dir = tempfile::tempdir().unwrap();
        let config = FloeConfig::local_warehouse(dir.path());
        let session = FloeSession::new(&config).await.unwrap();
        session
            .execute("CREATE TABLE t AS SELECT CAST(value AS BIGINT) AS id FROM generate_series(1, 10)")
            .await
            .unwrap();
        (dir, session)
    }

    async fn count(session: &FloeSession, prepared: &PreparedStatement, params: Vec<ScalarValue>) -> i64 {
        let stream = session.execute_prepared(prepared, params).await.unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_runs_with_each_binding_and_sees_new_rows() {
        let (_dir, session) = session().await;
        let prepared = session
            .prepare("SELECT count(*) AS n FROM t WHERE id > ?")
            .await
            .unwrap()
            .without_plan();
        assert!(!prepared.is_update());
        assert_eq!(prepared.dataset_schema().field(0).name(), "n");
        let parameters = prepared.parameter_schema();
        assert_eq!(parameters.fields().len(), 1);
        assert_eq!(parameters.field(0).name(), "$1");
        assert_eq!(parameters.field(0).data_type(), &DataType::Int64);
        assert_eq!(count(&session, &prepared, vec![ScalarValue::Int64(Some(7))]).await, 3);
        assert_eq!(count(&session, &prepared, vec![ScalarValue::Int64(Some(2))]).await, 8);
        // Planned afresh each run: rows committed after `prepare` are seen.
        session.execute("INSERT INTO t VALUES (11)").await.unwrap();
        assert_eq!(count(&session, &prepared, vec![ScalarValue::Int64(Some(7))]).await, 4);
        // A plan kept for one run sees the table as it was when it was made.
        let planned = session.prepare("SELECT count(*) AS n FROM t").await.unwrap();
        session.execute("INSERT INTO t VALUES (12)").await.unwrap();
        assert_eq!(count(&session, &planned, vec![]).await, 11);
        assert_eq!(count(&session, &planned.without_plan(), vec![]).await, 12);
        let Err(err) = session.execute_prepared(&prepared, vec![]).await else {
            panic!("ran without its parameter");
        };
        assert!(err.to_string().contains("takes 1 parameters"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_have_no_result_schema_and_run_only_when_executed() {
        let (_dir, session) = session().await;
        let insert = session.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
        assert!(insert.is_update());
        assert!(insert.dataset_schema().fields().is_empty());
        let create = session.prepare("CREATE TABLE u (a INT)").await.unwrap();
        assert!(create.is_update());
        let show = session.prepare("SHOW TABLES").await.unwrap();
        assert!(!show.is_update());
        // Preparing ran nothing.
        let rows = session.execute_statement("SELECT count(*) FROM t").await.unwrap();
        assert_eq!(rows.batches[0].column(0).as_primitive::<Int64Type>().value(0), 10);
        assert!(session.execute_statement("SELECT * FROM u").await.is_err());
        for id in [20, 21] {
            let stream = session
                .execute_prepared(&insert, vec![ScalarValue::Int64(Some(id))])
                .await
                .unwrap();
            let _: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        }
        let rows = session.execute_statement("SELECT count(*) FROM t").await.unwrap();
        assert_eq!(rows.batches[0].column(0).as_primitive::<Int64Type>().value(0), 12);
    }
}
