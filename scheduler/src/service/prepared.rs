//! Flight SQL prepared statements and updates.
//!
//! `CreatePreparedStatement` plans the statement in the caller's session (nothing runs) and
//! answers its result and parameter schemas; `DoPut` on `CommandPreparedStatementQuery` binds
//! parameter rows; `GetFlightInfo` on it starts the statement (once per bound row, results in
//! order) like any statement; `DoPut` on `CommandPreparedStatementUpdate` or
//! `CommandStatementUpdate` runs it to completion and answers the row count. A handle is
//! usable only in the session that made it, under the same rule as tickets (`sessions.rs`).
//! Handles are dropped on `ClosePreparedStatement`, when their session ends, or after
//! [`PREPARED_IDLE_TIMEOUT`] unused; at most [`MAX_PREPARED_STATEMENTS`] are kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema, UInt64Type};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::{IpcMessage, SchemaAsIpc};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use tonic::Status;

use floe_core::FloeSession;
use floe_core::session::prepared::PreparedStatement;
use floe_proto::status::to_status;

use super::SchedulerService;
use super::sessions::SessionKey;
use crate::error::SchedulerError;

/// Prepared statements kept for the whole server; the least recently used goes beyond this.
pub const MAX_PREPARED_STATEMENTS: usize = 4096;

/// A prepared statement unused for this long is dropped.
pub const PREPARED_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Parameter rows one `DoPut` may bind (each row is one run of the statement).
pub const MAX_BOUND_PARAMETER_ROWS: usize = 10_000;

pub(super) struct PreparedEntry {
    session: Arc<FloeSession>,
    /// The session id the handle belongs to, when the client presented one.
    owner: Option<String>,
    /// The session id it was made in (assigned or presented), to drop it with that session.
    session_id: Option<String>,
    statement: PreparedStatement,
    /// Bound parameter rows; none bound is one run without parameters.
    parameters: Vec<Vec<ScalarValue>>,
    last_used: Instant,
}

/// A schema as Flight SQL carries it in `ActionCreatePreparedStatementResult`.
pub(super) fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes)
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))
}

/// The rows an update changed: the sum of DML's `count` column, 0 for other statements.
async fn drain_count(mut stream: SendableRecordBatchStream) -> Result<i64, Status> {
    let mut count: u64 = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| to_status(&e))?;
        let schema = batch.schema();
        if let [field] = schema.fields().as_ref()
            && field.name() == "count"
            && field.data_type() == &DataType::UInt64
        {
            let counts = batch.column(0).as_primitive::<UInt64Type>();
            count += counts.iter().flatten().sum::<u64>();
        }
    }
    Ok(i64::try_from(count).unwrap_or(i64::MAX))
}

/// Refuses parameter rows that do not bind every parameter of `statement` exactly once (with no
/// rows at all for a statement that takes parameters).
pub(super) fn check_arity(
    statement: &PreparedStatement,
    rows: &[Vec<ScalarValue>],
) -> Result<(), Status> {
    let expected = statement.parameter_schema().fields().len();
    let refuse = |got: usize| {
        Err(Status::invalid_argument(format!(
            "the statement takes {expected} parameters, {got} were bound"
        )))
    };
    if rows.is_empty() && expected > 0 {
        return refuse(0);
    }
    match rows.iter().find(|row| row.len() != expected) {
        Some(row) => refuse(row.len()),
        None => Ok(()),
    }
}

/// The parameter rows a `DoPut` carries (none for a `DoPut` without batches).
async fn read_parameter_rows(
    data: impl futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static,
) -> Result<Vec<Vec<ScalarValue>>, Status> {
    let mut stream = FlightRecordBatchStream::new_from_flight_data(data.map_err(FlightError::from));
    let (mut batches, mut rows) = (Vec::new(), 0);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::invalid_argument(format!("cannot read parameters: {other}")),
        })?;
        rows += batch.num_rows();
        // Refused as soon as it is too many, not after holding them all.
        if rows > MAX_BOUND_PARAMETER_ROWS {
            return Err(too_many_rows(rows));
        }
        batches.push(batch);
    }
    parameter_rows(&batches)
}

fn too_many_rows(rows: usize) -> Status {
    Status::invalid_argument(format!(
        "{rows} or more parameter rows bound at once; at most {MAX_BOUND_PARAMETER_ROWS}"
    ))
}

/// Every row of `batches` as one list of values.
fn parameter_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<ScalarValue>>, Status> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| ScalarValue::try_from_array(column.as_ref(), row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::invalid_argument(format!("cannot read parameters: {e}")))?;
            rows.push(values);
        }
    }
    if rows.len() > MAX_BOUND_PARAMETER_ROWS {
        return Err(too_many_rows(rows.len()));
    }
    Ok(rows)
}

impl SchedulerService {
    /// Prepares `sql` in the caller's session; returns the handle and the statement.
    pub(super) async fn create_prepared(
        &self,
        session: Arc<FloeSession>,
        key: Option<SessionKey>,
        sql: &str,
    ) -> Result<(String, PreparedStatement), SchedulerError> {
        // Kept for runs later: each plans afresh.
        let statement = session.prepare(sql).await?.without_plan();
        let handle = uuid::Uuid::new_v4().simple().to_string();
        let mut prepared = self
            .prepared
            .lock()
            .map_err(|_| SchedulerError::Internal("prepared statements poisoned".into()))?;
        if prepared.len() >= MAX_PREPARED_STATEMENTS
            && let Some(oldest) = prepared
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(handle, _)| handle.clone())
        {
            prepared.remove(&oldest);
        }
        prepared.insert(
            handle.clone(),
            PreparedEntry {
                session,
                owner: key.as_ref().and_then(SessionKey::owner),
                session_id: key.map(|key| key.id),
                statement: statement.clone(),
                parameters: Vec::new(),
                last_used: Instant::now(),
            },
        );
        Ok((handle, statement))
    }

    /// Runs `f` on the entry of `handle`, if the caller may use it.
    fn with_prepared<R>(
        &self,
        handle: &[u8],
        caller: Option<&SessionKey>,
        f: impl FnOnce(&mut PreparedEntry) -> R,
    ) -> Result<R, Status> {
        let handle = String::from_utf8(handle.to_vec())
            .map_err(|_| Status::invalid_argument("invalid prepared statement handle"))?;
        let mut prepared = self
            .prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements poisoned"))?;
        let entry = prepared.get_mut(&handle).ok_or_else(|| {
            Status::not_found(format!(
                "prepared statement `{handle}` does not exist (closed, expired or never made)"
            ))
        })?;
        if let Some(owner) = &entry.owner
            && caller.map(|key| &key.id) != Some(owner)
        {
            return Err(Status::permission_denied(format!(
                "prepared statement `{handle}` belongs to another session"
            )));
        }
        entry.last_used = Instant::now();
        let session_id = entry.session_id.clone();
        let result = f(entry);
        drop(prepared);
        // A session whose prepared statement is in use is in use (no lock is held across both).
        if let Some(id) = session_id {
            self.touch_session(&id);
        }
        Ok(result)
    }

    /// Binds the parameter rows of a `DoPut` to `handle`.
    pub(super) async fn bind_parameters(
        &self,
        handle: &[u8],
        caller: Option<&SessionKey>,
        data: impl futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static,
    ) -> Result<(), Status> {
        // Refuse a foreign handle before reading what was sent with it.
        let statement = self.with_prepared(handle, caller, |entry| entry.statement.clone())?;
        let rows = read_parameter_rows(data).await?;
        check_arity(&statement, &rows)?;
        self.with_prepared(handle, caller, |entry| entry.parameters = rows)
    }

    /// The session, statement and bound rows of `handle`.
    pub(super) fn prepared_run(
        &self,
        handle: &[u8],
        caller: Option<&SessionKey>,
    ) -> Result<(Arc<FloeSession>, PreparedStatement, Vec<Vec<ScalarValue>>), Status> {
        self.with_prepared(handle, caller, |entry| {
            (
                Arc::clone(&entry.session),
                entry.statement.clone(),
                entry.parameters.clone(),
            )
        })
    }

    /// Runs `handle` as an update, once per parameter row: the rows sent with this `DoPut`
    /// (how Flight SQL binds an update's parameters), else those bound before. Answers the rows
    /// changed.
    pub(super) async fn run_prepared_update(
        &self,
        handle: &[u8],
        caller: Option<&SessionKey>,
        data: impl futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static,
    ) -> Result<i64, Status> {
        let (session, statement, bound) = self.prepared_run(handle, caller)?;
        let sent = read_parameter_rows(data).await?;
        let rows = if sent.is_empty() { bound } else { sent };
        check_arity(&statement, &rows)?;
        let runs = if rows.is_empty() { vec![Vec::new()] } else { rows };
        let mut count: i64 = 0;
        for parameters in runs {
            let stream = session
                .execute_prepared(&statement, parameters)
                .await
                .map_err(|e| to_status(&e))?;
            count = count.saturating_add(drain_count(stream).await?);
        }
        Ok(count)
    }

    /// `CommandStatementUpdate`: runs `sql` to completion; the rows changed.
    pub(super) async fn run_update(
        &self,
        session: Arc<FloeSession>,
        sql: &str,
    ) -> Result<i64, Status> {
        let stream = session
            .execute_statement_stream(sql)
            .await
            .map_err(|e| to_status(&e))?;
        drain_count(stream).await
    }

    /// Drops `handle`, if the caller may use it.
    pub(super) fn close_prepared(
        &self,
        handle: &[u8],
        caller: Option<&SessionKey>,
    ) -> Result<(), Status> {
        self.with_prepared(handle, caller, |_| ())?;
        let handle = String::from_utf8_lossy(handle).to_string();
        if let Ok(mut prepared) = self.prepared.lock() {
            prepared.remove(&handle);
        }
        Ok(())
    }

    /// Drops the prepared statements of session `session_id`.
    pub(super) fn close_prepared_of_session(&self, session_id: &str) {
        if let Ok(mut prepared) = self.prepared.lock() {
            prepared.retain(|_, entry| entry.session_id.as_deref() != Some(session_id));
        }
    }

    /// Drops prepared statements unused for [`PREPARED_IDLE_TIMEOUT`].
    pub fn expire_prepared(&self) {
        if let Ok(mut prepared) = self.prepared.lock() {
            prepared.retain(|_, entry| entry.last_used.elapsed() <= PREPARED_IDLE_TIMEOUT);
        }
    }
}

/// The results of `statement` run once per parameter row (once without parameters when none
/// are bound), one after another as one stream.
pub(super) async fn run_for_each_row(
    session: Arc<FloeSession>,
    statement: PreparedStatement,
    rows: Vec<Vec<ScalarValue>>,
) -> floe_core::Result<SendableRecordBatchStream> {
    let mut runs = if rows.is_empty() { vec![Vec::new()] } else { rows }.into_iter();
    let first = runs.next().unwrap_or_default();
    let first = session.execute_prepared(&statement, first).await?;
    let schema = first.schema();
    if runs.len() == 0 {
        return Ok(first);
    }
    let rest = futures::stream::iter(runs)
        .then(move |parameters| {
            let session = Arc::clone(&session);
            let statement = statement.clone();
            async move {
                session
                    .execute_prepared(&statement, parameters)
                    .await
                    .map_err(datafusion::error::DataFusionError::from)
            }
        })
        .try_flatten();
    let all = first.chain(rest);
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, all),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;

    #[test]
    fn each_parameter_row_is_one_run() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, true),
            Field::new("$2", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let rows = parameter_rows(&[batch]).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![ScalarValue::Int64(Some(1)), ScalarValue::Utf8(Some("a".into()))],
                vec![ScalarValue::Int64(None), ScalarValue::Utf8(Some("b".into()))],
            ]
        );
    }
}
