//! `SchedulerError`: everything the scheduler can fail with, and its gRPC status code.

use datafusion::error::DataFusionError;
use floe_core::FloeError;
use floe_proto::status::{CodedError, status_code};

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Planning, catalog or SQL errors from the session.
    #[error(transparent)]
    Floe(#[from] FloeError),
    /// DataFusion errors outside a session statement (plan encoding).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A query or job id the scheduler does not know.
    #[error("unknown {kind} `{id}`")]
    Unknown {
        /// `query`, `job` or `executor`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A job cannot go on: an executor holding its data is gone.
    #[error("{0}")]
    JobFailed(String),
    /// The scheduler is at a limit (active jobs); the client may try again later.
    #[error("{0}")]
    Busy(String),
    /// No executor is registered to run tasks.
    #[error("no executors are registered with the scheduler")]
    NoExecutors,
    /// A request that cannot be served.
    #[error("{0}")]
    InvalidRequest(String),
    /// A ticket or handle used outside the session that made it.
    #[error("{0}")]
    PermissionDenied(String),
    /// Networking (binding the service).
    #[error("transport: {0}")]
    Transport(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of scheduler operations.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

impl SchedulerError {
    /// The gRPC status code of this error's root cause ([`floe_proto::status`] has the table).
    pub fn code(&self) -> tonic::Code {
        match self {
            SchedulerError::Floe(e) => status_code(e),
            SchedulerError::DataFusion(e) => status_code(e),
            SchedulerError::Unknown { .. } => tonic::Code::NotFound,
            SchedulerError::Internal(_) => tonic::Code::Internal,
            SchedulerError::JobFailed(_)
            | SchedulerError::Busy(_)
            | SchedulerError::NoExecutors
            | SchedulerError::Transport(_) => tonic::Code::Unavailable,
            SchedulerError::InvalidRequest(_) => tonic::Code::InvalidArgument,
            SchedulerError::PermissionDenied(_) => tonic::Code::PermissionDenied,
        }
    }
}

/// The scheduler's service edge: every error leaves as the status of its root cause.
impl From<SchedulerError> for tonic::Status {
    fn from(err: SchedulerError) -> Self {
        tonic::Status::new(err.code(), err.to_string())
    }
}

/// Into DataFusion's APIs (a job's result stream) without losing the status code.
impl From<SchedulerError> for DataFusionError {
    fn from(err: SchedulerError) -> Self {
        match err {
            SchedulerError::DataFusion(e) => e,
            SchedulerError::Floe(e) => e.into(),
            other => CodedError::new(other.code(), other.to_string()).into_datafusion(),
        }
    }
}
