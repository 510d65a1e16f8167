//! What a finished job did, stage by stage, for `EXPLAIN ANALYZE` and the harness's profiles.
//!
//! Each stage's wall time is split where it goes: waiting for slots (from the moment its
//! inputs were done to its first launch), its tasks' own run time as their executors measured
//! it (plan decoding, execution, shuffle writing), and the rest of its elapsed time beyond its
//! longest task: launch and report latency, and tasks run in waves when a stage has more
//! tasks than free slots.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{ExecutorSlot, Job, JobResult, TaskState, stage_locations};
use crate::error::{Result, SchedulerError};

/// What one stage did.
#[derive(Debug, Clone)]
pub struct StageSummary {
    /// Stage id.
    pub stage_id: usize,
    /// Tasks run.
    pub tasks: usize,
    /// Rows written to shuffle.
    pub output_rows: u64,
    /// Arrow IPC bytes written to shuffle.
    pub output_bytes: u64,
    /// Rows read from shuffle inputs.
    pub input_rows: u64,
    /// From the first task's launch to the last task's report.
    pub elapsed: Duration,
    /// From the moment its inputs were done to its first task's launch.
    pub slot_wait: Duration,
    /// The longest run of one of its tasks, as its executor measured it.
    pub longest_task: Duration,
    /// Its tasks' run times added up.
    pub task_time: Duration,
    /// Executors that ran its tasks.
    pub executors: BTreeSet<String>,
    /// Row-level delete files its Iceberg scans read.
    pub delete_files_read: u64,
    /// Rows those deletes removed.
    pub rows_deleted: u64,
}

impl StageSummary {
    /// Elapsed time beyond the longest task: launch and report latency, plus other tasks' run
    /// time when the stage ran in waves (more tasks than free slots).
    pub fn beyond_longest_task(&self) -> Duration {
        self.elapsed.saturating_sub(self.longest_task)
    }
}

/// The result of a job whose stages are all done.
pub(super) fn job_result(
    job: &Job,
    executors: &BTreeMap<String, ExecutorSlot>,
) -> Result<JobResult> {
    let final_stage = job
        .stages
        .last()
        .ok_or_else(|| SchedulerError::Internal("job without stages".into()))?;
    let result_files = stage_locations(job, executors, final_stage.stage.id)?
        .into_iter()
        .flatten()
        .collect();
    let stages = job.stages.iter().map(stage_summary).collect();
    Ok(JobResult {
        result_files,
        stages,
    })
}

fn stage_summary(run: &super::StageRun) -> StageSummary {
    let between =
        |from: Option<std::time::Instant>, to: Option<std::time::Instant>| match (from, to) {
            (Some(from), Some(to)) => to.saturating_duration_since(from),
            _ => Duration::ZERO,
        };
    let mut summary = StageSummary {
        stage_id: run.stage.id,
        tasks: run.tasks.len(),
        output_rows: 0,
        output_bytes: 0,
        input_rows: 0,
        elapsed: between(run.started, run.finished),
        slot_wait: between(run.ready, run.started),
        longest_task: Duration::ZERO,
        task_time: Duration::ZERO,
        executors: BTreeSet::new(),
        delete_files_read: 0,
        rows_deleted: 0,
    };
    for task in &run.tasks {
        if let TaskState::Done {
            executor_id,
            metrics,
            ..
        } = task
        {
            let ran = Duration::from_micros(metrics.elapsed_micros);
            summary.output_rows += metrics.output_rows;
            summary.output_bytes += metrics.output_bytes;
            summary.input_rows += metrics.shuffle_read_rows;
            summary.delete_files_read += metrics.delete_files_read;
            summary.rows_deleted += metrics.rows_deleted;
            summary.longest_task = summary.longest_task.max(ran);
            summary.task_time += ran;
            summary.executors.insert(executor_id.clone());
        }
    }
    summary
}
