//! Talking to a Floe cluster over Arrow Flight SQL, and starting one inside the shell.
//!
//! The shell always speaks Flight SQL: to `--host`, or to the embedded cluster (a scheduler
//! and `--executors` executors on loopback ports in this process), which runs the same
//! planner, stages and shuffle as a real cluster. A statement is sent as
//! `CommandStatementQuery`; while it runs longer than [`PROGRESS_AFTER`], a progress bar shows
//! its stages and tasks; Ctrl-C, or a caller's deadline passing, sends the Flight
//! `CancelFlightInfo` action.

use std::path::PathBuf;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, CancelFlightInfoRequest, FlightInfo};
use floe_core::{FloeConfig, SUMMARY_METADATA_KEY, StatementOutput};
use floe_executor::{Executor, ExecutorOptions};
use floe_proto::QueryProgress;
use floe_proto::{QUERY_PROGRESS_ACTION, SESSION_HEADER};
use floe_scheduler::Scheduler;
use floe_shuffle::flight::{MAX_GRPC_MESSAGE_BYTES, channel_to};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use tonic::transport::Channel;

/// A statement running longer than this gets a progress bar.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// How often the progress bar asks the scheduler.
pub const PROGRESS_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why a statement did not produce a result.
#[derive(Debug)]
pub enum StatementError {
    /// The server's (or connection's) error message.
    Failed(String),
    /// Ctrl-C.
    Cancelled,
    /// The statement ran longer than the caller's time limit (given here) and was cancelled.
    TimedOut(Duration),
}

/// A scheduler and executors running in this process.
pub struct EmbeddedCluster {
    scheduler: Option<Scheduler>,
    executors: Vec<Executor>,
    work_root: PathBuf,
}

impl EmbeddedCluster {
    /// Starts a scheduler over `config` and `executors` executors, all on loopback.
    pub async fn start(config: &FloeConfig, executors: usize) -> Result<Self, String> {
        let scheduler = Scheduler::start("127.0.0.1:0", config)
            .await
            .map_err(|e| e.to_string())?;
        let scheduler_address = scheduler.address().to_string();
        let work_root = std::env::temp_dir().join(format!("floe-shell-{}", std::process::id()));
        let mut cluster = Self {
            scheduler: Some(scheduler),
            executors: Vec::new(),
            work_root: work_root.clone(),
        };
        for index in 0..executors.max(1) {
            let executor = Executor::start(ExecutorOptions {
                scheduler: scheduler_address.clone(),
                bind: "127.0.0.1:0".to_string(),
                work_dir: work_root.join(format!("executor-{index}")),
                slots: None,
                executor_id: Some(format!("embedded-{index}")),
            })
            .await
            .map_err(|e| e.to_string())?;
            cluster.executors.push(executor);
        }
        Ok(cluster)
    }

    /// The scheduler's address.
    pub fn address(&self) -> String {
        self.scheduler
            .as_ref()
            .map(|s| s.address().to_string())
            .unwrap_or_default()
    }

    /// Stops everything and removes the shuffle work dirs.
    pub async fn shutdown(mut self) {
        for executor in self.executors.drain(..) {
            executor.shutdown().await;
        }
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.work_root);
    }
}

/// A Flight SQL connection with its own session on the scheduler.
pub struct Connection {
    client: FlightSqlServiceClient<Channel>,
    progress_bar: bool,
}

impl Connection {
    /// Connects to a scheduler at `host` (`host:port`).
    pub async fn connect(host: &str) -> Result<Self, String> {
        let channel = channel_to(host).map_err(|e| e.to_string())?;
        let inner = arrow_flight::flight_service_client::FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let mut client = FlightSqlServiceClient::new_from_inner(inner);
        client.set_header(SESSION_HEADER, uuid::Uuid::new_v4().to_string());
        let mut connection = Self {
            client,
            progress_bar: true,
        };
        // Fail now, with the address in the message, rather than at the first statement.
        connection
            .client
            .handshake("", "")
            .await
            .map_err(|e| format!("cannot connect to Floe at {host}: {}", flight_message(&e)))?;
        Ok(connection)
    }

    /// No progress bar for long statements (for callers that show their own).
    pub fn without_progress_bar(mut self) -> Self {
        self.progress_bar = false;
        self
    }

    /// Runs one statement to completion; Ctrl-C cancels it on the cluster.
    pub async fn execute(&mut self, sql: &str) -> Result<StatementOutput, StatementError> {
        self.execute_with_timeout(sql, None).await
    }

    /// Runs one statement to completion within `timeout` (none: no limit). Ctrl-C, or the
    /// deadline passing while the result is fetched, cancels it on the cluster; a deadline
    /// passing before the cluster answered with the statement's endpoints has nothing to
    /// cancel yet and only returns [`StatementError::TimedOut`].
    pub async fn execute_with_timeout(
        &mut self,
        sql: &str,
        timeout: Option<Duration>,
    ) -> Result<StatementOutput, StatementError> {
        // A limit too large for the clock is no limit.
        let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
        let timed_out = || StatementError::TimedOut(timeout.unwrap_or_default());
        let info = tokio::select! {
            info = self.client.execute(sql.to_string(), None) => {
                info.map_err(|e| StatementError::Failed(flight_message(&e)))?
            }
            _ = tokio::signal::ctrl_c() => return Err(StatementError::Cancelled),
            () = passes(deadline) => return Err(timed_out()),
        };
        let schema: SchemaRef = std::sync::Arc::new(
            Schema::try_from(info.clone()).map_err(|e| StatementError::Failed(e.to_string()))?,
        );
        let query_id = query_id_of(&info);
        let progress = query_id.clone().filter(|_| self.progress_bar).map(|id| {
            let client = self.client.clone();
            tokio::spawn(show_progress(client, id))
        });
        let fetched = tokio::select! {
            batches = fetch_all(&mut self.client, &info) => batches,
            _ = tokio::signal::ctrl_c() => {
                self.abandon(progress, info).await;
                return Err(StatementError::Cancelled);
            }
            () = passes(deadline) => {
                self.abandon(progress, info).await;
                return Err(timed_out());
            }
        };
        if let Some(progress) = progress {
            progress.abort();
            let _ = progress.await;
        }
        let (batches, streamed_schema) = fetched.map_err(StatementError::Failed)?;
        // A statement runs on its fetch, so the summary of one without rows (`Created table
        // …`) comes with the streamed schema.
        let summary = streamed_schema
            .as_ref()
            .and_then(|streamed| streamed.metadata().get(SUMMARY_METADATA_KEY).cloned());
        Ok(StatementOutput {
            schema: if summary.is_some() {
                std::sync::Arc::new(Schema::empty())
            } else {
                schema
            },
            batches,
            summary,
        })
    }

    /// Stops the progress bar and cancels the statement on the cluster.
    async fn abandon(&mut self, progress: Option<tokio::task::JoinHandle<()>>, info: FlightInfo) {
        if let Some(progress) = progress {
            progress.abort();
        }
        self.cancel(info).await;
    }

    async fn cancel(&mut self, info: FlightInfo) {
        let request = CancelFlightInfoRequest { info: Some(info) };
        let action = Action::new("CancelFlightInfo", request.encode_to_vec());
        if let Ok(results) = self.client.do_action(action).await {
            let _ = results.try_collect::<Vec<_>>().await;
        }
    }
}

async fn fetch_all(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> Result<(Vec<RecordBatch>, Option<SchemaRef>), String> {
    let mut batches = Vec::new();
    let mut schema = None;
    for endpoint in &info.endpoint {
        let Some(ticket) = endpoint.ticket.clone() else {
            continue;
        };
        let mut stream = client
            .do_get(ticket)
            .await
            .map_err(|e| flight_message(&e))?;
        while let Some(batch) = stream.next().await {
            batches.push(batch.map_err(|e| flight_message(&e))?);
        }
        schema = stream.schema().cloned().or(schema);
    }
    Ok((batches, schema))
}

/// Completes when `deadline` passes; never without one.
async fn passes(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending::<()>().await,
    }
}

fn query_id_of(info: &FlightInfo) -> Option<String> {
    let ticket = info.endpoint.first()?.ticket.as_ref()?;
    let any = arrow_flight::sql::Any::decode(ticket.ticket.clone()).ok()?;
    let statement = any
        .unpack::<arrow_flight::sql::TicketStatementQuery>()
        .ok()??;
    String::from_utf8(statement.statement_handle.to_vec()).ok()
}

/// After [`PROGRESS_AFTER`], shows stages and tasks done until aborted.
async fn show_progress(mut client: FlightSqlServiceClient<Channel>, query_id: String) {
    tokio::time::sleep(PROGRESS_AFTER).await;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] stages {msg} tasks {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    // Dropping the bar (on abort) leaves no trace on the terminal.
    let _clear = ClearOnDrop(bar.clone());
    loop {
        let action = Action::new(QUERY_PROGRESS_ACTION, query_id.clone().into_bytes());
        let Ok(results) = client.do_action(action).await else {
            return;
        };
        let Ok(bodies) = results.try_collect::<Vec<_>>().await else {
            return;
        };
        if let Some(progress) = bodies
            .first()
            .and_then(|b| QueryProgress::decode(b.body.clone()).ok())
        {
            bar.set_length(u64::from(progress.tasks_total));
            bar.set_position(u64::from(progress.tasks_done));
            bar.set_message(format!(
                "{}/{}",
                progress.stages_done, progress.stages_total
            ));
        }
        bar.tick();
        tokio::time::sleep(PROGRESS_POLL_INTERVAL).await;
    }
}

struct ClearOnDrop(ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The server's message for a Flight error (not the gRPC wrapper around it).
fn flight_message(err: &arrow_flight::error::FlightError) -> String {
    match err {
        arrow_flight::error::FlightError::Tonic(status) => status.message().to_string(),
        other => other.to_string(),
    }
}
