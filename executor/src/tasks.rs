//! `TaskRunner`: the `ExecutorControl` service; runs tasks in slots and reports them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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
use floe_core::codec::FloePhysicalCodec;
use floe_core::config::DEFAULT_METADATA_CACHE_MIB;
use floe_core::proto::executor_control_server::ExecutorControl;
use floe_core::proto::scheduler_control_client::SchedulerControlClient;
use floe_core::proto::task_status_report::Result as TaskResult;
use floe_core::proto::{
    CancelJobRequest, CancelJobResponse, LaunchTaskRequest, LaunchTaskResponse,
    RemoveJobDataRequest, RemoveJobDataResponse, ShuffleOutput, TaskId, TaskMetrics,
    TaskStatusReport, TaskSuccess,
};
use floe_core::shuffle::{ShuffleEnv, ShuffleReaderExec, ShuffleWriterExec, validate_job_id};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::join_filters::run_hash_joins_per_partition;

/// Attempts to deliver a task report before giving up (the scheduler then sees the executor's
/// slot as busy until it expires the executor).
pub const REPORT_ATTEMPTS: usize = 3;

/// Pause between report attempts.
pub const REPORT_RETRY_DELAY: Duration = Duration::from_millis(200);

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
    running: Mutex<HashMap<String, Vec<AbortHandle>>>,
    /// Recently cancelled jobs, so a launch that races its job's cancellation is refused.
    cancelled: Mutex<std::collections::VecDeque<String>>,
}

/// Cancelled job ids remembered (oldest forgotten first).
pub const CANCELLED_JOBS_REMEMBERED: usize = 1024;

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
            running: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Tasks running now.
    pub fn running_tasks(&self) -> usize {
        self.running
            .lock()
            .map_or(0, |running| running.values().map(Vec::len).sum())
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
                    DataFusionError::Plan(format!("cannot decode the task's plan: {e}"))
                })?;
        // Dynamic filters are snapshots after serialization; derive them again inside the
        // stage, where their producer and consumer run in this very task.
        let plan = FilterPushdown::new_post_optimization()
            .optimize(plan, context.session_config().options())?;
        let plan = run_hash_joins_per_partition(plan)?;
        let Some(writer) = plan.as_any().downcast_ref::<ShuffleWriterExec>() else {
            return Err(DataFusionError::Plan(format!(
                "a task plan must end in a ShuffleWriterExec, got {}",
                plan.name()
            )));
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
        };
        Ok(TaskSuccess {
            outputs: files
                .into_iter()
                .map(|f| ShuffleOutput {
                    output_partition: f.output_partition as u32,
                    path: f.path,
                    rows: f.rows,
                    bytes: f.bytes,
                })
                .collect(),
            metrics: Some(metrics),
        })
    }

    async fn report(&self, task: TaskId, result: TaskResult) {
        let report = TaskStatusReport {
            executor_id: self.executor_id.clone(),
            task: Some(task),
            result: Some(result),
        };
        let mut client = self.scheduler.clone();
        for attempt in 1..=REPORT_ATTEMPTS {
            match client.report_task_status(report.clone()).await {
                Ok(_) => return,
                Err(status) if attempt < REPORT_ATTEMPTS => {
                    log::warn!(
                        "cannot report task status (attempt {attempt}): {}",
                        status.message()
                    );
                    tokio::time::sleep(REPORT_RETRY_DELAY).await;
                }
                Err(status) => log::error!("task status lost: {}", status.message()),
            }
        }
    }

    fn forget(&self, job_id: &str, handle_id: tokio::task::Id) {
        if let Ok(mut running) = self.running.lock()
            && let Some(handles) = running.get_mut(job_id)
        {
            handles.retain(|h| h.id() != handle_id);
            if handles.is_empty() {
                running.remove(job_id);
            }
        }
    }
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
            tokio::spawn(async move { runner.report(task, TaskResult::Cancelled(true)).await });
            return Ok(Response::new(LaunchTaskResponse {}));
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
        let inner_abort = inner.abort_handle();
        let inner_id = inner_abort.id();
        if let Ok(mut running) = runner.running.lock() {
            running.entry(job_id.clone()).or_default().push(inner_abort);
        }
        tokio::spawn(async move {
            let result = match inner.await {
                Ok(Ok(success)) => TaskResult::Success(success),
                Ok(Err(err)) => TaskResult::Failure(err.to_string()),
                Err(join) if join.is_cancelled() => TaskResult::Cancelled(true),
                Err(join) => TaskResult::Failure(format!("task panicked: {join}")),
            };
            runner.forget(&job_id, inner_id);
            runner.report(task, result).await;
        });
        Ok(Response::new(LaunchTaskResponse {}))
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
        let handles = self
            .0
            .running
            .lock()
            .map_err(|_| Status::internal("task table poisoned"))?
            .remove(job_id)
            .unwrap_or_default();
        for handle in &handles {
            handle.abort();
        }
        Ok(Response::new(CancelJobResponse {
            tasks_cancelled: handles.len() as u32,
        }))
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
