//! The executor side of [`ClusterState`]: registration, liveness, task hand-off, reports, and
//! reconciling what each executor really runs with what the scheduler believes.
//!
//! A task report can be lost (the executor gives up, or a proxy drops it), so reports are not
//! the only source of truth: every heartbeat lists the tasks its executor holds (running, or
//! finished with the report not yet acknowledged) and counts the launches it had accepted when
//! it built the heartbeat. An executor numbers its launches and holds each task before it
//! acknowledges the launch, so a heartbeat counting more launches than a task's number was
//! built after the task was held. A task the scheduler has running on that executor that such
//! a heartbeat leaves out is lost: its job fails naming task and executor, and its slot is
//! freed. An older heartbeat, however late it arrives, never judges the task. When an executor
//! registers (again: a restart starts its count afresh), the tasks the scheduler has running
//! there are judged by its next heartbeat. A task the executor holds that the
//! scheduler does not have there (its job is gone or finished, or the task moved on) is
//! cancelled with `CancelTasks`. Reports are idempotent: one only counts for a task the
//! scheduler has launching or running on the reporting executor, so a duplicate or a stale
//! report is a no-op.
//!
//! A hand-off that fails in transport (unreachable, timed out) drops the executor, as before:
//! its unstarted tasks go back to pending. A launch the executor refuses (invalid, too large to
//! decode) fails only that job and leaves the executor in place.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use floe_proto::executor_control_client::ExecutorControlClient;
use floe_proto::task_status_report::Result as TaskResult;
use floe_proto::{CancelTasksRequest, HeartbeatRequest, TaskFailure, TaskId, TaskStatusReport};
use floe_shuffle::flight::{MAX_GRPC_MESSAGE_BYTES, channel_to};
use tonic::Status;

use floe_proto::status::{CodedError, is_transport_failure};
use tonic::Code;

use super::{
    ClusterState, EXECUTOR_TIMEOUT, ExecutorSlot, Inner, Job, JobOutcome, Launch, StageRun,
    TaskState, job_result,
};
use crate::error::Result;

/// A task as a comparable key: job, stage, partition.
type TaskKey<'a> = (&'a str, u32, u32);

fn key_of(task: &TaskId) -> TaskKey<'_> {
    (&task.job_id, task.stage_id, task.partition)
}

/// What reconciling one heartbeat found.
#[derive(Default)]
struct Reconciled {
    /// Jobs to fail, each with its first lost task.
    lost: Vec<(String, CodedError)>,
    /// Tasks the executor holds that the scheduler does not have there.
    unknown: Vec<TaskId>,
}

impl ClusterState {
    /// Adds (or refreshes) an executor.
    pub fn register_executor(
        self: &Arc<Self>,
        executor_id: &str,
        address: &str,
        slots: usize,
    ) -> Result<()> {
        let channel = channel_to(address)?;
        let client = ExecutorControlClient::new(channel)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let slots = slots.max(1);
        {
            let mut inner = self.lock();
            // Launch numbers of an earlier run of the executor mean nothing to this one.
            forget_launches(&mut inner, executor_id);
            inner.executors.insert(
                executor_id.to_string(),
                ExecutorSlot {
                    address: address.to_string(),
                    slots,
                    last_seen: Instant::now(),
                    client,
                },
            );
        }
        log::info!("executor {executor_id} registered at {address} with {slots} slots");
        self.schedule();
        Ok(())
    }

    /// Records a heartbeat and compares the tasks it lists (running, or with a report not yet
    /// acknowledged) with what the scheduler believes runs on that executor, in one lock: jobs
    /// with a lost task fail, and tasks the scheduler does not have there are cancelled.
    /// `false` when the executor is unknown (it must register again; nothing is reconciled).
    pub fn heartbeat(self: &Arc<Self>, heartbeat: &HeartbeatRequest) -> bool {
        let executor_id = heartbeat.executor_id.as_str();
        let (Reconciled { lost, unknown }, client) = {
            let mut inner = self.lock();
            let Some(executor) = inner.executors.get_mut(executor_id) else {
                return false;
            };
            executor.last_seen = Instant::now();
            let client = executor.client.clone();
            (reconcile_executor(&mut inner, heartbeat), client)
        };
        if !unknown.is_empty() {
            log::info!(
                "executor {executor_id} holds {} task(s) the scheduler does not have there; \
                 cancelling them",
                unknown.len()
            );
            let mut client = client;
            tokio::spawn(async move {
                let _ = client
                    .cancel_tasks(CancelTasksRequest { tasks: unknown })
                    .await;
            });
        }
        for (job_id, failure) in lost {
            self.fail_job(&job_id, failure);
        }
        // Lost tasks, and tasks of jobs that ended, no longer hold slots.
        self.schedule();
        true
    }

    /// Executors that have not sent a heartbeat within [`EXECUTOR_TIMEOUT`] are removed and
    /// their jobs failed.
    pub fn expire_executors(self: &Arc<Self>) {
        let lost: Vec<(String, String)> = {
            let inner = self.lock();
            inner
                .executors
                .iter()
                .filter(|(_, e)| e.last_seen.elapsed() > EXECUTOR_TIMEOUT)
                .map(|(id, e)| (id.clone(), e.address.clone()))
                .collect()
        };
        for (executor_id, address) in lost {
            self.executor_lost(
                &executor_id,
                &format!(
                    "executor {executor_id} at {address} was lost (no heartbeat for {} s)",
                    EXECUTOR_TIMEOUT.as_secs()
                ),
            );
        }
    }

    /// Drops an executor. Jobs with tasks running on it or output stored on it fail; tasks
    /// only being handed to it go back to pending (they never started).
    fn executor_lost(self: &Arc<Self>, executor_id: &str, reason: &str) {
        let failed: Vec<String> = {
            let mut inner = self.lock();
            if inner.executors.remove(executor_id).is_none() {
                return;
            }
            log::warn!("{reason}");
            let mut failed = Vec::new();
            for (job_id, job) in inner.jobs.iter_mut().filter(|(_, job)| job.is_running()) {
                let mut lost_work = false;
                for task in job.stages.iter_mut().flat_map(|s| s.tasks.iter_mut()) {
                    match task {
                        TaskState::Launching { executor_id: e } if e == executor_id => {
                            *task = TaskState::Pending;
                        }
                        TaskState::Running { executor_id: e, .. }
                        | TaskState::Done { executor_id: e, .. }
                            if e == executor_id =>
                        {
                            lost_work = true;
                        }
                        _ => {}
                    }
                }
                if lost_work {
                    failed.push(job_id.clone());
                }
            }
            failed
        };
        for job_id in failed {
            self.fail_job(&job_id, CodedError::unavailable(reason));
        }
        self.schedule();
    }

    /// Hands a task to its executor (in the background: the lock is not held).
    pub(super) fn send_launch(self: &Arc<Self>, launch: Launch) {
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let Launch {
                job_id,
                executor_id,
                address,
                mut client,
                request,
            } = launch;
            let task = request.task.clone().unwrap_or_default();
            match client.launch_task(request).await {
                Ok(response) => {
                    let launch = response.into_inner().launch_seq;
                    state.launched(&job_id, &task, &executor_id, launch);
                }
                // The executor may be gone: it is dropped, and its unstarted tasks go elsewhere.
                Err(status) if is_transport_failure(&status) => state.executor_lost(
                    &executor_id,
                    &format!(
                        "executor {executor_id} at {address} is unreachable: {}",
                        status.message()
                    ),
                ),
                // The executor is fine; the task is not.
                Err(status) => state.launch_refused(&task, &executor_id, &status),
            }
        });
    }

    /// The executor accepted a task as its launch number `launch`.
    fn launched(&self, job_id: &str, task: &TaskId, executor_id: &str, launch: u64) {
        let mut inner = self.lock();
        if let Some(slot) = task_slot(&mut inner, job_id, task)
            && matches!(slot, TaskState::Launching { executor_id: e } if e == executor_id)
        {
            *slot = TaskState::Running {
                executor_id: executor_id.to_string(),
                launch: Some(launch),
            };
        }
    }

    /// The executor refused a task (an invalid or oversized request): its job fails with the
    /// executor's reason, and the executor stays.
    fn launch_refused(self: &Arc<Self>, task: &TaskId, executor_id: &str, status: &Status) {
        {
            let mut inner = self.lock();
            if let Some(slot) = task_slot(&mut inner, &task.job_id, task)
                && matches!(slot, TaskState::Launching { executor_id: e } if e == executor_id)
            {
                *slot = TaskState::Pending;
            }
        }
        let failure = CodedError::new(
            refusal_code(status.code()),
            format!(
                "executor {executor_id} refused task {} of stage {} ({:?}): {}",
                task.partition,
                task.stage_id,
                status.code(),
                status.message()
            ),
        );
        self.fail_job(&task.job_id, failure);
        self.schedule();
    }

    /// Applies a task's report. Only a report for a task launching or running on the
    /// reporting executor counts: a duplicate (the task is done already) or a stale one (the
    /// task went back to pending or to another executor) changes nothing.
    pub fn task_status(self: &Arc<Self>, report: TaskStatusReport) {
        let TaskStatusReport {
            executor_id,
            task: Some(task),
            result,
        } = report
        else {
            return;
        };
        let failure = {
            let mut inner = self.lock();
            let Inner {
                executors, jobs, ..
            } = &mut *inner;
            let Some(job) = jobs.get_mut(&task.job_id) else {
                return;
            };
            if !is_assigned(job, &task, &executor_id) {
                log::debug!("ignoring a duplicate or stale report of {task:?}");
                return;
            }
            if job.is_running() {
                apply_report(job, &task, &executor_id, result, executors)
            } else {
                // The job ended (failed or cancelled) while the task ran: its slot is free now.
                release_task(job, &task);
                None
            }
        };
        if let Some(failure) = failure {
            self.fail_job(&task.job_id, failure);
        }
        // Whatever the report, a slot may have come free for another job's pending tasks.
        self.schedule();
    }
}

/// The state of one task of a job.
fn task_slot<'a>(inner: &'a mut Inner, job_id: &str, task: &TaskId) -> Option<&'a mut TaskState> {
    inner
        .jobs
        .get_mut(job_id)?
        .stages
        .get_mut(task.stage_id as usize)?
        .tasks
        .get_mut(task.partition as usize)
}

/// The client's code for a launch the executor refused: a request over its message limit is
/// resource exhausted; anything else it rejects is the scheduler's bug.
fn refusal_code(code: Code) -> Code {
    match code {
        Code::ResourceExhausted | Code::OutOfRange => Code::ResourceExhausted,
        _ => Code::Internal,
    }
}

/// Whether the scheduler has `task` launching or running on `executor_id`.
fn is_assigned(job: &Job, task: &TaskId, executor_id: &str) -> bool {
    job.stages
        .get(task.stage_id as usize)
        .and_then(|stage| stage.tasks.get(task.partition as usize))
        .is_some_and(|slot| match slot {
            TaskState::Launching { executor_id: e } | TaskState::Running { executor_id: e, .. } => {
                e == executor_id
            }
            _ => false,
        })
}

/// Records an assigned task's report; returns the job's failure, if the report is one.
fn apply_report(
    job: &mut Job,
    task: &TaskId,
    executor_id: &str,
    result: Option<TaskResult>,
    executors: &BTreeMap<String, ExecutorSlot>,
) -> Option<CodedError> {
    let (stage_id, partition) = (task.stage_id as usize, task.partition as usize);
    let stage = job.stages.get_mut(stage_id)?;
    match result {
        Some(TaskResult::Success(success)) => {
            *stage.tasks.get_mut(partition)? = TaskState::Done {
                executor_id: executor_id.to_string(),
                outputs: success.outputs,
                metrics: success.metrics.unwrap_or_default(),
            };
            if stage.is_done() {
                stage.finished = Some(Instant::now());
            }
            if job.stages.iter().all(StageRun::is_done) {
                match job_result(job, executors) {
                    Ok(result) => {
                        job.outcome
                            .send_replace(JobOutcome::Succeeded(Arc::new(result)));
                    }
                    Err(err) => {
                        return Some(super::build_failure(err));
                    }
                }
            }
            None
        }
        // The executor classified its error: a query's own mistake stays the client's.
        Some(TaskResult::Failure(TaskFailure { message, code })) => {
            release_task(job, task);
            Some(CodedError::new(
                reported_code(code),
                format!(
                    "task {partition} of stage {stage_id} failed on executor {executor_id}: {message}"
                ),
            ))
        }
        // Only this job's cancellation stops its tasks, and it is running: something else
        // stopped the task, and its output will never come.
        Some(TaskResult::Cancelled(_)) => {
            release_task(job, task);
            Some(CodedError::new(
                Code::Unavailable,
                format!(
                    "task {partition} of stage {stage_id} was cancelled on executor {executor_id}"
                ),
            ))
        }
        None => None,
    }
}

/// A task that ended without output (failed, cancelled, its job over) holds no slot: slots are
/// counted from launching and running tasks.
fn release_task(job: &mut Job, task: &TaskId) {
    if let Some(state) = job
        .stages
        .get_mut(task.stage_id as usize)
        .and_then(|stage| stage.tasks.get_mut(task.partition as usize))
    {
        *state = TaskState::Pending;
    }
}

/// The code of an executor's failure report; an unset code (`Ok`) is not a success.
fn reported_code(code: i32) -> Code {
    match Code::from_i32(code) {
        Code::Ok => Code::Internal,
        code => code,
    }
}

/// Reconciles one executor's heartbeat (see the module docs).
fn reconcile_executor(inner: &mut Inner, heartbeat: &HeartbeatRequest) -> Reconciled {
    let HeartbeatRequest {
        executor_id,
        tasks: held,
        launches_accepted,
    } = heartbeat;
    let held_keys: HashSet<TaskKey> = held.iter().map(key_of).collect();
    let mut reconciled = Reconciled::default();
    for (job_id, job) in inner.jobs.iter_mut() {
        let mut first_lost = None;
        for (stage_id, stage) in job.stages.iter_mut().enumerate() {
            for (partition, slot) in stage.tasks.iter_mut().enumerate() {
                // Only tasks running on this executor that this heartbeat must list.
                let TaskState::Running {
                    executor_id: e,
                    launch,
                } = slot
                else {
                    continue;
                };
                if e != executor_id
                    || !counts_launch(*launches_accepted, *launch)
                    || held_keys.contains(&(job_id.as_str(), stage_id as u32, partition as u32))
                {
                    continue;
                }
                // Gone from the executor without a report: free the slot.
                *slot = TaskState::Pending;
                first_lost.get_or_insert((stage_id, partition));
            }
        }
        if let Some((stage_id, partition)) = first_lost
            && job.is_running()
        {
            let message = format!(
                "task {partition} of stage {stage_id} (job {job_id}) was lost: executor \
                 {executor_id} no longer runs it and its report never arrived"
            );
            reconciled
                .lost
                .push((job_id.clone(), CodedError::unavailable(message)));
        }
    }
    reconciled.unknown = held
        .iter()
        .filter(|task| !is_known(inner, task, executor_id))
        .cloned()
        .collect();
    reconciled
}

/// Whether a heartbeat that counted `launches_accepted` launches was built after the executor
/// held the task of launch number `launch` (`None`: the executor registered since, and any of
/// its heartbeats was built after that).
fn counts_launch(launches_accepted: u64, launch: Option<u64>) -> bool {
    launch.is_none_or(|launch| launches_accepted > launch)
}

/// An executor (re)registers: the launch numbers of the tasks the scheduler has running there
/// came from an earlier run (a restart counts from 0 again), so its next heartbeat judges them.
fn forget_launches(inner: &mut Inner, executor_id: &str) {
    for slot in inner
        .jobs
        .values_mut()
        .flat_map(|job| job.stages.iter_mut())
        .flat_map(|stage| stage.tasks.iter_mut())
    {
        if let TaskState::Running {
            executor_id: e,
            launch,
        } = slot
            && e == executor_id
        {
            *launch = None;
        }
    }
}

/// Whether a task an executor holds is one the scheduler has there: launching, running, or
/// done by it (its report acknowledged after the heartbeat was built), in a running job.
fn is_known(inner: &Inner, task: &TaskId, executor_id: &str) -> bool {
    let Some(job) = inner.jobs.get(&task.job_id) else {
        return false;
    };
    job.is_running()
        && job
            .stages
            .get(task.stage_id as usize)
            .and_then(|stage| stage.tasks.get(task.partition as usize))
            .is_some_and(|slot| match slot {
                TaskState::Launching { executor_id: e }
                | TaskState::Running { executor_id: e, .. }
                | TaskState::Done { executor_id: e, .. } => e == executor_id,
                TaskState::Pending => false,
            })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::arrow::datatypes::Schema;
    use datafusion::physical_plan::empty::EmptyExec;
    use floe_shuffle::ShuffleWriterExec;
    use tokio::sync::watch;

    use super::*;
    use crate::planner::Stage;

    /// One running job whose only task runs on `e1` as launch number 3.
    fn running_on_e1() -> Inner {
        let input = Arc::new(EmptyExec::new(Arc::new(Schema::empty())));
        let plan = Arc::new(ShuffleWriterExec::try_new(input, "job", 0, None).unwrap());
        let stage = Stage {
            id: 0,
            plan,
            inputs: Vec::new(),
        };
        let running = TaskState::Running {
            executor_id: "e1".into(),
            launch: Some(3),
        };
        let job = Job {
            seq: 0,
            query_id: None,
            stages: vec![StageRun {
                stage,
                tasks: vec![running],
                ready: None,
                started: None,
                finished: None,
            }],
            runtime: Arc::default(),
            session_options: Default::default(),
            outcome: watch::channel(JobOutcome::Running).0,
            executors_used: Default::default(),
        };
        let mut inner = Inner::default();
        inner.jobs.insert("job".into(), job);
        inner
    }

    fn heartbeat(executor_id: &str, launches_accepted: u64, tasks: &[&str]) -> HeartbeatRequest {
        let task = |job_id: &&str| TaskId {
            job_id: job_id.to_string(),
            ..Default::default()
        };
        HeartbeatRequest {
            executor_id: executor_id.into(),
            tasks: tasks.iter().map(task).collect(),
            launches_accepted,
        }
    }

    fn is_running(inner: &Inner) -> bool {
        matches!(
            inner.jobs["job"].stages[0].tasks[0],
            TaskState::Running { .. }
        )
    }

    #[test]
    fn only_heartbeats_built_after_the_launch_judge_a_task() {
        let mut inner = running_on_e1();
        // Built before the launch (however late it arrives), or from another executor.
        for early in [heartbeat("e1", 3, &[]), heartbeat("e2", 9, &[])] {
            let reconciled = reconcile_executor(&mut inner, &early);
            assert!(reconciled.lost.is_empty() && reconciled.unknown.is_empty());
            assert!(is_running(&inner));
        }
        // Built after it, listing the task (and one the scheduler does not know there).
        let reconciled = reconcile_executor(&mut inner, &heartbeat("e1", 4, &["job", "other"]));
        assert!(reconciled.lost.is_empty() && is_running(&inner));
        assert_eq!(reconciled.unknown.len(), 1);
        // Built after it, leaving the task out: lost, and its slot is free.
        let reconciled = reconcile_executor(&mut inner, &heartbeat("e1", 4, &[]));
        assert_eq!(reconciled.lost.len(), 1);
        assert!(reconciled.lost[0].1.to_string().contains("was lost"));
        assert!(!is_running(&inner));
    }

    #[test]
    fn after_a_registration_the_next_heartbeat_judges() {
        let mut inner = running_on_e1();
        // A restarted executor counts from 0 again.
        forget_launches(&mut inner, "e1");
        let reconciled = reconcile_executor(&mut inner, &heartbeat("e1", 0, &["job"]));
        assert!(reconciled.lost.is_empty() && is_running(&inner));
        let reconciled = reconcile_executor(&mut inner, &heartbeat("e1", 0, &[]));
        assert_eq!(reconciled.lost.len(), 1);
    }
}
