//! Where an error becomes a gRPC status: one mapping, by root cause, for every service edge
//! (the scheduler's Flight SQL front door, the executor's shuffle Flight service, a task's
//! failure report).
//!
//! Errors reach a service edge wrapped: a `FloeError` inside a `DataFusionError::External`
//! inside an `ArrowError::ExternalError` inside a Flight stream error. [`status_code`] walks that
//! chain to the first error that says what kind of failure it is, so a client can tell its own
//! mistake (`InvalidArgument`, `NotFound`, `Unimplemented`) from a fault of the cluster
//! (`Unavailable`, `Internal`), whatever path the error took:
//!
//! | root cause | code |
//! |---|---|
//! | SQL syntax, planning, a bad setting, a failed cast or arithmetic on the query's data | `InvalidArgument` |
//! | unknown catalog, namespace, table or column | `NotFound` |
//! | a name that already exists | `AlreadyExists` |
//! | a feature Floe does not implement | `Unimplemented` |
//! | a cancelled query | `Cancelled` |
//! | a limit (memory, message size) | `ResourceExhausted` |
//! | a lost executor, a failed shuffle fetch, a catalog that does not answer a listing | `Unavailable` |
//! | anything else | `Internal` |
//!
//! Where Floe itself knows the class of a failure that has no typed error of its own (a task
//! report carrying an executor's code, a shuffle fetch), it says so with [`CodedError`].

use std::error::Error;
use std::sync::Arc;

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tonic::Code;

use floe_common::error::FloeError;

/// A message whose status code is already known: a failure reported by another process with
/// its code, or one Floe classifies where it happens (a shuffle fetch is `Unavailable`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    /// The status code clients see.
    pub code: Code,
    /// The message, naming what failed.
    pub message: String,
}

impl CodedError {
    /// An error with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A peer could not be reached or no longer has what was asked of it.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    /// Wrapped for DataFusion's APIs.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

/// Whether a failed call says nothing about the request, only that the peer could not be
/// reached or the connection broke: the peer is suspect and the same request may be sent again.
/// Any other status is the peer answering: refusing the request itself (invalid, too large to
/// decode, not acceptable now), which sending it again cannot change. The scheduler evicts an
/// executor on a launch that fails this way; an executor retries a task report only this way.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => true,
        // tonic reports HTTP/2 stream and connection errors as `Internal` with this prefix; a
        // decode error is `Internal` too, and is an answer.
        Code::Internal => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

/// The status of `err` (its message, and the code of its root cause).
pub fn to_status(err: &(dyn Error + 'static)) -> tonic::Status {
    tonic::Status::new(status_code(err), err.to_string())
}

/// The status code of `err`'s root cause; see the module docs.
pub fn status_code(err: &(dyn Error + 'static)) -> Code {
    if let Some(coded) = err.downcast_ref::<CodedError>() {
        return coded.code;
    }
    if let Some(status) = err.downcast_ref::<tonic::Status>() {
        return status.code();
    }
    if let Some(floe) = err.downcast_ref::<FloeError>() {
        return floe_code(floe);
    }
    if let Some(df) = err.downcast_ref::<DataFusionError>() {
        return datafusion_code(df);
    }
    if let Some(arrow) = err.downcast_ref::<ArrowError>() {
        return arrow_code(arrow);
    }
    if let Some(iceberg) = err.downcast_ref::<iceberg::Error>() {
        return iceberg_code(iceberg);
    }
    if let Some(flight) = err.downcast_ref::<arrow_flight::error::FlightError>() {
        return match flight {
            arrow_flight::error::FlightError::Tonic(status) => status.code(),
            arrow_flight::error::FlightError::ExternalError(inner) => status_code(inner.as_ref()),
            arrow_flight::error::FlightError::Arrow(arrow) => arrow_code(arrow),
            _ => Code::Internal,
        };
    }
    match err.source() {
        Some(source) => status_code(source),
        None => Code::Internal,
    }
}

fn floe_code(err: &FloeError) -> Code {
    match err {
        FloeError::NotFound { .. } => Code::NotFound,
        FloeError::AlreadyExists { .. } => Code::AlreadyExists,
        FloeError::Plan(_) | FloeError::Config { .. } => Code::InvalidArgument,
        FloeError::NotSupported(_) => Code::Unimplemented,
        FloeError::Iceberg(e) => iceberg_code(e),
        // A namespace dropped while it was listed is still NotFound; any other failure of a
        // catalog to answer is the catalog's, not the request's.
        FloeError::CatalogUnavailable { source, .. } => match iceberg_code(source) {
            Code::Internal => Code::Unavailable,
            code => code,
        },
        FloeError::DataFusion(e) => datafusion_code(e),
        FloeError::Io { .. } => Code::Internal,
    }
}

fn datafusion_code(err: &DataFusionError) -> Code {
    match err {
        DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::Configuration(_) => {
            Code::InvalidArgument
        }
        DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => Code::NotFound,
            _ => Code::InvalidArgument,
        },
        DataFusionError::NotImplemented(_) => Code::Unimplemented,
        DataFusionError::ResourcesExhausted(_) => Code::ResourceExhausted,
        DataFusionError::ArrowError(arrow, _) => arrow_code(arrow),
        DataFusionError::External(inner) => status_code(inner.as_ref()),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_code(inner)
        }
        DataFusionError::Shared(inner) => datafusion_code(Arc::as_ref(inner)),
        DataFusionError::Collection(errors) => {
            errors.first().map_or(Code::Internal, datafusion_code)
        }
        _ => Code::Internal,
    }
}

fn arrow_code(err: &ArrowError) -> Code {
    match err {
        ArrowError::ExternalError(inner) => status_code(inner.as_ref()),
        // The query's data made the expression fail: the user's statement, not the engine.
        ArrowError::CastError(_)
        | ArrowError::ParseError(_)
        | ArrowError::DivideByZero
        | ArrowError::ArithmeticOverflow(_)
        | ArrowError::InvalidArgumentError(_) => Code::InvalidArgument,
        ArrowError::NotYetImplemented(_) => Code::Unimplemented,
        ArrowError::MemoryError(_) => Code::ResourceExhausted,
        _ => Code::Internal,
    }
}

fn iceberg_code(err: &iceberg::Error) -> Code {
    match err.kind() {
        iceberg::ErrorKind::TableNotFound | iceberg::ErrorKind::NamespaceNotFound => Code::NotFound,
        iceberg::ErrorKind::TableAlreadyExists | iceberg::ErrorKind::NamespaceAlreadyExists => {
            Code::AlreadyExists
        }
        iceberg::ErrorKind::FeatureUnsupported => Code::Unimplemented,
        iceberg::ErrorKind::CatalogCommitConflicts => Code::Aborted,
        _ => Code::Internal,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn code_of(err: DataFusionError) -> Code {
        status_code(&err)
    }

    #[test]
    fn nested_errors_map_by_root_cause() {
        let not_supported =
            DataFusionError::External(Box::new(FloeError::NotSupported("deletes".into())));
        assert_eq!(code_of(not_supported), Code::Unimplemented);
        let through_arrow = DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(FloeError::NotFound {
                kind: "table",
                name: "local.db.t".into(),
            }))),
            None,
        );
        assert_eq!(code_of(through_arrow), Code::NotFound);
        let shared = DataFusionError::Shared(Arc::new(DataFusionError::Context(
            "reading".into(),
            Box::new(CodedError::unavailable("executor e1 lost").into_datafusion()),
        )));
        assert_eq!(code_of(shared), Code::Unavailable);
        assert_eq!(
            code_of(DataFusionError::ArrowError(
                Box::new(ArrowError::DivideByZero),
                None
            )),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(DataFusionError::ResourcesExhausted("memory".into())),
            Code::ResourceExhausted
        );
        assert_eq!(
            code_of(DataFusionError::Execution("boom".into())),
            Code::Internal
        );
        let message = to_status(&FloeError::plan("bad")).message().to_string();
        assert_eq!(message, "bad");
    }
}
