//! The one error type of Floe's library crates.
//!
//! Every failure a user can cause (bad SQL, a missing table, a corrupt config file, a deleted data
//! file) must reach them as a message that names the thing that is wrong. Library code converts
//! foreign errors at the boundary into [`FloeError`]; the shell prints them, and later the gRPC
//! services map them to status codes.

use datafusion::error::DataFusionError;

/// Result alias used throughout Floe's library crates.
pub type Result<T, E = FloeError> = std::result::Result<T, E>;

/// Errors raised by Floe's configuration, catalogs, planner and storage layers.
#[derive(Debug, thiserror::Error)]
pub enum FloeError {
    /// `floe.toml` could not be read or has an invalid entry; the message names the key.
    #[error("configuration error in {path}: {message}")]
    Config {
        /// The file that was being read.
        path: String,
        /// What is wrong, starting with the offending key.
        message: String,
    },

    /// A catalog, namespace or table that the statement names does not exist.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// `catalog`, `namespace` or `table`.
        kind: &'static str,
        /// The fully qualified name as the user wrote it (resolved against `USE`).
        name: String,
    },

    /// A catalog, namespace or table that a statement would create already exists.
    #[error("{kind} already exists: {name}")]
    AlreadyExists {
        /// `namespace` or `table`.
        kind: &'static str,
        /// The fully qualified name.
        name: String,
    },

    /// The statement is valid SQL but Floe cannot run it as written.
    #[error("{0}")]
    Plan(String),

    /// The statement uses a feature Floe does not implement yet.
    #[error("not supported: {0}")]
    NotSupported(String),

    /// An error from the Iceberg library (catalog access, metadata, commits).
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),

    /// A catalog did not answer a listing (a metadata RPC, `SHOW`): names the catalog and what
    /// was asked, so a browser shows the failure instead of an empty list.
    #[error("catalog `{catalog}` could not {action}: {source}")]
    CatalogUnavailable {
        /// The configured catalog's name.
        catalog: String,
        /// What Floe asked it, e.g. `list the tables of namespace sales`.
        action: String,
        /// The catalog's error.
        source: iceberg::Error,
    },

    /// An error from DataFusion (SQL parsing, planning, execution, Parquet and object storage).
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),

    /// Local file-system access outside the query engine (warehouse directories, config files).
    #[error("{context}: {source}")]
    Io {
        /// What Floe was doing, naming the path.
        context: String,
        /// The operating-system error.
        source: std::io::Error,
    },
}

impl From<arrow::error::ArrowError> for FloeError {
    fn from(err: arrow::error::ArrowError) -> Self {
        Self::DataFusion(DataFusionError::from(err))
    }
}

impl FloeError {
    /// Shorthand for [`FloeError::Plan`].
    pub fn plan(message: impl Into<String>) -> Self {
        Self::Plan(message.into())
    }
}

/// Carries a [`FloeError`] through DataFusion's APIs (table providers, sinks) without losing it.
impl From<FloeError> for DataFusionError {
    fn from(err: FloeError) -> Self {
        match err {
            FloeError::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// Converts an Iceberg error met inside a DataFusion callback.
pub fn iceberg_to_df(err: iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(FloeError::Iceberg(err)))
}
