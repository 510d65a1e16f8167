//! `TaskRunner`: the `ExecutorControl` service; runs tasks in slots and reports them.
//!
//! A task is held from its launch until the scheduler acknowledges its report: reports are
//! retried with backoff (up to [`REPORT_RETRY_MAX_DELAY`] apart) until acknowledged, and every
//! heartbeat lists the held tasks, so the scheduler can tell a task still running or still
//! reporting from one that is gone (lost) and cancel the ones it no longer knows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use datafusion::common::DataFusionError;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{SessionStateDefaults, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::filter_pushdown::FilterPushdown;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec;
use floe_common::config::DEFAULT_METADATA_CACHE_MIB;
use floe_core::codec::FloePhysicalCodec;
use floe_proto::executor_control_server::ExecutorControl;
use floe_proto::scheduler_control_client::SchedulerControlClient;
use floe_proto::status::{CodedError, is_transport_failure, status_code};
use floe_proto::task_status_report::Result as TaskResult;
use floe_proto::{
    CancelJobRequest, CancelJobResponse, CancelTasksRequest, CancelTasksResponse,
    LaunchTaskRequest, LaunchTaskResponse, RemoveJobDataRequest, RemoveJobDataResponse,
    ShuffleOutput, TaskFailure, TaskId, TaskMetrics, TaskStatusReport, TaskSuccess,
};
use floe_shuffle::flight::ranges_to_proto;
use floe_shuffle::{ShuffleEnv, ShuffleReaderExec, ShuffleWriterExec, validate_job_id};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::join_filters::run_hash_joins_per_partition;

/// First pause between attempts to deliver a task report; it doubles after each failure up
/// to [`REPORT_RETRY_MAX_DELAY`]. A report is retried until the scheduler acknowledges it (or
/// refuses it outright, or cancels the task).
pub const REPORT_RETRY_MIN_DELAY: Duration = Duration::from_millis(100);

/// Longest pause between attempts to deliver a task report.
pub const REPORT_RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// The runtime tasks execute on: its own threads, one per slot, so CPU-bound operators never
/// delay heartbeats, task launches or shuffle serving on the executor's main runtime.
struct TaskRuntime(Option<tokio::runtime::Runtime>);

impl Drop for TaskRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks; an executor may be dropped inside async code.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs tasks; see the module docs.
pub struct TaskRunner {
    task_runtime: TaskRuntime,
    executor_id: String,
    work_dir: PathBuf,
    slots: Arc<Semaphore>,
    scheduler: SchedulerControlClient<Channel>,
    env: Arc<ShuffleEnv>,
    functions: SessionState,
    runtime: Arc<RuntimeEnv>,
    /// Tasks from launch to acknowledged report, and the launch count, under one lock.
    held: Mutex<Held>,
    /// Recently cancelled jobs, so a launch that races its job's cancellation is refused.
    cancelled: Mutex<std::collections::VecDeque<String>>,
}

/// Cancelled job ids remembered (oldest forgotten first).
pub const CANCELLED_JOBS_REMEMBERED: usize = 1024;

/// The tasks this executor holds and how many launches it has accepted, changed and read
/// together: a heartbeat's snapshot lists every held task of a launch numbered below its count.
#[derive(Default)]
struct Held {
    /// Launches accepted so far: the next launch's number.
    launches: u64,
    /// Tasks from launch to acknowledged report, by launch number.
    tasks: HashMap<u64, HeldTask>,
}

/// What a heartbeat reports of the held tasks, read in one snapshot.
pub struct HeldSnapshot {
    /// Launches accepted when the snapshot was taken.
    pub launches_accepted: u64,
    /// Every task held then: running, or with its report not yet acknowledged.
    pub tasks: Vec<TaskId>,
}

/// A task this executor holds: running, or finished with its report not yet acknowledged.
struct HeldTask {
    task: TaskId,
    /// The task's run on the task runtime.
    run: AbortHandle,
    /// What awaits the run and delivers its report (set right after it is spawned).
    reporter: Option<AbortHandle>,
}

impl HeldTask {
    fn is(&self, task: &TaskId) -> bool {
        self.task.job_id == task.job_id
            && self.task.stage_id == task.stage_id
            && self.task.partition == task.partition
    }

    /// Stops the run and drops the report.
    fn abort(&self) {
        self.run.abort();
        if let Some(reporter) = &self.reporter {
            reporter.abort();
        }
    }
}

impl TaskRunner {
    /// A runner with `slots` concurrent tasks.
    pub fn new(
        executor_id: String,
        work_dir: PathBuf,
        slots: usize,
        scheduler: SchedulerControlClient<Channel>,
    ) -> Self {
        let runtime = RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(DEFAULT_METADATA_CACHE_MIB * 1024 * 1024)
            .build_arc()
            .unwrap_or_else(|_| Arc::new(RuntimeEnv::default()));
        let functions = SessionStateBuilder::new()
            .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
            .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
            .with_window_functions(SessionStateDefaults::default_window_functions())
            .build();
        let task_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(slots.max(1))
            .thread_name("floe-task")
            .enable_all()
            .build()
            .ok();
        Self {
            task_runtime: TaskRuntime(task_runtime),
            env: Arc::new(ShuffleEnv::executor(executor_id.clone(), work_dir.clone())),
            executor_id,
            work_dir,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            scheduler,
            functions,
            runtime,
            held: Mutex::new(Held::default()),
            cancelled: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// The held tasks; a panic elsewhere while they were locked leaves them usable.
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every task held (running, or with its report not yet acknowledged) and the launches
    /// accepted, in one snapshot for a heartbeat.
    pub fn held_snapshot(&self) -> HeldSnapshot {
        let held = self.held();
        HeldSnapshot {
            launches_accepted: held.launches,
            tasks: held.tasks.values().map(|t| t.task.clone()).collect(),
        }
    }

    fn task_context(
        &self,
        task: &TaskId,
        options: &HashMap<String, String>,
    ) -> Result<Arc<TaskContext>, DataFusionError> {
        let config =
            SessionConfig::from_string_hash_map(options)?.with_extension(Arc::clone(&self.env));
        Ok(Arc::new(TaskContext::new(
            Some(format!(
                "{}/{}/{}",
                task.job_id, task.stage_id, task.partition
            )),
            task.job_id.clone(),
            config,
            self.functions.scalar_functions().clone(),
            self.functions.aggregate_functions().clone(),
            self.functions.window_functions().clone(),
            Arc::clone(&self.runtime),
        )))
    }

    async fn run_task(
        self: Arc<Self>,
        task: TaskId,
        plan: Vec<u8>,
        options: HashMap<String, String>,
    ) -> Result<TaskSuccess, DataFusionError> {
        let started = Instant::now();
        let context = self.task_context(&task, &options)?;
        let plan =
            physical_plan_from_bytes_with_extension_codec(&plan, &context, &FloePhysicalCodec)
                .map_err(|e| {
                    // Scheduler and executor disagree on the plan's form: not the query's fault.
                    CodedError::new(
                        Code::Internal,
                        format!("cannot decode the task's plan: {e}"),
                    )
                    .into_datafusion()
                })?;
        // Dynamic filters are snapshots after serialization; derive them again inside the
        // stage, where their producer and consumer run in this very task.
        let plan = FilterPushdown::new_post_optimization()
            .optimize(plan, context.session_config().options())?;
        let plan = run_hash_joins_per_partition(plan)?;
        let Some(writer) = plan.as_any().downcast_ref::<ShuffleWriterExec>() else {
            return Err(CodedError::new(
                Code::Internal,
                format!(
                    "a task plan must end in a ShuffleWriterExec, got {}",
                    plan.name()
                ),
            )
            .into_datafusion());
        };
        let files = writer
            .write_partition(task.partition as usize, context)
            .await?;
        let (shuffle_read_rows, shuffle_read_bytes) = shuffle_reads(&plan);
        let metrics = TaskMetrics {
            output_rows: files.iter().map(|f| f.rows).sum(),
            output_bytes: files.iter().map(|f| f.bytes).sum(),
            elapsed_micros: started.elapsed().as_micros() as u64,
            shuffle_read_rows,
            shuffle_read_bytes,
            delete_files_read: counter_sum(&plan, "delete_files_read"),
            rows_deleted: counter_sum(&plan, "rows_deleted"),
        };
        Ok(TaskSuccess {
            outputs: files
                .into_iter()
                .map(|f| ShuffleOutput {
                    output_partition: f.output_partition as u32,
                    ranges: ranges_to_proto(&f.ranges),
                    path: f.path,
                    rows: f.rows,
                    bytes: f.bytes,
                })
                .collect(),
            metrics: Some(metrics),
        })
    }

    /// Delivers a task's report, retrying with backoff until the scheduler acknowledges it.
    async fn report(&self, task: TaskId, result: TaskResult) {
        let report = TaskStatusReport {
            executor_id: self.executor_id.clone(),
            task: Some(task),
            result: Some(result),
        };
        let mut client = self.scheduler.clone();
        let mut delay = REPORT_RETRY_MIN_DELAY;
        for attempt in 1.. {
            match client.report_task_status(report.clone()).await {
                Ok(_) => return,
                // Sending it again cannot help; the scheduler's reconciliation finds the task
                // missing from the heartbeats and fails its job.
                Err(status) if !is_transport_failure(&status) => {
                    log::error!(
                        "the scheduler refused the report of {:?}: {}",
                        report.task,
                        status.message()
                    );
                    return;
                }
                Err(status) => {
                    log::warn!(
                        "cannot report task status (attempt {attempt}, next in {delay:?}): {}",
                        status.message()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(REPORT_RETRY_MAX_DELAY);
                }
            }
        }
    }

    /// Numbers a launch and holds its task (if it runs: `run`), under one lock, so every
    /// heartbeat counting this launch lists the task until its report is acknowledged. A task
    /// launched again (its first hand-off looked failed to the scheduler) replaces the older
    /// run, which neither runs on nor reports. Returns the launch's number.
    fn hold(&self, task: &TaskId, run: Option<AbortHandle>) -> u64 {
        let mut held = self.held();
        let launch = held.launches;
        held.launches += 1;
        if let Some(run) = run {
            held.tasks.retain(|_, older| {
                let replaced = older.is(task);
                if replaced {
                    older.abort();
                }
                !replaced
            });
            held.tasks.insert(
                launch,
                HeldTask {
                    task: task.clone(),
                    run,
                    reporter: None,
                },
            );
        }
        launch
    }

    fn set_reporter(&self, launch: u64, reporter: AbortHandle) {
        if let Some(task) = self.held().tasks.get_mut(&launch) {
            task.reporter = Some(reporter);
        }
    }

    /// The task's report was delivered (or refused): it is no longer held.
    fn release(&self, launch: u64) {
        self.held().tasks.remove(&launch);
    }
}

/// The counter `name` summed over every operator of `plan`.
fn counter_sum(plan: &Arc<dyn ExecutionPlan>, name: &str) -> u64 {
    let own = plan
        .metrics()
        .and_then(|metrics| metrics.sum_by_name(name))
        .map_or(0, |value| value.as_usize() as u64);
    own + plan
        .children()
        .into_iter()
        .map(|child| counter_sum(child, name))
        .sum::<u64>()
}

/// Rows and bytes the task's shuffle readers streamed.
fn shuffle_reads(plan: &Arc<dyn ExecutionPlan>) -> (u64, u64) {
    let mut rows = 0;
    let mut bytes = 0;
    if plan.as_any().is::<ShuffleReaderExec>()
        && let Some(metrics) = plan.metrics()
    {
        rows += metrics.output_rows().unwrap_or(0) as u64;
        bytes += metrics
            .sum_by_name("bytes_read")
            .map_or(0, |m| m.as_usize()) as u64;
    }
    for child in plan.children() {
        let (r, b) = shuffle_reads(child);
        rows += r;
        bytes += b;
    }
    (rows, bytes)
}

/// The `ExecutorControl` service over a shared [`TaskRunner`].
#[derive(Clone)]
pub struct ControlHandle(pub Arc<TaskRunner>);

#[tonic::async_trait]
impl ExecutorControl for ControlHandle {
    async fn launch_task(
        &self,
        request: Request<LaunchTaskRequest>,
    ) -> Result<Response<LaunchTaskResponse>, Status> {
        let request = request.into_inner();
        let task = request
            .task
            .ok_or_else(|| Status::invalid_argument("task without an id"))?;
        validate_job_id(&task.job_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let runner = Arc::clone(&self.0);
        let job_id = task.job_id.clone();
        let was_cancelled = runner
            .cancelled
            .lock()
            .map(|cancelled| cancelled.contains(&job_id))
            .unwrap_or(false);
        if was_cancelled {
            // Counted but not held: heartbeats from now on leave it out, as it does not run.
            let launch_seq = runner.hold(&task, None);
            tokio::spawn(async move { runner.report(task, TaskResult::Cancelled(true)).await });
            return Ok(Response::new(LaunchTaskResponse { launch_seq }));
        }
        let inner = {
            let runner = Arc::clone(&runner);
            let task = task.clone();
            let slots = Arc::clone(&runner.slots);
            let future = async move {
                let _permit = slots
                    .acquire_owned()
                    .await
                    .map_err(|_| DataFusionError::Execution("executor is shutting down".into()))?;
                runner
                    .run_task(task, request.plan, request.session_options)
                    .await
            };
            match &self.0.task_runtime.0 {
                Some(runtime) => runtime.spawn(future),
                None => tokio::spawn(future),
            }
        };
        // Held before the launch is acknowledged, so every heartbeat counting this launch lists
        // the task until its report lands: the scheduler judges it only by those.
        let launch = runner.hold(&task, Some(inner.abort_handle()));
        let reporter = {
            let runner = Arc::clone(&runner);
            tokio::spawn(async move {
                let result = match inner.await {
                    Ok(Ok(success)) => TaskResult::Success(success),
                    Ok(Err(err)) => TaskResult::Failure(TaskFailure {
                        message: err.to_string(),
                        code: status_code(&err) as i32,
                    }),
                    Err(join) if join.is_cancelled() => TaskResult::Cancelled(true),
                    Err(join) => TaskResult::Failure(TaskFailure {
                        message: format!("task panicked: {join}"),
                        code: Code::Internal as i32,
                    }),
                };
                runner.report(task, result).await;
                runner.release(launch);
            })
        };
        runner.set_reporter(launch, reporter.abort_handle());
        Ok(Response::new(LaunchTaskResponse { launch_seq: launch }))
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobRequest>,
    ) -> Result<Response<CancelJobResponse>, Status> {
        let job_id = &request.get_ref().job_id;
        if let Ok(mut cancelled) = self.0.cancelled.lock() {
            if cancelled.len() >= CANCELLED_JOBS_REMEMBERED {
                cancelled.pop_front();
            }
            cancelled.push_back(job_id.clone());
        }
        // The runs stop; their reporters still tell the scheduler they were cancelled.
        let held = self
            .0
            .held
            .lock()
            .map_err(|_| Status::internal("task table poisoned"))?;
        let mut tasks_cancelled = 0;
        for task in held.tasks.values().filter(|t| &t.task.job_id == job_id) {
            if !task.run.is_finished() {
                task.run.abort();
                tasks_cancelled += 1;
            }
        }
        Ok(Response::new(CancelJobResponse { tasks_cancelled }))
    }

    async fn cancel_tasks(
        &self,
        request: Request<CancelTasksRequest>,
    ) -> Result<Response<CancelTasksResponse>, Status> {
        let cancel = request.into_inner().tasks;
        let mut held = self
            .0
            .held
            .lock()
            .map_err(|_| Status::internal("task table poisoned"))?;
        // The scheduler does not know these tasks: nothing of theirs, run or report, is wanted.
        let mut tasks_cancelled = 0;
        held.tasks.retain(|_, task| {
            let unwanted = cancel.iter().any(|c| task.is(c));
            if unwanted {
                task.abort();
                tasks_cancelled += 1;
            }
            !unwanted
        });
        Ok(Response::new(CancelTasksResponse { tasks_cancelled }))
    }

    async fn remove_job_data(
        &self,
        request: Request<RemoveJobDataRequest>,
    ) -> Result<Response<RemoveJobDataResponse>, Status> {
        let job_id = &request.get_ref().job_id;
        validate_job_id(job_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.0.env.broadcast_cache.forget_job(job_id);
        let dir = self.0.work_dir.join(job_id);
        if dir.exists() {
            tokio::fs::remove_dir_all(&dir)
                .await
                .map_err(|e| Status::internal(format!("cannot remove {}: {e}", dir.display())))?;
        }
        Ok(Response::new(RemoveJobDataResponse {}))
    }
}
