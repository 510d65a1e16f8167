//! Moving shuffle files: local reads, Arrow Flight fetches and the per-executor broadcast copy.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, Ticket};
use datafusion::common::{DataFusionError, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tokio::sync::OnceCell;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use super::task_file::read_chunks;
use super::{LOCAL_READ_BUFFER_BATCHES, ShuffleLocation, resolve_shuffle_path};
use floe_proto::status::CodedError;
use floe_proto::{ByteRange, ShuffleTicket};

/// Largest gRPC message Floe sends or accepts (Flight data, task plans, control messages).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long connecting to another Floe process may take before the call fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 pings on idle connections; a peer that stops answering is dropped after
/// [`KEEP_ALIVE_TIMEOUT`], so a reader of a dead executor fails instead of waiting.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// See [`KEEP_ALIVE_INTERVAL`].
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream of batches read from a shuffle file, local or remote.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// A gRPC channel to `address` (`host:port`) with Floe's timeouts; connects on first use.
pub fn channel_to(address: &str) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| DataFusionError::Execution(format!("invalid address `{address}`: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// One lazily connected channel per peer address, shared by all tasks of the process.
#[derive(Debug, Default)]
pub struct FlightClientPool {
    channels: Mutex<HashMap<String, Channel>>,
}

impl FlightClientPool {
    /// A Flight client for `address`.
    pub fn client(&self, address: &str) -> Result<FlightClient> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| DataFusionError::Execution("flight client pool poisoned".into()))?;
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let channel = channel_to(address)?;
                channels.insert(address.to_string(), channel.clone());
                channel
            }
        };
        Ok(FlightClient::new_from_inner(
            arrow_flight::flight_service_client::FlightServiceClient::new(channel)
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        ))
    }
}

/// Broadcast inputs an executor has already copied to its own disk, so every task of a stage
/// on that executor reads the build side locally after one fetch.
#[derive(Debug, Default)]
pub struct BroadcastCache {
    fetched: Mutex<HashMap<BroadcastKey, Arc<OnceCell<PathBuf>>>>,
}

/// (producing executor id, shuffle path, first byte): one remote partition of a file.
type BroadcastKey = (String, String, u64);

impl BroadcastCache {
    fn cell(&self, location: &ShuffleLocation) -> Result<Arc<OnceCell<PathBuf>>> {
        let mut fetched = self
            .fetched
            .lock()
            .map_err(|_| DataFusionError::Execution("broadcast cache poisoned".into()))?;
        Ok(Arc::clone(
            fetched.entry(broadcast_key(location)).or_default(),
        ))
    }

    /// Forgets the files of a finished job (the files go with the job's directory).
    pub fn forget_job(&self, job_id: &str) {
        if let Ok(mut fetched) = self.fetched.lock() {
            let prefix = format!("{job_id}/");
            fetched.retain(|(_, path, _), _| !path.starts_with(&prefix));
        }
    }
}

fn broadcast_key(location: &ShuffleLocation) -> BroadcastKey {
    let first_byte = location.ranges.first().map_or(0, |r| r.start);
    (
        location.executor_id.clone(),
        location.path.clone(),
        first_byte,
    )
}

/// The job a shuffle path belongs to (its first component).
pub fn job_of_path(path: &str) -> &str {
    path.split('/').next().unwrap_or_default()
}

/// Reads byte ranges of a local shuffle file (each one Arrow IPC stream) on a blocking thread,
/// a few batches ahead.
pub fn read_local_file(path: PathBuf, ranges: Vec<Range<u64>>) -> BatchStream {
    let (sender, receiver) = tokio::sync::mpsc::channel(LOCAL_READ_BUFFER_BATCHES);
    tokio::task::spawn_blocking(move || {
        // A send fails only when the reading task went away: stop reading then.
        let result = read_chunks(&path, &ranges, |batch| {
            sender.blocking_send(Ok(batch)).is_ok()
        });
        if let Err(err) = result {
            let _ = sender.blocking_send(Err(err));
        }
    });
    tokio_stream_from(receiver)
}

/// Ranges in their wire form.
pub fn ranges_to_proto(ranges: &[Range<u64>]) -> Vec<ByteRange> {
    ranges
        .iter()
        .map(|r| ByteRange {
            start: r.start,
            end: r.end,
        })
        .collect()
}

/// Ranges from their wire form; an end before its start is refused.
pub fn ranges_from_proto(ranges: &[ByteRange]) -> Result<Vec<Range<u64>>> {
    ranges
        .iter()
        .map(|r| {
            if r.end < r.start {
                Err(DataFusionError::Execution(format!(
                    "invalid shuffle byte range {}..{}",
                    r.start, r.end
                )))
            } else {
                Ok(r.start..r.end)
            }
        })
        .collect()
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
) -> BatchStream {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

/// Streams a shuffle file's ranges from the executor that wrote it.
pub fn fetch_remote(pool: &FlightClientPool, location: &ShuffleLocation) -> Result<BatchStream> {
    let mut client = pool.client(&location.address)?;
    let ticket = ShuffleTicket {
        job_id: job_of_path(&location.path).to_string(),
        path: location.path.clone(),
        ranges: ranges_to_proto(&location.ranges),
    };
    let describe = format!(
        "cannot fetch shuffle file {} from executor {} at {}",
        location.path, location.executor_id, location.address
    );
    let stream = futures::stream::once(async move {
        client
            .do_get(Ticket::new(ticket.encode_to_vec()))
            .await
            .map_err(|e| fetch_failed(&describe, &e))
            .map(move |batches| batches.map_err(move |e| fetch_failed(&describe, &e)))
    })
    .try_flatten();
    Ok(stream.boxed())
}

/// A shuffle input that could not be read from its executor: the executor is gone or lost the
/// file, so the query fails as `Unavailable` (the cluster's fault, not the query's).
fn fetch_failed(describe: &str, err: &FlightError) -> DataFusionError {
    CodedError::unavailable(format!("{describe}: {err}")).into_datafusion()
}

/// Copies a remote broadcast file to `work_dir` once per executor and returns the local path.
pub async fn fetch_broadcast(
    cache: &BroadcastCache,
    pool: &FlightClientPool,
    work_dir: &Path,
    location: &ShuffleLocation,
    schema: &SchemaRef,
) -> Result<PathBuf> {
    let cell = cache.cell(location)?;
    let path = cell
        .get_or_try_init(|| async {
            let job_id = job_of_path(&location.path);
            let (_, _, first_byte) = broadcast_key(location);
            let relative = format!(
                "{job_id}/broadcast/{}/{}_{first_byte}",
                location.executor_id,
                location.path.replace('/', "_")
            );
            let target = resolve_shuffle_path(work_dir, job_id, &relative)?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    DataFusionError::Execution(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let file = File::create(&target).map_err(|e| {
                DataFusionError::Execution(format!("cannot create {}: {e}", target.display()))
            })?;
            let mut writer = StreamWriter::try_new(BufWriter::new(file), schema)?;
            let mut stream = fetch_remote(pool, location)?;
            while let Some(batch) = stream.next().await {
                writer.write(&batch?)?;
            }
            writer.finish()?;
            Ok::<_, DataFusionError>(target)
        })
        .await?;
    Ok(path.clone())
}

/// Serves a shuffle file's ranges for a `do_get` ticket: the executor side of [`fetch_remote`].
pub fn serve_shuffle_file(work_dir: &Path, ticket: &[u8]) -> Result<BatchStream> {
    let invalid = |message: String| CodedError::new(Code::InvalidArgument, message);
    let ticket = ShuffleTicket::decode(ticket)
        .map_err(|e| invalid(format!("invalid shuffle ticket: {e}")).into_datafusion())?;
    let path = resolve_shuffle_path(work_dir, &ticket.job_id, &ticket.path)
        .map_err(|e| invalid(e.to_string()).into_datafusion())?;
    if !path.is_file() {
        return Err(CodedError::new(
            Code::NotFound,
            format!(
                "shuffle file {} not found (its job may have finished)",
                ticket.path
            ),
        )
        .into_datafusion());
    }
    let ranges =
        ranges_from_proto(&ticket.ranges).map_err(|e| invalid(e.to_string()).into_datafusion())?;
    Ok(read_local_file(path, ranges))
}
