//! Catalog and namespace statements: `USE`, `SHOW SCHEMAS | TABLES`, `CREATE/DROP SCHEMA`.

use std::collections::HashMap;

use datafusion::logical_expr::{LogicalPlan, ResetVariable, SetVariable, Statement};
use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
use iceberg::NamespaceIdent;

use super::{FloeSession, StatementOutput};
use floe_common::error::{FloeError, Result};

impl FloeSession {
    /// `USE catalog`, `USE namespace` or `USE catalog.namespace`: sets the defaults that
    /// unqualified names resolve against.
    pub(super) async fn use_statement(&self, target: &ObjectName) -> Result<StatementOutput> {
        let parts = self.name_parts(target)?;
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
            [first, _, ..] => {
                return Err(FloeError::NotFound {
                    kind: "catalog",
                    name: format!("{first} (known catalogs: {})", self.catalog_names()),
                });
            }
            [only] => (self.defaults().0, Some(only.clone())),
        };
        let floe_catalog = self.catalog(&catalog)?;
        let checked = namespace.is_some();
        let namespace = namespace.unwrap_or_else(|| "default".to_string());
        if checked {
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

    /// `USE` for a name given as its parts (`["lake", "sales"]`), each taken as written: what
    /// Flight's `SetSessionOptions` sets `catalog` and `schema` with, no SQL text involved.
    pub async fn use_namespace(&self, parts: &[String]) -> Result<()> {
        let name = ObjectName::from(
            parts
                .iter()
                .map(|part| Ident::with_quote('"', part.as_str()))
                .collect::<Vec<_>>(),
        );
        self.use_statement(&name).await.map(|_| ())
    }

    /// Sets (or, without a value, resets) one session setting as `SET name = value` does,
    /// without SQL text.
    pub async fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        let statement = match value {
            Some(value) => Statement::SetVariable(SetVariable {
                variable: name.to_string(),
                value: value.to_string(),
            }),
            None => Statement::ResetVariable(ResetVariable {
                variable: name.to_string(),
            }),
        };
        self.ctx
            .execute_logical_plan(LogicalPlan::Statement(statement))
            .await?;
        Ok(())
    }

    /// `SHOW SCHEMAS [FROM catalog]`: the catalog's top-level namespaces, sorted.
    pub(super) async fn show_schemas(
        &self,
        catalog: Option<&ObjectName>,
    ) -> Result<StatementOutput> {
        let catalog_name = match catalog {
            None => self.defaults().0,
            Some(name) => match self.name_parts(name)?.as_slice() {
                [catalog] => catalog.clone(),
                _ => {
                    return Err(FloeError::plan(format!(
                        "SHOW SCHEMAS FROM expects a catalog, got `{name}`"
                    )));
                }
            },
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

    /// `SHOW TABLES [FROM namespace]`: the namespace's tables, sorted.
    pub(super) async fn show_tables(
        &self,
        namespace: Option<&ObjectName>,
    ) -> Result<StatementOutput> {
        let (catalog, namespace) = self.resolve_namespace(namespace)?;
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

    pub(super) async fn create_schema(
        &self,
        name: &ObjectName,
        if_not_exists: bool,
    ) -> Result<StatementOutput> {
        let (catalog, namespace) = self.resolve_namespace(Some(name))?;
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

    /// `DROP SCHEMA`: refuses a namespace with tables unless `CASCADE` drops them first.
    pub(super) async fn drop_schema(
        &self,
        name: &ObjectName,
        if_exists: bool,
        cascade: bool,
    ) -> Result<StatementOutput> {
        let (catalog, namespace) = self.resolve_namespace(Some(name))?;
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
}
