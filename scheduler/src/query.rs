//! `DistributedQueryExec` and `DistributedQueryPlanner`: how a session's plans run on the cluster.
//!
//! The scheduler's sessions use [`DistributedQueryPlanner`]: DataFusion makes and optimizes the
//! physical plan as usual, then the whole plan is wrapped in a [`DistributedQueryExec`] whose
//! one partition submits the plan as a job ([`StagePlanner`] stages on the executors) and
//! streams the final stage's files back. A plan over `information_schema` (the session's own
//! catalogs and settings, which only the scheduler has) runs in the scheduler whole. Three plan
//! roots stay in the scheduler:
//! - a `DataSinkExec` (INSERT, CTAS): the sink commits to the catalog, which only the scheduler
//!   talks to, so it runs here over the distributed query's rows;
//! - `AnalyzeExec` (EXPLAIN ANALYZE): it runs the distributed query and prints, per stage, the
//!   tasks, rows, bytes shuffled and time;
//! - `EXPLAIN`: prints the stage DAG in place of the physical plan.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::common::display::{PlanType, StringifiedPlan};
use datafusion::common::{DataFusionError, Result as DfResult, internal_err};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;
use floe_common::options::FloeOptions;
use floe_proto::status::CodedError;
use floe_shuffle::MAX_CONCURRENT_SHUFFLE_FETCHES;
use floe_shuffle::flight::{FlightClientPool, fetch_remote};
use futures::{StreamExt, TryStreamExt};

use crate::planner::{PlanLimits, StagePlanner};
use crate::state::{ClusterState, JobOutcome, JobResult};

tokio::task_local! {
    /// The Flight SQL query a statement runs for, so its jobs show up in that query's progress
    /// and can be cancelled by its id.
    pub static CURRENT_QUERY: String;
}

/// Plans through DataFusion, then hands the plan to the cluster; see the module docs.
#[derive(Debug)]
pub struct DistributedQueryPlanner {
    cluster: Arc<ClusterState>,
    results: Arc<FlightClientPool>,
}

impl DistributedQueryPlanner {
    /// A planner submitting to `cluster`, reading results through `results`.
    pub fn new(cluster: Arc<ClusterState>, results: Arc<FlightClientPool>) -> Self {
        Self { cluster, results }
    }

    fn distribute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        settings: RunSettings,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if reads_session_state(plan.as_ref()) {
            return Ok(plan);
        }
        if plan.as_any().is::<DataSinkExec>() || plan.as_any().is::<AnalyzeExec>() {
            let children = plan
                .children()
                .into_iter()
                .map(|child| self.distribute(Arc::clone(child), settings))
                .collect::<DfResult<Vec<_>>>()?;
            return plan.with_new_children(children);
        }
        Ok(Arc::new(DistributedQueryExec::try_new(
            plan,
            Arc::clone(&self.cluster),
            Arc::clone(&self.results),
            settings,
        )?))
    }
}

#[async_trait]
impl QueryPlanner for DistributedQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &SessionState,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let limits = plan_limits(session_state.config());
        let planning_started = Instant::now();
        let planner = DefaultPhysicalPlanner::default();
        let plan = planner
            .create_physical_plan(logical_plan, session_state)
            .await?;
        let settings = RunSettings {
            limits,
            physical_planning: planning_started.elapsed(),
        };
        if let (LogicalPlan::Explain(explain), Some(explain_exec)) =
            (logical_plan, plan.as_any().downcast_ref::<ExplainExec>())
        {
            let input = planner
                .create_physical_plan(&explain.plan, session_state)
                .await?;
            let graph = StagePlanner::plan("explain", input, limits)?;
            let plans = explain_exec
                .stringified_plans()
                .iter()
                .map(|p| match p.plan_type {
                    PlanType::FinalPhysicalPlan => {
                        StringifiedPlan::new(PlanType::FinalPhysicalPlan, graph.display())
                    }
                    _ => p.clone(),
                })
                .collect();
            return Ok(Arc::new(ExplainExec::new(
                explain_exec.schema(),
                plans,
                explain_exec.verbose(),
            )));
        }
        self.distribute(plan, settings)
    }
}

/// How a plan runs on the cluster, from the session that planned it.
#[derive(Debug, Clone, Copy)]
struct RunSettings {
    /// The session's `floe.*` limits on cutting the plan.
    limits: PlanLimits,
    /// DataFusion's physical planning (scans plan their files from manifests here).
    physical_planning: Duration,
}

/// Where a run's time went, for `EXPLAIN ANALYZE`.
#[derive(Debug, Clone)]
struct RunTimes {
    result: Arc<JobResult>,
    /// Cutting the plan into stages.
    stage_planning: Duration,
    /// From submission to the last stage's last report.
    job: Duration,
    /// Streaming the final stage's files to the caller; `None` until the stream ends.
    result_fetch: Option<Duration>,
}

/// Whether `plan` reads the scheduler's own session state (`information_schema`, `SHOW ALL`:
/// a `StreamingTableExec` over the session's catalogs and settings). Only the scheduler has it,
/// and such a node cannot travel, so the plan runs where it was planned.
fn reads_session_state(plan: &dyn ExecutionPlan) -> bool {
    plan.as_any().is::<StreamingTableExec>()
        || plan
            .children()
            .iter()
            .any(|child| reads_session_state(child.as_ref()))
}

/// The session's `floe.*` limits on cutting plans (the defaults if it has none).
fn plan_limits(config: &SessionConfig) -> PlanLimits {
    match config.options().extensions.get::<FloeOptions>() {
        Some(options) => PlanLimits::of(options),
        None => PlanLimits::of(&FloeOptions::default()),
    }
}

/// Runs a plan as a job on the cluster; see the module docs.
#[derive(Debug)]
pub struct DistributedQueryExec {
    plan: Arc<dyn ExecutionPlan>,
    cluster: Arc<ClusterState>,
    results: Arc<FlightClientPool>,
    properties: Arc<PlanProperties>,
    last_run: Arc<Mutex<Option<RunTimes>>>,
    settings: RunSettings,
}

impl DistributedQueryExec {
    /// Wraps `plan`; its stages are planned when it runs (each run is a job of its own).
    fn try_new(
        plan: Arc<dyn ExecutionPlan>,
        cluster: Arc<ClusterState>,
        results: Arc<FlightClientPool>,
        settings: RunSettings,
    ) -> DfResult<Self> {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(plan.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            plan,
            cluster,
            results,
            properties: Arc::new(properties),
            last_run: Arc::new(Mutex::new(None)),
            settings,
        })
    }
}

impl DistributedQueryExec {
    /// The stage DAG as text; planned only when shown.
    fn stages_text(&self) -> String {
        StagePlanner::plan("explain", Arc::clone(&self.plan), self.settings.limits)
            .map(|graph| graph.display().trim_end().to_string())
            .unwrap_or_else(|e| format!("(stages cannot be planned: {e})"))
    }
}

impl DisplayAs for DistributedQueryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let last_run = self.last_run.lock().ok().and_then(|run| run.clone());
        let Some(run) = last_run else {
            return write!(f, "DistributedQueryExec:\n{}", self.stages_text());
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "DistributedQueryExec: stages={}, physical_planning={:.1}ms, stage_planning={:.1}ms, \
             job={:.1}ms, result_fetch={}",
            run.result.stages.len(),
            ms(self.settings.physical_planning),
            ms(run.stage_planning),
            ms(run.job),
            run.result_fetch
                .map_or_else(|| "unfinished".to_string(), |d| format!("{:.1}ms", ms(d)))
        )?;
        for stage in run.result.stages.iter().rev() {
            write!(
                f,
                "  Stage {}: tasks={}, executors={}, input_rows={}, output_rows={}, \
                 bytes_shuffled={}, elapsed={:.1}ms, slot_wait={:.1}ms, longest_task={:.1}ms, \
                 task_time={:.1}ms, beyond_longest_task={:.1}ms",
                stage.stage_id,
                stage.tasks,
                stage.executors.len(),
                stage.input_rows,
                stage.output_rows,
                stage.output_bytes,
                ms(stage.elapsed),
                ms(stage.slot_wait),
                ms(stage.longest_task),
                ms(stage.task_time),
                ms(stage.beyond_longest_task()),
            )?;
            if stage.delete_files_read > 0 {
                write!(
                    f,
                    ", delete_files_read={}, rows_deleted={}",
                    stage.delete_files_read, stage.rows_deleted
                )?;
            }
            writeln!(f)?;
        }
        write!(f, "{}", self.stages_text())
    }
}

impl ExecutionPlan for DistributedQueryExec {
    fn name(&self) -> &str {
        "DistributedQueryExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("DistributedQueryExec has one partition, asked for {partition}");
        }
        let job_id = uuid::Uuid::new_v4().simple().to_string();
        let stage_planning_started = Instant::now();
        let graph = StagePlanner::plan(&job_id, Arc::clone(&self.plan), self.settings.limits)?;
        let stage_planning = stage_planning_started.elapsed();
        let query_id = CURRENT_QUERY.try_with(Clone::clone).ok();
        let options: HashMap<String, String> = context
            .session_config()
            .options()
            .entries()
            .into_iter()
            // Floe's own options (and any other extension's) are the scheduler's; executors
            // run DataFusion's.
            .filter(|entry| entry.key.starts_with("datafusion."))
            .filter_map(|entry| entry.value.map(|value| (entry.key, value)))
            .collect();
        let cluster = Arc::clone(&self.cluster);
        let results = Arc::clone(&self.results);
        let last_run = Arc::clone(&self.last_run);
        let runtime = context.runtime_env();
        let ordered = self.plan.properties().output_ordering().is_some();
        let stream = futures::stream::once(async move {
            let submitted = Instant::now();
            let mut outcome = cluster
                .submit(&job_id, query_id, graph, runtime, options)
                .map_err(DataFusionError::from)?;
            // From here on, dropping the stream (a cancelled query) stops and forgets the job.
            let guard = JobGuard {
                cluster: Arc::clone(&cluster),
                job_id: job_id.clone(),
            };
            let result = loop {
                let current = outcome.borrow_and_update().clone();
                match current {
                    JobOutcome::Running => {}
                    JobOutcome::Succeeded(result) => break result,
                    JobOutcome::Failed(failure) => return Err(failure.into_datafusion()),
                    JobOutcome::Cancelled => {
                        return Err(CodedError::new(tonic::Code::Cancelled, "query cancelled")
                            .into_datafusion());
                    }
                }
                if outcome.changed().await.is_err() {
                    return Err(DataFusionError::Execution(format!(
                        "job {job_id} was dropped by the scheduler"
                    )));
                }
            };
            let fetch_started = Instant::now();
            if let Ok(mut last) = last_run.lock() {
                *last = Some(RunTimes {
                    result: Arc::clone(&result),
                    stage_planning,
                    job: fetch_started.duration_since(submitted),
                    result_fetch: None,
                });
            }
            let files = result.result_files.clone();
            let fetched = futures::stream::once(async move {
                if let Ok(mut last) = last_run.lock()
                    && let Some(run) = last.as_mut()
                {
                    run.result_fetch = Some(fetch_started.elapsed());
                }
                None
            })
            .filter_map(futures::future::ready);
            let files = futures::stream::iter(files)
                .filter(|file| futures::future::ready(file.rows > 0))
                .map(move |file| fetch_remote(&results, &file));
            // Rows in an order are in one file; files of several tasks have none among them,
            // so they are fetched at once rather than a round trip each.
            let batches = if ordered {
                files.try_flatten().boxed()
            } else {
                files
                    .try_flatten_unordered(MAX_CONCURRENT_SHUFFLE_FETCHES)
                    .boxed()
            };
            let batches = batches.chain(fetched).map(move |batch| {
                // Keeps the job (and its files) alive until the last batch is read.
                let _ = &guard;
                batch
            });
            Ok::<_, DataFusionError>(batches)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.plan.schema(),
            stream,
        )))
    }
}

/// Cancels (if still running) and forgets a job when its result stream goes away.
struct JobGuard {
    cluster: Arc<ClusterState>,
    job_id: String,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.cluster.finish_job(&self.job_id);
    }
}
