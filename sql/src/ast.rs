//! The statements Floe runs, as parsed: sqlparser AST nodes inside, names not yet resolved.
//!
//! One variant per statement Floe handles itself, plus [`FloeStatement::DataFusion`] for
//! everything DataFusion plans. A new statement of Floe's (time travel, `GRANT`,
//! `ALTER TABLE ... PARTITION FIELD`, `MERGE`, `CALL`) is a variant here, a branch in
//! [`super::parser::FloeParser::parse_statement`] (its own syntax, or sqlparser's statement
//! converted), and a handler in the session's dispatcher.

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ColumnDef, Expr, Ident, ObjectName, Query, TableConstraint};

/// One parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum FloeStatement {
    /// Planned and run by DataFusion: queries, `INSERT`, `EXPLAIN`, `DESCRIBE`, `SET`, `COPY`,
    /// `CREATE EXTERNAL TABLE`, views, ...
    DataFusion(Box<DFStatement>),
    /// `USE catalog | namespace | catalog.namespace`.
    Use(ObjectName),
    /// `SHOW CATALOGS`.
    ShowCatalogs,
    /// `SHOW SCHEMAS | DATABASES | NAMESPACES [FROM | IN catalog]`.
    ShowSchemas {
        /// The catalog named, if any.
        catalog: Option<ObjectName>,
    },
    /// `SHOW TABLES [FROM | IN namespace]`.
    ShowTables {
        /// The namespace named, if any (`ns` or `catalog.ns`).
        namespace: Option<ObjectName>,
    },
    /// `SHOW CREATE TABLE table`.
    ShowCreateTable {
        /// The table.
        table: ObjectName,
    },
    /// `CREATE SCHEMA | DATABASE | NAMESPACE [IF NOT EXISTS] name`.
    CreateSchema {
        /// `ns` or `catalog.ns`.
        name: ObjectName,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `DROP SCHEMA | DATABASE | NAMESPACE [IF EXISTS] name [CASCADE | RESTRICT]`.
    DropSchema {
        /// `ns` or `catalog.ns`.
        name: ObjectName,
        /// `IF EXISTS` was given.
        if_exists: bool,
        /// `CASCADE` was given (drop the namespace's tables too).
        cascade: bool,
    },
    /// `CREATE TABLE` on an Iceberg catalog, with or without `AS query`.
    CreateTable(Box<CreateTable>),
    /// `DROP TABLE [IF EXISTS] table [PURGE]`.
    DropTable {
        /// The table.
        name: ObjectName,
        /// `IF EXISTS` was given.
        if_exists: bool,
        /// `PURGE` was given (delete the table's files too).
        purge: bool,
    },
}

/// `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] name [(columns)] [USING format]
/// [PARTITIONED BY (transforms)] [LOCATION 'path'] [TBLPROPERTIES (...)] [AS query]`, the
/// clauses between the columns and `AS` in any order.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The table name as written.
    pub name: ObjectName,
    /// `OR REPLACE` was given.
    pub or_replace: bool,
    /// `TEMP`/`TEMPORARY` was given.
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Column definitions (none for a plain CTAS).
    pub columns: Vec<ColumnDef>,
    /// Table constraints in the column list (`PRIMARY KEY (a)`).
    pub constraints: Vec<TableConstraint>,
    /// The `USING` format, if given.
    pub using: Option<Ident>,
    /// The `PARTITIONED BY` items: columns and transform calls such as `bucket(16, id)`.
    pub partitioned_by: Vec<Expr>,
    /// The `LOCATION` path, if given.
    pub location: Option<String>,
    /// The `TBLPROPERTIES`, in the order written.
    pub properties: Vec<TableProperty>,
    /// The `AS` query of a CTAS.
    pub query: Option<Box<Query>>,
}

/// One `TBLPROPERTIES` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProperty {
    /// The key (`'write.format.default'` or unquoted `write.format.default`).
    pub key: String,
    /// The value as text (string literals unquoted, numbers and booleans as written).
    pub value: String,
}
