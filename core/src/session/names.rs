//! Name resolution: dotted names to catalogs, namespaces and tables, against the `USE`
//! defaults; and telling apart what is missing when DataFusion only says "table not found".

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::ObjectName;
use iceberg::{NamespaceIdent, TableIdent};

use super::FloeSession;
use floe_common::error::{FloeError, Result};
use floe_iceberg::catalogs::FloeCatalog;

/// Where a dotted table name points once `USE` defaults are applied.
#[derive(Debug, Clone)]
pub(super) struct ResolvedTable {
    pub(super) catalog: Arc<FloeCatalog>,
    pub(super) ident: TableIdent,
}

impl ResolvedTable {
    /// `catalog.namespace.table`, as messages name it.
    pub(super) fn display(&self) -> String {
        format!(
            "{}.{}.{}",
            self.catalog.name,
            self.ident.namespace().join("."),
            self.ident.name()
        )
    }

    /// The name DataFusion knows the table by.
    pub(super) fn reference(&self) -> TableReference {
        TableReference::full(
            self.catalog.name.clone(),
            self.ident.namespace().join("."),
            self.ident.name().to_string(),
        )
    }
}

impl FloeSession {
    pub(super) fn catalog_names(&self) -> String {
        self.catalogs.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The current catalog and namespace (`USE` changes them).
    pub fn defaults(&self) -> (String, String) {
        let state = self.ctx.state_ref();
        let state = state.read();
        let options = &state.config_options().catalog;
        (
            options.default_catalog.clone(),
            options.default_schema.clone(),
        )
    }

    pub(super) fn catalog(&self, name: &str) -> Result<Arc<FloeCatalog>> {
        self.catalogs
            .get(name)
            .cloned()
            .ok_or_else(|| FloeError::NotFound {
                kind: "catalog",
                name: format!("{name} (known catalogs: {})", self.catalog_names()),
            })
    }

    /// The parts of a parsed name, normalized as DataFusion normalizes identifiers.
    pub(super) fn name_parts(&self, name: &ObjectName) -> Result<Vec<String>> {
        let normalizer = self.normalizer();
        name.0
            .iter()
            .map(|part| {
                part.as_ident()
                    .map(|ident| normalizer.normalize(ident.clone()))
                    .ok_or_else(|| FloeError::plan(format!("`{part}` is not a name")))
            })
            .collect()
    }

    /// `ns`, `catalog.ns` (when `catalog` is a catalog), or the current namespace for `None`.
    pub(super) fn resolve_namespace(
        &self,
        name: Option<&ObjectName>,
    ) -> Result<(Arc<FloeCatalog>, NamespaceIdent)> {
        let parts = name.map(|n| self.name_parts(n)).transpose()?;
        let (default_catalog, default_schema) = self.defaults();
        let (catalog, namespace): (String, Vec<String>) = match parts.as_deref() {
            None | Some([]) => (
                default_catalog,
                default_schema.split('.').map(str::to_string).collect(),
            ),
            Some([first, rest @ ..]) if !rest.is_empty() && self.catalogs.contains_key(first) => {
                (first.clone(), rest.to_vec())
            }
            Some(parts) => (default_catalog, parts.to_vec()),
        };
        Ok((
            self.catalog(&catalog)?,
            NamespaceIdent::from_vec(namespace)?,
        ))
    }

    /// `t`, `ns.t`, `catalog.ns.t` (or deeper namespaces) against the `USE` defaults.
    pub(super) fn resolve_table(&self, name: &ObjectName) -> Result<ResolvedTable> {
        let parts = self.name_parts(name)?;
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

    /// An Iceberg error about `table`, with a missing table reported as [`FloeError::NotFound`].
    pub(super) fn table_error(&self, table: &ResolvedTable, err: iceberg::Error) -> FloeError {
        if err.kind() == iceberg::ErrorKind::TableNotFound {
            FloeError::NotFound {
                kind: "table",
                name: table.display(),
            }
        } else {
            FloeError::Iceberg(err)
        }
    }

    pub(super) async fn require_namespace(
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

    /// DataFusion reports `table 'a.b.c' not found` also when the catalog or namespace is what
    /// is missing; say which.
    pub(super) async fn explain_missing(&self, err: DataFusionError) -> FloeError {
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
}
