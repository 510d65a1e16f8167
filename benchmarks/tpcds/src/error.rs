//! The harness's one error type.

use crate::answers::AnswerError;

/// Errors of generating data and running queries.
#[derive(Debug, thiserror::Error)]
pub enum TpcdsError {
    /// Floe refused a statement (creating tables, a query).
    #[error(transparent)]
    Floe(#[from] floe_core::FloeError),
    /// DataFusion failed writing generated rows.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed formatting a value.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// Reading or comparing reference answers.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// The data generator refused its settings.
    #[error("tpcdsgen: {0}")]
    Generator(String),
    /// A name that is not one of the 24 TPC-DS tables.
    #[error("`{0}` is not a TPC-DS table")]
    UnknownTable(String),
    /// A name that is not one of the 99 queries.
    #[error("`{0}` is not a TPC-DS query (q01..q99)")]
    UnknownQuery(String),
    /// A generated line that does not fit the table's columns.
    #[error("generated {table} row does not fit its columns: {message}: {line}")]
    GeneratedRow {
        /// The table.
        table: String,
        /// What does not fit.
        message: String,
        /// The generated line.
        line: String,
    },
    /// Connecting to or talking with a cluster.
    #[error("{0}")]
    Cluster(String),
    /// Reading or writing a file (answers, results CSV).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Result of harness operations.
pub type Result<T, E = TpcdsError> = std::result::Result<T, E>;
