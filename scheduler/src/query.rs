//! `DistributedQueryExec` and `DistributedQueryPlanner`: how a session's plans run on the cluster.
//!
//! The scheduler's sessions use [`DistributedQueryPlanner`]: DataFusion makes and optimizes the
//! physical plan as usual, then the whole plan is wrapped in a [`DistributedQueryExec`] whose
//! one partition submits the plan as a job ([`StagePlanner`] stages on the executors) and
//! streams the final stage's files back. Three plan roots stay in the scheduler:
//! - a `DataSinkExec` (INSERT, CTAS): the sink commits to the catalog, which only the scheduler
//!   talks to, so it runs here over the distributed query's rows;
//! - `AnalyzeExec` (EXPLAIN ANALYZE): it runs the distributed query and prints, per stage, the
//!   tasks, rows, bytes shuffled and time;
//! - `EXPLAIN`: prints the stage DAG in place of the physical plan.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

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
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use floe_core::shuffle::flight::{FlightClientPool, fetch_remote};
use floe_core::status::CodedError;
use futures::{StreamExt, TryStreamExt};

use crate::planner::StagePlanner;
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

    fn distribute(&self, plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
        if plan.as_any().is::<DataSinkExec>() || plan.as_any().is::<AnalyzeExec>() {
            let children = plan
                .children()
                .into_iter()
                .map(|child| self.distribute(Arc::clone(child)))
                .collect::<DfResult<Vec<_>>>()?;
            return plan.with_new_children(children);
        }
        Ok(Arc::new(DistributedQueryExec::try_new(
            plan,
            Arc::clone(&self.cluster),
            Arc::clone(&self.results),
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
        let planner = DefaultPhysicalPlanner::default();
        let plan = planner
            .create_physical_plan(logical_plan, session_state)
            .await?;
        if let (LogicalPlan::Explain(explain), Some(explain_exec)) =
            (logical_plan, plan.as_any().downcast_ref::<ExplainExec>())
        {
            let input = planner
                .create_physical_plan(&explain.plan, session_state)
                .await?;
            let graph = StagePlanner::plan("explain", input)?;
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
        self.distribute(plan)
    }
}

/// Runs a plan as a job on the cluster; see the module docs.
#[derive(Debug)]
pub struct DistributedQueryExec {
    plan: Arc<dyn ExecutionPlan>,
    cluster: Arc<ClusterState>,
    results: Arc<FlightClientPool>,
    properties: Arc<PlanProperties>,
    last_run: Arc<Mutex<Option<Arc<JobResult>>>>,
}

impl DistributedQueryExec {
    /// Wraps `plan`; its stages are planned when it runs (each run is a job of its own).
    pub fn try_new(
        plan: Arc<dyn ExecutionPlan>,
        cluster: Arc<ClusterState>,
        results: Arc<FlightClientPool>,
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
        })
    }
}

impl DistributedQueryExec {
    /// The stage DAG as text; planned only when shown.
    fn stages_text(&self) -> String {
        StagePlanner::plan("explain", Arc::clone(&self.plan))
            .map(|graph| graph.display().trim_end().to_string())
            .unwrap_or_else(|e| format!("(stages cannot be planned: {e})"))
    }
}

impl DisplayAs for DistributedQueryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let last_run = self.last_run.lock().ok().and_then(|run| run.clone());
        match last_run {
            None => write!(f, "DistributedQueryExec:\n{}", self.stages_text()),
            Some(result) => {
                writeln!(f, "DistributedQueryExec: stages={}", result.stages.len())?;
                for stage in result.stages.iter().rev() {
                    writeln!(
                        f,
                        "  Stage {}: tasks={}, executors={}, input_rows={}, output_rows={}, \
                         bytes_shuffled={}, elapsed={:.3}s",
                        stage.stage_id,
                        stage.tasks,
                        stage.executors.len(),
                        stage.input_rows,
                        stage.output_rows,
                        stage.output_bytes,
                        stage.elapsed.as_secs_f64()
                    )?;
                }
                write!(f, "{}", self.stages_text())
            }
        }
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
        let graph = StagePlanner::plan(&job_id, Arc::clone(&self.plan))?;
        let query_id = CURRENT_QUERY.try_with(Clone::clone).ok();
        let options: HashMap<String, String> = context
            .session_config()
            .options()
            .entries()
            .into_iter()
            .filter_map(|entry| entry.value.map(|value| (entry.key, value)))
            .collect();
        let cluster = Arc::clone(&self.cluster);
        let results = Arc::clone(&self.results);
        let last_run = Arc::clone(&self.last_run);
        let runtime = context.runtime_env();
        let stream = futures::stream::once(async move {
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
            if let Ok(mut last) = last_run.lock() {
                *last = Some(Arc::clone(&result));
            }
            let files = result.result_files.clone();
            let batches = futures::stream::iter(files)
                .filter(|file| futures::future::ready(file.rows > 0))
                .map(move |file| fetch_remote(&results, &file))
                .try_flatten()
                .map(move |batch| {
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
