//! `SchedulerError`: everything the scheduler can fail with, and its gRPC status code.

use datafusion::error::DataFusionError;
use floe_core::FloeError;

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
    /// The job failed on an executor (or lost one).
    #[error("{0}")]
    JobFailed(String),
    /// No executor is registered to run tasks.
    #[error("no executors are registered with the scheduler")]
    NoExecutors,
    /// A request that cannot be served.
    #[error("{0}")]
    InvalidRequest(String),
    /// Networking (binding the service).
    #[error("transport: {0}")]
    Transport(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of scheduler operations.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

impl From<SchedulerError> for tonic::Status {
    fn from(err: SchedulerError) -> Self {
        let message = err.to_string();
        match err {
            SchedulerError::Floe(FloeError::NotFound { .. }) | SchedulerError::Unknown { .. } => {
                tonic::Status::not_found(message)
            }
            SchedulerError::Floe(FloeError::AlreadyExists { .. }) => {
                tonic::Status::already_exists(message)
            }
            SchedulerError::Floe(FloeError::NotSupported(_)) => {
                tonic::Status::unimplemented(message)
            }
            SchedulerError::Floe(FloeError::Plan(_) | FloeError::Config { .. })
            | SchedulerError::InvalidRequest(_) => tonic::Status::invalid_argument(message),
            SchedulerError::Floe(FloeError::DataFusion(DataFusionError::SQL(..)))
            | SchedulerError::Floe(FloeError::DataFusion(DataFusionError::Plan(_))) => {
                tonic::Status::invalid_argument(message)
            }
            SchedulerError::NoExecutors => tonic::Status::unavailable(message),
            SchedulerError::JobFailed(_)
            | SchedulerError::Floe(_)
            | SchedulerError::DataFusion(_)
            | SchedulerError::Transport(_) => tonic::Status::internal(message),
            SchedulerError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

impl From<SchedulerError> for DataFusionError {
    fn from(err: SchedulerError) -> Self {
        match err {
            SchedulerError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
