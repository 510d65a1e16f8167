//! `ClusterState`: the executors the scheduler knows and the jobs it runs on them.
//!
//! One lock guards everything and is never held across an `.await`; every change (a job
//! submitted, a task reported, an executor joining or lost) ends in [`ClusterState::schedule`],
//! which binds runnable tasks to free slots and sends them (push: the scheduler knows every
//! slot, so a stage starts the moment its inputs are done, and cancellation uses the same
//! channel). A stage is runnable when all its input stages have finished.
//!
//! Retries are not attempted: a failed task fails its job with the executor's message, and an
//! executor that stops sending heartbeats fails the jobs that had tasks or data on it. The
//! executor side (registration, heartbeats and what they reconcile, hand-offs, reports) lives
//! in `state/executors.rs`. Every way a job fails is a [`CodedError`]: its message
//! names the task, stage and executor, its code the kind of failure (`Unavailable` for a lost
//! executor or task, `ResourceExhausted` for a plan over the message limit, and for a task's
//! own error the code its executor found).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec;
use floe_core::codec::FloePhysicalCodec;
use floe_proto::executor_control_client::ExecutorControlClient;
use floe_proto::status::CodedError;
use floe_proto::{
    CancelJobRequest, LaunchTaskRequest, QueryProgress, RemoveJobDataRequest, TaskId, TaskMetrics,
};
use floe_shuffle::ShuffleLocation;
use floe_shuffle::flight::MAX_GRPC_MESSAGE_BYTES;
use prost::Message as _;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

use crate::error::{Result, SchedulerError};
use crate::planner::{ReaderLocations, Stage, StageGraph, task_plan};

mod executors;
mod summary;

pub use summary::StageSummary;
use summary::job_result;

/// How often executors send heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// An executor silent for this long is considered lost.
pub const EXECUTOR_TIMEOUT: Duration = Duration::from_secs(5);

/// Most jobs kept at once (running, or finished with results not yet read).
pub const MAX_ACTIVE_JOBS: usize = 1024;

/// How a job ended (or that it hasn't).
#[derive(Debug, Clone)]
pub enum JobOutcome {
    /// Still running.
    Running,
    /// All stages done; the result is in the final stage's files.
    Succeeded(Arc<JobResult>),
    /// A task failed or an executor was lost.
    Failed(CodedError),
    /// Cancelled by the client.
    Cancelled,
}

/// What a finished job leaves: where its result is, and what each stage did.
#[derive(Debug)]
pub struct JobResult {
    /// Files of the final stage, in partition order.
    pub result_files: Vec<ShuffleLocation>,
    /// Per stage: id, tasks, rows and bytes written, wall time.
    pub stages: Vec<StageSummary>,
}

#[derive(Debug)]
struct ExecutorSlot {
    address: String,
    slots: usize,
    last_seen: Instant,
    client: ExecutorControlClient<Channel>,
}

#[derive(Debug, Clone)]
enum TaskState {
    Pending,
    /// Sent to the executor, not yet accepted by it.
    Launching {
        executor_id: String,
    },
    /// Accepted by the executor as its launch number `launch` (`None` once it registered
    /// again: the task is then judged by any heartbeat, see `state/executors.rs`).
    Running {
        executor_id: String,
        launch: Option<u64>,
    },
    Done {
        executor_id: String,
        outputs: Vec<floe_proto::ShuffleOutput>,
        metrics: TaskMetrics,
    },
}

#[derive(Debug)]
struct StageRun {
    stage: Stage,
    tasks: Vec<TaskState>,
    /// When all its inputs were done (the job's submission for a stage without inputs).
    ready: Option<Instant>,
    /// Its first task's launch.
    started: Option<Instant>,
    /// Its last task's report.
    finished: Option<Instant>,
}

impl StageRun {
    fn is_done(&self) -> bool {
        self.tasks
            .iter()
            .all(|t| matches!(t, TaskState::Done { .. }))
    }
}

struct Job {
    /// Submission order.
    seq: u64,
    query_id: Option<String>,
    stages: Vec<StageRun>,
    runtime: Arc<RuntimeEnv>,
    session_options: HashMap<String, String>,
    outcome: watch::Sender<JobOutcome>,
    executors_used: BTreeSet<String>,
}

impl Job {
    fn is_running(&self) -> bool {
        matches!(*self.outcome.borrow(), JobOutcome::Running)
    }

    /// Notes `now` as the time each stage whose inputs are all done became ready, so a
    /// stage's wait for slots shows in `EXPLAIN ANALYZE`.
    fn mark_ready_stages(&mut self, now: Instant) {
        for index in 0..self.stages.len() {
            if self.stages[index].ready.is_some() {
                continue;
            }
            let inputs_done = self.stages[index]
                .stage
                .inputs
                .iter()
                .all(|input| self.stages.get(*input).is_some_and(StageRun::is_done));
            if inputs_done {
                self.stages[index].ready = Some(now);
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    executors: BTreeMap<String, ExecutorSlot>,
    jobs: BTreeMap<String, Job>,
    next_seq: u64,
}

/// Executors and jobs; see the module docs.
#[derive(Default)]
pub struct ClusterState {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState").finish_non_exhaustive()
    }
}

/// A task bound to an executor, to be sent once the lock is released.
struct Launch {
    job_id: String,
    executor_id: String,
    address: String,
    client: ExecutorControlClient<Channel>,
    request: LaunchTaskRequest,
}

impl ClusterState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state for the read-mostly
        // uses that follow; recovering beats taking the whole scheduler down.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a job; the receiver reports how it ends.
    pub fn submit(
        self: &Arc<Self>,
        job_id: &str,
        query_id: Option<String>,
        graph: StageGraph,
        runtime: Arc<RuntimeEnv>,
        session_options: HashMap<String, String>,
    ) -> Result<watch::Receiver<JobOutcome>> {
        let (sender, receiver) = watch::channel(JobOutcome::Running);
        {
            let mut inner = self.lock();
            if inner.executors.is_empty() {
                return Err(SchedulerError::NoExecutors);
            }
            if inner.jobs.len() >= MAX_ACTIVE_JOBS {
                return Err(SchedulerError::Busy(format!(
                    "the scheduler already runs {MAX_ACTIVE_JOBS} jobs; try again later"
                )));
            }
            let stages = graph
                .stages
                .into_iter()
                .map(|stage| StageRun {
                    tasks: vec![TaskState::Pending; stage.task_count()],
                    stage,
                    ready: None,
                    started: None,
                    finished: None,
                })
                .collect();
            inner.next_seq += 1;
            let seq = inner.next_seq;
            let job = Job {
                seq,
                query_id,
                stages,
                runtime,
                session_options,
                outcome: sender,
                executors_used: BTreeSet::new(),
            };
            // A plan with no partitions anywhere has nothing to run: done at once, rather than
            // waiting for a task report that never comes.
            if job.stages.iter().all(StageRun::is_done) {
                let result = job_result(&job, &inner.executors)?;
                job.outcome
                    .send_replace(JobOutcome::Succeeded(Arc::new(result)));
            }
            inner.jobs.insert(job_id.to_string(), job);
        }
        self.schedule();
        Ok(receiver)
    }

    /// Binds runnable tasks to free slots and sends them.
    pub fn schedule(self: &Arc<Self>) {
        let mut launches = Vec::new();
        let mut failures = Vec::new();
        {
            let mut inner = self.lock();
            let Inner {
                executors, jobs, ..
            } = &mut *inner;
            let mut free = free_slots(executors, jobs);
            // First come, first served: older jobs take free slots first.
            let mut order: Vec<(u64, String)> = jobs
                .iter()
                .filter(|(_, job)| job.is_running())
                .map(|(id, job)| (job.seq, id.clone()))
                .collect();
            order.sort();
            let now = Instant::now();
            for job in jobs.values_mut() {
                job.mark_ready_stages(now);
            }
            'jobs: for (_, job_id) in &order {
                let Some(job) = jobs.get_mut(job_id) else {
                    continue;
                };
                for stage_index in 0..job.stages.len() {
                    let runnable = job.stages[stage_index]
                        .stage
                        .inputs
                        .iter()
                        .all(|input| job.stages.get(*input).is_some_and(StageRun::is_done));
                    if !runnable {
                        continue;
                    }
                    for partition in 0..job.stages[stage_index].tasks.len() {
                        if !matches!(job.stages[stage_index].tasks[partition], TaskState::Pending) {
                            continue;
                        }
                        let Some(executor_id) = free
                            .iter()
                            .filter(|(_, n)| **n > 0)
                            .max_by_key(|(_, n)| **n)
                            .map(|(id, _)| id.clone())
                        else {
                            break 'jobs;
                        };
                        let request =
                            match build_launch(job_id, job, executors, stage_index, partition) {
                                Ok(request) => request,
                                Err(failure) => {
                                    failures.push((job_id.clone(), failure));
                                    continue 'jobs;
                                }
                            };
                        let Some(executor) = executors.get(&executor_id) else {
                            break 'jobs;
                        };
                        if let Some(n) = free.get_mut(&executor_id) {
                            *n = n.saturating_sub(1);
                        }
                        job.executors_used.insert(executor_id.clone());
                        let stage = &mut job.stages[stage_index];
                        stage.started.get_or_insert_with(Instant::now);
                        stage.tasks[partition] = TaskState::Launching {
                            executor_id: executor_id.clone(),
                        };
                        launches.push(Launch {
                            job_id: job_id.clone(),
                            executor_id: executor_id.clone(),
                            address: executor.address.clone(),
                            client: executor.client.clone(),
                            request,
                        });
                    }
                }
            }
        }
        for (job_id, failure) in failures {
            self.fail_job(&job_id, failure);
        }
        for launch in launches {
            self.send_launch(launch);
        }
    }

    /// Ends a running job with an error and stops its other tasks.
    pub fn fail_job(&self, job_id: &str, failure: CodedError) {
        let logged = format!(
            "job {job_id} failed ({:?}): {}",
            failure.code, failure.message
        );
        if self.stop_job(job_id, JobOutcome::Failed(failure)) {
            log::warn!("{logged}");
        }
    }

    /// Cancels a running job.
    pub fn cancel_job(&self, job_id: &str) {
        self.stop_job(job_id, JobOutcome::Cancelled);
    }

    /// Ends a running job with `outcome` and cancels its tasks; `false` if it was not running.
    fn stop_job(&self, job_id: &str, outcome: JobOutcome) -> bool {
        let targets = {
            let inner = self.lock();
            let Some(job) = inner.jobs.get(job_id) else {
                return false;
            };
            if !job.is_running() {
                return false;
            }
            job.outcome.send_replace(outcome);
            executor_clients(&inner, &job.executors_used)
        };
        for (mut client, _) in targets {
            let request = CancelJobRequest {
                job_id: job_id.to_string(),
            };
            tokio::spawn(async move {
                let _ = client.cancel_job(request).await;
            });
        }
        true
    }

    /// Forgets a job whose result has been read (or abandoned) and deletes its files.
    pub fn finish_job(self: &Arc<Self>, job_id: &str) {
        let targets = {
            let mut inner = self.lock();
            let Some(job) = inner.jobs.remove(job_id) else {
                return;
            };
            if job.is_running() {
                job.outcome.send_replace(JobOutcome::Cancelled);
            }
            executor_clients(&inner, &job.executors_used)
        };
        for (mut client, _) in targets {
            let cancel = CancelJobRequest {
                job_id: job_id.to_string(),
            };
            let remove = RemoveJobDataRequest {
                job_id: job_id.to_string(),
            };
            tokio::spawn(async move {
                let _ = client.cancel_job(cancel).await;
                let _ = client.remove_job_data(remove).await;
            });
        }
        // Its tasks no longer count against their executors' slots.
        self.schedule();
    }

    /// Progress of every job of a query; `None` for an unknown query.
    pub fn query_progress(&self, query_id: &str) -> Option<QueryProgress> {
        let inner = self.lock();
        let mut progress = QueryProgress {
            query_id: query_id.to_string(),
            ..Default::default()
        };
        let mut found = false;
        for job in inner
            .jobs
            .values()
            .filter(|job| job.query_id.as_deref() == Some(query_id))
        {
            found = true;
            for stage in &job.stages {
                progress.stages_total += 1;
                progress.stages_done += u32::from(stage.is_done());
                for task in &stage.tasks {
                    progress.tasks_total += 1;
                    match task {
                        TaskState::Done { .. } => progress.tasks_done += 1,
                        TaskState::Running { .. } | TaskState::Launching { .. } => {
                            progress.tasks_running += 1
                        }
                        TaskState::Pending => {}
                    }
                }
            }
        }
        found.then_some(progress)
    }

    /// Running jobs of a query.
    pub fn jobs_of_query(&self, query_id: &str) -> Vec<String> {
        let inner = self.lock();
        inner
            .jobs
            .iter()
            .filter(|(_, job)| job.query_id.as_deref() == Some(query_id))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Free slots per executor, from the tasks this scheduler sees launching or running (of any
/// job: a failed job's tasks run until their cancellation lands) rather than from a counter a
/// lost report could leak; a task found lost goes back to pending and frees its slot.
fn free_slots(
    executors: &BTreeMap<String, ExecutorSlot>,
    jobs: &BTreeMap<String, Job>,
) -> BTreeMap<String, usize> {
    let mut free: BTreeMap<String, usize> = executors
        .iter()
        .map(|(id, e)| (id.clone(), e.slots))
        .collect();
    for task in jobs
        .values()
        .flat_map(|job| job.stages.iter())
        .flat_map(|stage| stage.tasks.iter())
    {
        if let TaskState::Running { executor_id, .. } | TaskState::Launching { executor_id } = task
            && let Some(n) = free.get_mut(executor_id)
        {
            *n = n.saturating_sub(1);
        }
    }
    free
}

fn executor_clients(
    inner: &Inner,
    ids: &BTreeSet<String>,
) -> Vec<(ExecutorControlClient<Channel>, String)> {
    ids.iter()
        .filter_map(|id| inner.executors.get(id))
        .map(|e| (e.client.clone(), e.address.clone()))
        .collect()
}

/// The files stage `stage_id` wrote, by output partition, for the readers of its consumers.
fn stage_locations(
    job: &Job,
    executors: &BTreeMap<String, ExecutorSlot>,
    stage_id: usize,
) -> Result<ReaderLocations> {
    let stage = job
        .stages
        .get(stage_id)
        .ok_or_else(|| SchedulerError::Internal(format!("no stage {stage_id}")))?;
    let partitioned = stage.stage.plan.partitioning().is_some();
    let outputs = stage.stage.plan.output_partition_count();
    let partitions = if partitioned {
        outputs
    } else {
        stage.tasks.len()
    };
    let mut locations: ReaderLocations = vec![Vec::new(); partitions];
    for (map_partition, task) in stage.tasks.iter().enumerate() {
        let TaskState::Done {
            executor_id,
            outputs,
            ..
        } = task
        else {
            return Err(SchedulerError::Internal(format!(
                "stage {stage_id} read before it finished"
            )));
        };
        let address = executors
            .get(executor_id)
            .map(|e| e.address.clone())
            .ok_or_else(|| {
                SchedulerError::JobFailed(format!(
                    "executor {executor_id}, which holds output of stage {stage_id}, is gone"
                ))
            })?;
        for output in outputs {
            let target = if partitioned {
                output.output_partition as usize
            } else {
                map_partition
            };
            if let Some(slot) = locations.get_mut(target) {
                slot.push(ShuffleLocation {
                    executor_id: executor_id.clone(),
                    address: address.clone(),
                    path: output.path.clone(),
                    ranges: output.ranges.iter().map(|r| r.start..r.end).collect(),
                    rows: output.rows,
                    bytes: output.bytes,
                });
            }
        }
    }
    Ok(locations)
}

/// One task's launch request, refused here when it would exceed the gRPC message limit (the
/// executor could not decode it, and the transport error would look like a dead executor).
fn build_launch(
    job_id: &str,
    job: &Job,
    executors: &BTreeMap<String, ExecutorSlot>,
    stage_index: usize,
    partition: usize,
) -> Result<LaunchTaskRequest, CodedError> {
    let stage = &job.stages[stage_index].stage;
    let locations_of = |input: usize| stage_locations(job, executors, input);
    let plan = task_plan(stage, partition, &locations_of, &job.runtime).map_err(build_failure)?;
    let bytes = physical_plan_to_bytes_with_extension_codec(plan, &FloePhysicalCodec)
        .map_err(|e| build_failure(e.into()))?;
    let request = LaunchTaskRequest {
        task: Some(TaskId {
            job_id: job_id.to_string(),
            stage_id: stage.id as u32,
            partition: partition as u32,
        }),
        plan: bytes.to_vec(),
        session_options: job.session_options.clone(),
    };
    let size = request.encoded_len();
    if size > MAX_GRPC_MESSAGE_BYTES {
        return Err(CodedError::new(
            Code::ResourceExhausted,
            format!(
                "the plan of task {partition} of stage {} is {size} bytes, over the \
                 {MAX_GRPC_MESSAGE_BYTES}-byte gRPC message limit (MAX_GRPC_MESSAGE_BYTES); \
                 a large literal in the query may be the cause",
                stage.id
            ),
        ));
    }
    Ok(request)
}

/// Why a task's plan could not be built: the executor holding an input is gone, or a bug.
pub(super) fn build_failure(err: SchedulerError) -> CodedError {
    CodedError::new(err.code(), err.to_string())
}
