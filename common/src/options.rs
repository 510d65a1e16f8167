//! `floe.*` session options: Floe's own settings beside DataFusion's, changed with `SET` like
//! them (`SET floe.single_task_max_scan_bytes = 0`) and listed by `SHOW ALL`.
//!
//! They are read where the scheduler decides how to run a plan; executors never see them (the
//! scheduler sends tasks only the `datafusion.*` options).

use std::any::Any;
use std::ops::{Deref, DerefMut};

use datafusion::common::Result;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::extensions_options;

/// Scan size up to which a query runs as one task by default: 16 MiB for each of 16 partitions,
/// as datafusion-distributed sizes its smallest distributed scan. Below it, stage boundaries
/// (shuffle files, launches, fetches: a few milliseconds each) cost more than the parallelism
/// of a second executor gives back.
pub const DEFAULT_SINGLE_TASK_MAX_SCAN_BYTES: u64 = 256 * 1024 * 1024;

/// Scan size up to which a filtered join input is copied below the exchange on the join's
/// other side to filter its rows there (semi-join reduction). TPC-DS's largest filtered
/// dimension, `customer_demographics`, is 1.9 million rows in about 10 MB at any scale
/// factor; every task below the exchange reads the copy again.
pub const DEFAULT_SEMI_JOIN_REDUCTION_MAX_SCAN_BYTES: u64 = 32 * 1024 * 1024;

/// Scan size up to which a table joined with the output of other joins is broadcast to every
/// task of the join's stage in place of that output. Like Spark's broadcast threshold, but in
/// the bytes a scan reads: the dimensions TPC-DS broadcasts fit, and `inventory` (at SF10, 133
/// million rows and 2.1 GB of shuffle copied to every task of TPC-DS q72) does not.
pub const DEFAULT_BROADCAST_MAX_SCAN_BYTES: u64 = 32 * 1024 * 1024;

extensions_options! {
    /// The fields of [`FloeOptions`].
    pub struct FloeSettings {
        /// A query whose scans read at most this many bytes runs whole as one task on one
        /// executor, its exchanges in that executor's memory, instead of as stages. Bytes are
        /// estimated after pruning: each file once, times the share of columns projected.
        /// 0 sends every query through stages.
        pub single_task_max_scan_bytes: u64, default = DEFAULT_SINGLE_TASK_MAX_SCAN_BYTES
        /// On a plan run in stages, a filtered join input whose scans read at most this many
        /// bytes also filters the join's other input below its exchange, so rows without a
        /// partner are not shuffled (semi-join reduction). 0 turns it off.
        pub semi_join_reduction_max_scan_bytes: u64, default = DEFAULT_SEMI_JOIN_REDUCTION_MAX_SCAN_BYTES
        /// An inner join of a table with the output of other joins (in stages or in one
        /// task) broadcasts the table to every task when its scans read at most this many bytes;
        /// otherwise both inputs are hash-partitioned on the join keys.
        pub broadcast_max_scan_bytes: u64, default = DEFAULT_BROADCAST_MAX_SCAN_BYTES
        /// Files each scan task reads at once, so that object-store latency overlaps. 0 picks:
        /// one for local files, `DEFAULT_REMOTE_CONCURRENT_FILES` (4) for S3 and other stores.
        pub scan_concurrent_files: u64, default = 0
    }
}

/// Floe's session options (prefix `floe`): [`FloeSettings`] as a DataFusion config extension
/// whose entries carry their prefix. DataFusion lists an extension's entries without it, so
/// `SHOW floe.single_task_max_scan_bytes` would be refused and `SHOW ALL` would list bare names.
#[derive(Debug, Clone, Default)]
pub struct FloeOptions(pub FloeSettings);

impl Deref for FloeOptions {
    type Target = FloeSettings;

    fn deref(&self) -> &FloeSettings {
        &self.0
    }
}

impl DerefMut for FloeOptions {
    fn deref_mut(&mut self) -> &mut FloeSettings {
        &mut self.0
    }
}

impl ExtensionOptions for FloeOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.0.set(key, value)
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        self.0
            .entries()
            .into_iter()
            .map(|entry| ConfigEntry {
                key: format!("{}.{}", Self::PREFIX, entry.key),
                ..entry
            })
            .collect()
    }
}

impl ConfigExtension for FloeOptions {
    const PREFIX: &'static str = "floe";
}
