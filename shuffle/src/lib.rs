//! # floe-shuffle
//!
//! Shuffle: the operators at stage boundaries, where their files live, and how they travel.
//!
//! A stage ends in a [`ShuffleWriterExec`]: each task writes all its output partitions into one
//! file of Arrow IPC stream chunks under the executor's work dir, `{job}/{stage}/{map
//! partition}-{run id}.arrow` (a relaunched task never overwrites a file), and reports each partition's byte ranges ([`task_file`]). The next stage
//! starts with a [`ShuffleReaderExec`] that knows, per output partition, every file and range
//! that holds rows for it ([`ShuffleLocation`]). A reader opens files of its own executor
//! directly and fetches the others with Arrow Flight `do_get` ([`flight`]), all producers at once
//! but never more than [`MAX_CONCURRENT_SHUFFLE_FETCHES`] per partition, each pulled one batch at
//! a time, so memory stays bounded whatever the fan-in.
//!
//! The process running these operators says who it is through a [`ShuffleEnv`] in the
//! DataFusion session config.

pub mod flight;
mod reader;
pub mod task_file;
mod writer;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::execution::TaskContext;

pub use reader::{ColumnEquivalences, ShuffleReaderExec};
pub use task_file::ShuffleOutputFile;
pub use writer::ShuffleWriterExec;

use self::flight::{BroadcastCache, FlightClientPool};

/// Producers a reading partition streams from at the same time.
pub const MAX_CONCURRENT_SHUFFLE_FETCHES: usize = 16;

/// Batches buffered between a local shuffle file reader thread and the task reading it.
pub const LOCAL_READ_BUFFER_BATCHES: usize = 2;

/// Where one map task's rows for one output partition live: a file and its byte ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleLocation {
    /// Executor that wrote (and serves) the file.
    pub executor_id: String,
    /// `host:port` of that executor's Flight service.
    pub address: String,
    /// Path relative to the executor's work dir.
    pub path: String,
    /// The file's byte ranges holding these rows (chunks, each one IPC stream, in order).
    pub ranges: Vec<std::ops::Range<u64>>,
    /// Rows in those ranges.
    pub rows: u64,
    /// Arrow IPC bytes in those ranges.
    pub bytes: u64,
}

/// The executor running shuffle operators: its id, work dir and connections.
#[derive(Debug)]
pub struct ShuffleEnv {
    /// This process's executor id; files of this id are read from disk.
    pub executor_id: String,
    /// Root of shuffle files.
    pub work_dir: PathBuf,
    /// Flight connections to other executors.
    pub clients: FlightClientPool,
    /// Broadcast inputs already fetched to this executor's disk.
    pub broadcast_cache: BroadcastCache,
}

impl ShuffleEnv {
    /// An environment for an executor with the given id and work dir.
    pub fn executor(executor_id: impl Into<String>, work_dir: PathBuf) -> Self {
        Self {
            executor_id: executor_id.into(),
            work_dir,
            clients: FlightClientPool::default(),
            broadcast_cache: BroadcastCache::default(),
        }
    }

    /// The environment set on a task's session config.
    pub fn of(context: &TaskContext) -> Result<Arc<ShuffleEnv>> {
        context
            .session_config()
            .get_extension::<ShuffleEnv>()
            .ok_or_else(|| {
                DataFusionError::Execution(
                    "shuffle operators run only inside a Floe executor".into(),
                )
            })
    }
}

/// Checks a job id before it becomes a directory name: letters, digits, `-` and `_` only.
pub fn validate_job_id(job_id: &str) -> Result<()> {
    if job_id.is_empty()
        || job_id.len() > 64
        || !job_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return exec_err!("invalid job id `{job_id}`");
    }
    Ok(())
}

/// Resolves a shuffle file path received from another process inside `work_dir`, refusing
/// anything outside the job's directory.
pub fn resolve_shuffle_path(work_dir: &Path, job_id: &str, relative: &str) -> Result<PathBuf> {
    validate_job_id(job_id)?;
    let path = Path::new(relative);
    let inside_job = path.components().next() == Some(Component::Normal(job_id.as_ref()))
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if !inside_job {
        return exec_err!("shuffle path `{relative}` is not inside job `{job_id}`");
    }
    Ok(work_dir.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_paths_stay_inside_the_job() {
        let root = Path::new("/work");
        assert!(resolve_shuffle_path(root, "j1", "j1/2/0/1.arrow").is_ok());
        assert!(resolve_shuffle_path(root, "j1", "j1/../j2/0/1.arrow").is_err());
        assert!(resolve_shuffle_path(root, "j1", "/etc/passwd").is_err());
        assert!(resolve_shuffle_path(root, "j1", "j2/0/0/0.arrow").is_err());
        assert!(resolve_shuffle_path(root, "../x", "../x/0").is_err());
    }
}
