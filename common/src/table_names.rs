//! What a table name that Floe's SQL rewrites produce carries besides the table: a time-travel
//! version or a metadata table.
//!
//! The SQL front end (`floe-sql`) folds `FROM orders FOR VERSION AS OF 123` into one table name
//! before DataFusion plans it, and recognizes `orders$snapshots` / `orders.snapshots`; the Iceberg
//! schema provider (`floe-iceberg`) takes the name apart again when DataFusion asks for the
//! table. The encoding lives here, below both, so that neither crate depends on the other.

/// The version a time-travel clause asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum TableVersion {
    /// A snapshot id.
    Snapshot(i64),
    /// A branch or tag name.
    Ref(String),
    /// The text of a point in time.
    Timestamp(String),
}

const VERSION_SEPARATOR: &str = " FOR VERSION AS OF ";
const TIMESTAMP_SEPARATOR: &str = " FOR TIMESTAMP AS OF ";

impl TableVersion {
    /// The table name carrying this version, as the rewrite writes it.
    pub fn name_with(&self, table: &str) -> String {
        match self {
            Self::Snapshot(id) => format!("{table}{VERSION_SEPARATOR}{id}"),
            Self::Ref(name) => format!("{table}{VERSION_SEPARATOR}'{name}'"),
            Self::Timestamp(text) => format!("{table}{TIMESTAMP_SEPARATOR}'{text}'"),
        }
    }

    /// Splits a table name the rewrite made into the table's own name and the version.
    pub fn split(name: &str) -> Option<(&str, Self)> {
        if let Some((table, version)) = name.split_once(VERSION_SEPARATOR) {
            let version = match version
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
            {
                Some(reference) => Self::Ref(reference.to_string()),
                None => Self::Snapshot(version.parse().ok()?),
            };
            return Some((table, version));
        }
        let (table, text) = name.split_once(TIMESTAMP_SEPARATOR)?;
        let text = text.strip_prefix('\'')?.strip_suffix('\'')?;
        Some((table, Self::Timestamp(text.to_string())))
    }
}

/// The metadata table names, as they follow `$` or the last `.`.
pub const METADATA_TABLE_NAMES: &[&str] = &[
    "snapshots",
    "history",
    "refs",
    "manifests",
    "files",
    "data_files",
    "delete_files",
    "entries",
    "partitions",
];
