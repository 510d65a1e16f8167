//! Reads several files of one scan partition at once, so object-store latency overlaps.
//!
//! DataFusion's file stream reads a partition's files one after another: it opens the next file
//! (footer, page index) while the current one streams, but fetches the next file's row groups
//! only once the current file is done. On S3 each of those fetches waits a first-byte latency
//! (tens of milliseconds) with nothing else in flight. This splits a partition's files
//! round-robin into up to `concurrent_files` sub-streams over the same Parquet configuration
//! (same pushed filters, same metrics) and interleaves their batches, so that many fetches are
//! in flight. Row order within a partition was never defined for a scan; a pushed limit is
//! applied again to the interleaved output.

use std::sync::Arc;

use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;

/// Default files read at once per partition from a remote object store (S3 and the like);
/// local files are read one at a time.
pub const DEFAULT_REMOTE_CONCURRENT_FILES: usize = 4;

/// Partition `partition` of `config`, its files read `concurrent_files` at a time.
pub fn execute(
    config: &FileScanConfig,
    partition: usize,
    concurrent_files: usize,
    context: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let files = config
        .file_groups
        .get(partition)
        .map(|group| group.files().to_vec())
        .unwrap_or_default();
    let ways = concurrent_files.min(files.len()).max(1);
    let mut groups: Vec<Vec<_>> = vec![Vec::new(); ways];
    for (index, file) in files.into_iter().enumerate() {
        groups[index % ways].push(file);
    }
    let sub_scan = DataSourceExec::from_data_source(
        FileScanConfigBuilder::from(config.clone())
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .build(),
    );
    let schema = sub_scan.schema();
    let streams = (0..ways)
        .map(|sub| sub_scan.execute(sub, Arc::clone(&context)))
        .collect::<Result<Vec<_>>>()?;
    let interleaved = futures::stream::select_all(streams);
    let limited = match config.limit {
        None => interleaved.boxed(),
        Some(limit) => take_rows(interleaved, limit).boxed(),
    };
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, limited)))
}

/// The first `limit` rows of `batches`.
fn take_rows<S>(
    batches: S,
    limit: usize,
) -> impl futures::Stream<Item = Result<arrow::record_batch::RecordBatch>>
where
    S: futures::Stream<Item = Result<arrow::record_batch::RecordBatch>>,
{
    batches
        .scan(limit, |remaining, batch| {
            let item = match batch {
                Ok(_) if *remaining == 0 => return futures::future::ready(None),
                Ok(batch) => {
                    let rows = batch.num_rows().min(*remaining);
                    *remaining -= rows;
                    Ok(batch.slice(0, rows))
                }
                Err(e) => Err(e),
            };
            futures::future::ready(Some(item))
        })
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.num_rows() == 0)))
}
