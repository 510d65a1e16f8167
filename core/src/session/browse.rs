//! Browsing the catalogs as a BI tool's navigator does (Flight SQL's `GetCatalogs`,
//! `GetDbSchemas`, `GetTables`): every listing is asynchronous and every failure is an error
//! naming the catalog, never an empty list. DataFusion's synchronous `schema_names` /
//! `table_names` callbacks cannot tell a failed catalog from an empty one, so nothing here goes
//! through them.
//!
//! Tables are listed with JDBC's type names: Iceberg tables and external tables are `TABLE`,
//! views `VIEW`, and Iceberg's metadata tables (`orders$snapshots`, ...) `SYSTEM TABLE`. Like
//! Trino, which hides its `$` tables from listings, metadata tables are left out unless the
//! request asks for `SYSTEM TABLE` by name: nine extra rows per table would bury a navigator,
//! and their schemas cost a manifest read each.
//!
//! Namespaces are the catalog's top-level ones, as `SHOW SCHEMAS` lists them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use futures::{StreamExt, TryStreamExt};
use iceberg::{NamespaceIdent, TableIdent};

use super::FloeSession;
use floe_common::error::{FloeError, Result};
use floe_common::table_names::METADATA_TABLE_NAMES;
use floe_iceberg::catalogs::FloeCatalog;
use floe_iceberg::metadata_tables::MetadataTable;
use floe_iceberg::query_schema_of;
use floe_sql::name_pattern::matches_optional;
pub use floe_sql::name_pattern::NamePattern;

/// Catalog calls (listing a namespace's tables, loading a table for its schema) in flight at
/// once for one listing.
pub const LISTING_CALLS_IN_FLIGHT: usize = 8;

/// What kind of table a listed name is, as JDBC's `getTableTypes` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TableKind {
    /// An Iceberg table, or an external table over files.
    Table,
    /// A view.
    View,
    /// A session's temporary table.
    LocalTemporary,
    /// An Iceberg metadata table of a table.
    SystemTable,
}

impl TableKind {
    /// Every kind, in the order `GetTableTypes` lists them.
    pub const ALL: [TableKind; 4] = [
        TableKind::LocalTemporary,
        TableKind::SystemTable,
        TableKind::Table,
        TableKind::View,
    ];

    /// The JDBC name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Table => "TABLE",
            TableKind::View => "VIEW",
            TableKind::LocalTemporary => "LOCAL TEMPORARY",
            TableKind::SystemTable => "SYSTEM TABLE",
        }
    }

    /// The kind a client's type filter names, ignoring case; `BASE TABLE` (the SQL standard's
    /// `information_schema` spelling) is `TABLE`.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_uppercase();
        if name == "BASE TABLE" {
            return Some(TableKind::Table);
        }
        TableKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    fn of_provider(provider: &dyn TableProvider) -> Self {
        match provider.table_type() {
            TableType::Base => TableKind::Table,
            TableType::View => TableKind::View,
            TableType::Temporary => TableKind::LocalTemporary,
        }
    }
}

/// Which tables a listing wants.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// Only this catalog (exact name); `None` is every catalog.
    pub catalog: Option<String>,
    /// Namespaces whose name matches.
    pub namespace: Option<NamePattern>,
    /// Tables whose name matches.
    pub table: Option<NamePattern>,
    /// Type names as the client sent them; empty is every kind but [`TableKind::SystemTable`]
    /// (see the module docs). A name Floe does not know matches nothing.
    pub types: Vec<String>,
    /// Whether each table's Arrow schema is wanted (the one a `SELECT *` returns).
    pub with_schema: bool,
}

impl TableFilter {
    fn wants(&self, kind: TableKind) -> bool {
        if self.types.is_empty() {
            return kind != TableKind::SystemTable;
        }
        self.types
            .iter()
            .any(|name| TableKind::from_name(name) == Some(kind))
    }
}

/// One row of a table listing.
#[derive(Debug, Clone)]
pub struct ListedTable {
    /// The catalog's name.
    pub catalog: String,
    /// The namespace, its levels joined with `.`.
    pub namespace: String,
    /// The table's name (`orders$snapshots` for a metadata table).
    pub name: String,
    /// Its kind.
    pub kind: TableKind,
    /// Its schema, when the filter asked for schemas.
    pub schema: Option<SchemaRef>,
}

fn unavailable(catalog: &FloeCatalog, action: String, source: iceberg::Error) -> FloeError {
    FloeError::CatalogUnavailable {
        catalog: catalog.name.clone(),
        action,
        source,
    }
}

impl FloeSession {
    /// The configured catalogs' names, sorted.
    pub fn list_catalogs(&self) -> Vec<String> {
        self.catalogs.keys().cloned().collect()
    }

    /// `(catalog, namespace)` for the top-level namespaces of `catalog` (or of every catalog)
    /// whose name matches `pattern`, sorted.
    pub async fn list_namespaces(
        &self,
        catalog: Option<&str>,
        pattern: Option<&NamePattern>,
    ) -> Result<Vec<(String, String)>> {
        let mut listed = Vec::new();
        for floe_catalog in self.selected_catalogs(catalog) {
            for namespace in self.namespaces_of(floe_catalog).await? {
                if matches_optional(pattern, &namespace) {
                    listed.push((floe_catalog.name.clone(), namespace));
                }
            }
        }
        listed.sort();
        Ok(listed)
    }

    /// The tables `filter` selects, sorted by catalog, namespace and name.
    pub async fn list_tables(&self, filter: &TableFilter) -> Result<Vec<ListedTable>> {
        let mut namespaces = Vec::new();
        for floe_catalog in self.selected_catalogs(filter.catalog.as_deref()) {
            for namespace in self.namespaces_of(floe_catalog).await? {
                if matches_optional(filter.namespace.as_ref(), &namespace) {
                    namespaces.push((Arc::clone(floe_catalog), namespace));
                }
            }
        }
        let per_namespace: Vec<Vec<ListedTable>> = futures::stream::iter(namespaces)
            .map(|(catalog, namespace)| async move {
                self.tables_of(&catalog, namespace, filter).await
            })
            .buffered(LISTING_CALLS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut listed: Vec<ListedTable> = per_namespace.into_iter().flatten().collect();
        listed.sort_by(|a, b| {
            (&a.catalog, &a.namespace, &a.name).cmp(&(&b.catalog, &b.namespace, &b.name))
        });
        Ok(listed)
    }

    fn selected_catalogs<'a>(
        &'a self,
        catalog: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<FloeCatalog>> + 'a {
        self.catalogs
            .iter()
            .filter(move |(name, _)| catalog.is_none_or(|wanted| wanted == name.as_str()))
            .map(|(_, catalog)| catalog)
    }

    async fn namespaces_of(&self, catalog: &FloeCatalog) -> Result<Vec<String>> {
        let namespaces = catalog
            .iceberg
            .list_namespaces(None)
            .await
            .map_err(|e| unavailable(catalog, "list its namespaces".into(), e))?;
        Ok(namespaces.iter().map(|ns| ns.join(".")).collect())
    }

    /// The tables of one namespace that `filter` selects: the catalog's, then this session's
    /// own (external tables, views).
    async fn tables_of(
        &self,
        catalog: &FloeCatalog,
        namespace: String,
        filter: &TableFilter,
    ) -> Result<Vec<ListedTable>> {
        let ident = NamespaceIdent::from_strs(namespace.split('.'))?;
        let names = catalog.iceberg.list_tables(&ident).await.map_err(|e| {
            unavailable(
                catalog,
                format!("list the tables of namespace `{namespace}`"),
                e,
            )
        })?;
        let wants_tables = filter.wants(TableKind::Table);
        let wants_metadata = filter.wants(TableKind::SystemTable);
        let mut iceberg_tables = Vec::new();
        for table in names {
            let listed = |name: &str| matches_optional(filter.table.as_ref(), name);
            let table_listed = wants_tables && listed(&table.name);
            let metadata_listed: Vec<String> = METADATA_TABLE_NAMES
                .iter()
                .map(|kind| format!("{}${kind}", table.name))
                .filter(|name| wants_metadata && listed(name))
                .collect();
            if table_listed || !metadata_listed.is_empty() {
                iceberg_tables.push((table, table_listed, metadata_listed));
            }
        }
        let row = |name: String, kind, schema| ListedTable {
            catalog: catalog.name.clone(),
            namespace: namespace.clone(),
            name,
            kind,
            schema,
        };
        let mut rows = Vec::new();
        if filter.with_schema {
            let loaded: Vec<_> = futures::stream::iter(iceberg_tables)
                .map(|(table, table_listed, metadata_listed)| async move {
                    let schemas = self.schemas_of(catalog, &table, &metadata_listed).await?;
                    Ok::<_, FloeError>((table, table_listed, metadata_listed, schemas))
                })
                .buffered(LISTING_CALLS_IN_FLIGHT)
                .try_collect()
                .await?;
            for (table, table_listed, metadata_listed, (schema, metadata_schemas)) in loaded {
                if table_listed {
                    rows.push(row(table.name, TableKind::Table, Some(schema)));
                }
                for (name, schema) in metadata_listed.into_iter().zip(metadata_schemas) {
                    rows.push(row(name, TableKind::SystemTable, Some(schema)));
                }
            }
        } else {
            for (table, table_listed, metadata_listed) in iceberg_tables {
                if table_listed {
                    rows.push(row(table.name, TableKind::Table, None));
                }
                for name in metadata_listed {
                    rows.push(row(name, TableKind::SystemTable, None));
                }
            }
        }
        for (name, provider) in self.session_tables_in(&catalog.name, &namespace) {
            let kind = TableKind::of_provider(provider.as_ref());
            if filter.wants(kind) && matches_optional(filter.table.as_ref(), &name) {
                let schema = filter.with_schema.then(|| provider.schema());
                rows.push(row(name, kind, schema));
            }
        }
        Ok(rows)
    }

    /// The schema of `table` and of each named metadata table of it, from one load.
    async fn schemas_of(
        &self,
        catalog: &FloeCatalog,
        table: &TableIdent,
        metadata_tables: &[String],
    ) -> Result<(SchemaRef, Vec<SchemaRef>)> {
        let loaded = catalog.iceberg.load_table(table).await.map_err(|e| {
            unavailable(
                catalog,
                format!("load table `{}` for its schema", table.name),
                e,
            )
        })?;
        let schema = query_schema_of(loaded.metadata().current_schema())?;
        let mut metadata_schemas = Vec::with_capacity(metadata_tables.len());
        for name in metadata_tables {
            let kind = MetadataTable::split(name)
                .map(|(_, kind)| kind)
                .ok_or_else(|| FloeError::plan(format!("`{name}` is not a metadata table")))?;
            metadata_schemas.push(kind.provider(&loaded).await?.schema());
        }
        Ok((schema, metadata_schemas))
    }

    fn session_tables_in(
        &self,
        catalog: &str,
        namespace: &str,
    ) -> Vec<(String, Arc<dyn TableProvider>)> {
        self.providers
            .get(catalog)
            .map(|provider| provider.session_tables_in(namespace))
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn views_are_listed_in_their_session_with_their_schema() {
        let dir = tempfile::tempdir().unwrap();
        let config = floe_common::FloeConfig::local_warehouse(dir.path());
        let session = FloeSession::new(&config).await.unwrap();
        session
            .execute("CREATE SCHEMA shop; CREATE TABLE shop.orders (id BIGINT); CREATE VIEW shop.big AS SELECT id FROM shop.orders")
            .await
            .unwrap();
        let filter = TableFilter {
            with_schema: true,
            ..TableFilter::default()
        };
        let listed: Vec<(String, TableKind)> = session
            .list_tables(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (format!("{}.{}.{}", t.catalog, t.namespace, t.name), t.kind))
            .collect();
        assert_eq!(
            listed,
            [
                ("local.shop.big".to_string(), TableKind::View),
                ("local.shop.orders".to_string(), TableKind::Table)
            ]
        );
    }

    #[test]
    fn type_filters_name_kinds_as_jdbc_spells_them() {
        assert_eq!(TableKind::from_name("TABLE"), Some(TableKind::Table));
        assert_eq!(TableKind::from_name("base table"), Some(TableKind::Table));
        assert_eq!(TableKind::from_name("view"), Some(TableKind::View));
        assert_eq!(
            TableKind::from_name("SYSTEM TABLE"),
            Some(TableKind::SystemTable)
        );
        assert_eq!(TableKind::from_name("SYNONYM"), None);
    }

    #[test]
    fn metadata_tables_are_listed_only_when_asked_for() {
        let all = TableFilter::default();
        assert!(all.wants(TableKind::Table) && all.wants(TableKind::View));
        assert!(!all.wants(TableKind::SystemTable));
        let system = TableFilter {
            types: vec!["SYSTEM TABLE".into()],
            ..TableFilter::default()
        };
        assert!(system.wants(TableKind::SystemTable) && !system.wants(TableKind::Table));
        let unknown = TableFilter {
            types: vec!["SYNONYM".into()],
            ..TableFilter::default()
        };
        assert!(TableKind::ALL.iter().all(|kind| !unknown.wants(*kind)));
    }
}
