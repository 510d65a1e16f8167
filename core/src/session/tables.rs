//! Table DDL on Iceberg catalogs: `CREATE TABLE [AS query]`, `DROP TABLE`, `SHOW CREATE TABLE`.
//!
//! `CREATE TABLE` hands its columns (and query) to DataFusion's planner as a plain sqlparser
//! `CREATE TABLE`, so SQL types map exactly as DataFusion maps them; the Iceberg schema,
//! partition spec and properties are then made from that plan and Floe's own clauses.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, cast, col};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use datafusion::sql::sqlparser::ast::{ObjectName, Statement as SQLStatement};
use iceberg::TableCreation;
use iceberg::spec::FormatVersion;

use super::{FloeSession, StatementOutput};
use floe_common::error::{FloeError, Result};
use floe_iceberg::catalogs::normalize_location;
use floe_iceberg::ddl::{
    first_v3_only_column, iceberg_schema_for_create, nanosecond_columns, partition_items,
    partition_spec, show_create_table,
};
use floe_sql::{CreateTable, TableProperty};

impl FloeSession {
    /// `CREATE TABLE`, and for `AS query` the insert of its rows; a failed insert drops the
    /// table again, so the statement leaves all or nothing.
    pub(super) async fn create_table(&self, create: CreateTable) -> Result<StatementOutput> {
        if create.or_replace {
            return Err(FloeError::NotSupported("CREATE OR REPLACE TABLE".into()));
        }
        if create.temporary {
            return Err(FloeError::NotSupported(
                "CREATE TEMPORARY TABLE on an Iceberg catalog".into(),
            ));
        }
        if let Some(format) = create
            .using
            .as_ref()
            .filter(|f| !f.value.eq_ignore_ascii_case("iceberg"))
        {
            return Err(FloeError::NotSupported(format!(
                "CREATE TABLE ... USING {format}: tables in Iceberg catalogs are Iceberg tables"
            )));
        }
        let nanos = nanosecond_columns(&create.columns, &self.normalizer());
        let statement = CreateTableBuilder::new(create.name.clone())
            .if_not_exists(create.if_not_exists)
            .columns(create.columns)
            .constraints(create.constraints)
            .query(create.query)
            .build();
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(DFStatement::Statement(Box::new(SQLStatement::CreateTable(
                statement,
            ))))
            .await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(plan)) = plan else {
            return Err(FloeError::plan("expected CREATE TABLE"));
        };
        let table = self.resolve_table(&create.name)?;
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

        let input_schema = plan.input.schema().as_arrow().clone();
        let schema = iceberg_schema_for_create(&input_schema, &nanos)?;
        let items = partition_items(&create.partitioned_by, &self.normalizer())?;
        let spec = partition_spec(&schema, &items)?;
        let mut properties = property_map(create.properties)?;
        let v3_column = first_v3_only_column(&schema);
        let format_version = match properties.remove("format-version").as_deref() {
            // Nanosecond timestamps exist from v3 on; a table that has them is made v3.
            None if v3_column.is_some() => FormatVersion::V3,
            Some(version @ ("1" | "2")) if let Some((column, sql_type)) = &v3_column => {
                return Err(FloeError::plan(format!(
                    "column `{column}` of type {sql_type} needs Iceberg format version 3, \
                     but TBLPROPERTIES sets 'format-version' = '{version}'"
                )));
            }
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
                create
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
            !matches!(plan.input.as_ref(), LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        if !is_ctas {
            return Ok(StatementOutput::done(format!(
                "Created table {}",
                table.display()
            )));
        }
        let table_schema = floe_iceberg::query_schema_of(created.metadata().current_schema())?;
        let insert = async {
            let frame = DataFrame::new(state.clone(), plan.input.as_ref().clone());
            // The query's columns become the table's: same order, the stored types.
            let casts = plan
                .input
                .schema()
                .columns()
                .into_iter()
                .zip(table_schema.fields())
                .map(|(from, to)| cast(col(from), to.data_type().clone()).alias(to.name()))
                .collect::<Vec<_>>();
            frame
                .select(casts)?
                .write_table(
                    &table.reference().to_quoted_string(),
                    DataFrameWriteOptions::new(),
                )
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

    pub(super) async fn drop_table(
        &self,
        name: &ObjectName,
        if_exists: bool,
        purge: bool,
    ) -> Result<StatementOutput> {
        let table = self.resolve_table(name)?;
        // A session-registered (external) table of that name goes first, as in DataFusion.
        if self.ctx.deregister_table(table.reference())?.is_some() {
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

    pub(super) async fn show_create_table(&self, name: &ObjectName) -> Result<StatementOutput> {
        let table = self.resolve_table(name)?;
        let loaded = table
            .catalog
            .iceberg
            .load_table(&table.ident)
            .await
            .map_err(|e| self.table_error(&table, e))?;
        let text = show_create_table(&table.display(), loaded.metadata());
        StatementOutput::strings("create_statement", vec![text])
    }
}

/// `TBLPROPERTIES` as the catalog takes them; a key given twice is a mistake, not an override.
fn property_map(properties: Vec<TableProperty>) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for TableProperty { key, value } in properties {
        if map.contains_key(&key) {
            return Err(FloeError::plan(format!(
                "TBLPROPERTIES gives '{key}' more than once"
            )));
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// The row count a DataFusion insert reports (one `UInt64` count in the first batch).
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
