//! `StagePlanner`: cuts an optimized DataFusion physical plan into a DAG of stages.
//!
//! A plan whose scans read little runs as one stage of one task, exchanges and all
//! ([`crate::single_task`]). Otherwise a stage is a plan that runs one task per output
//! partition without moving rows between partitions, and the plan is cut at every exchange:
//! - `RepartitionExec` (hash or round robin): the input becomes a stage ending in a
//!   [`ShuffleWriterExec`] with that partitioning; the exchange becomes a [`ShuffleReaderExec`].
//! - `CoalescePartitionsExec` / `SortPreservingMergeExec` over several partitions: the input
//!   becomes a stage writing one file per task; the merge stays in the consuming stage, over a
//!   reader with one partition per producing task. A reader under a merge in a stage of several
//!   tasks is a broadcast (a join's build side): every task reads it whole, and each executor
//!   fetches it once.
//!
//! Before cutting, joins that would be wrong or slow with one build-side copy per task are
//! re-planned ([`crate::build_sides`]).
//!
//! [`task_plan`] turns a stage into one task's plan: shuffle readers get the files of their
//! input stage, and scans and readers keep only the files the task's partition reads, so a task
//! message grows with the task, not with the table.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, displayable};
use floe_common::options::FloeOptions;
use floe_iceberg::scan::IcebergScanExec;
use floe_shuffle::{ColumnEquivalences, ShuffleLocation, ShuffleReaderExec, ShuffleWriterExec};

use crate::build_sides::make_build_sides_safe;
use crate::error::{Result, SchedulerError};
use crate::semi_join_reduction::reduce_semi_joins;
use crate::single_task;

/// One stage of a job.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Stage id, unique within the job; stages are numbered in the order they can run.
    pub id: usize,
    /// The stage's plan; its root is a [`ShuffleWriterExec`].
    pub plan: Arc<ShuffleWriterExec>,
    /// Stages whose output this one reads.
    pub inputs: Vec<usize>,
}

impl Stage {
    /// Tasks of the stage (one per partition of the writer's input).
    pub fn task_count(&self) -> usize {
        self.plan.input().output_partitioning().partition_count()
    }
}

/// A job's stages; the last one produces the query's result.
#[derive(Debug, Clone)]
pub struct StageGraph {
    /// Stages in id order; every stage's inputs have smaller ids.
    pub stages: Vec<Stage>,
}

impl StageGraph {
    /// The stage whose output is the result.
    pub fn final_stage(&self) -> Result<&Stage> {
        self.stages
            .last()
            .ok_or_else(|| SchedulerError::Internal("job without stages".into()))
    }

    /// The DAG as text, for `EXPLAIN`.
    pub fn display(&self) -> String {
        let mut text = String::new();
        for stage in self.stages.iter().rev() {
            let inputs = if stage.inputs.is_empty() {
                String::new()
            } else {
                format!(
                    ", reads stages {}",
                    stage
                        .inputs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                text,
                "Stage {} ({} tasks{inputs}):",
                stage.id,
                stage.task_count()
            );
            let plan = displayable(stage.plan.as_ref() as &dyn ExecutionPlan)
                .indent(false)
                .to_string();
            for line in plan.lines() {
                let _ = writeln!(text, "  {line}");
            }
        }
        text
    }
}

/// The session's limits on how a plan is cut ([`floe_common::options::FloeOptions`]).
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    /// `floe.single_task_max_scan_bytes`: a plan reading at most this runs as one task.
    pub single_task_max_scan_bytes: u64,
    /// `floe.semi_join_reduction_max_scan_bytes`: largest reducer of a semi-join reduction.
    pub semi_join_reduction_max_scan_bytes: u64,
    /// `floe.broadcast_max_scan_bytes`: largest table broadcast in place of a join's output.
    pub broadcast_max_scan_bytes: u64,
}

impl PlanLimits {
    /// The limits set in `options`.
    pub fn of(options: &FloeOptions) -> Self {
        Self {
            single_task_max_scan_bytes: options.single_task_max_scan_bytes,
            semi_join_reduction_max_scan_bytes: options.semi_join_reduction_max_scan_bytes,
            broadcast_max_scan_bytes: options.broadcast_max_scan_bytes,
        }
    }
}

/// Cuts plans into stages; see the module docs.
#[derive(Debug, Default)]
pub struct StagePlanner {
    stages: Vec<Stage>,
    job_id: String,
}

impl StagePlanner {
    /// Plans `plan` as the stages of job `job_id`: one stage of one task when its scans read
    /// at most `limits.single_task_max_scan_bytes` ([`crate::single_task`]; 0: always
    /// stages), else stages with semi-join reductions ([`crate::semi_join_reduction`]).
    pub fn plan(
        job_id: &str,
        plan: Arc<dyn ExecutionPlan>,
        limits: PlanLimits,
    ) -> Result<StageGraph> {
        let mut planner = Self {
            stages: Vec::new(),
            job_id: job_id.to_string(),
        };
        // Build sides that are joins, or that one partition's probe would keep whole, are as
        // slow in one process as on a cluster (TPC-DS q06, q99), so one task gets them too.
        let plan = make_build_sides_safe(
            keep_empty_filter_projections(plan)?,
            limits.broadcast_max_scan_bytes,
        )?;
        if single_task::runs_as_one_task(plan.as_ref(), limits.single_task_max_scan_bytes) {
            planner.add_stage(single_task::one_task_plan(plan), None)?;
            return Ok(StageGraph {
                stages: planner.stages,
            });
        }
        // An optimization never fails a query: a plan the reduction cannot rewrite runs as is.
        let plan = reduce_semi_joins(Arc::clone(&plan), limits.semi_join_reduction_max_scan_bytes)
            .unwrap_or(plan);
        let root = planner.cut(plan)?;
        planner.add_stage(root, None)?;
        Ok(StageGraph {
            stages: planner.stages,
        })
    }

    fn cut(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let children = plan
            .children()
            .into_iter()
            .map(|child| self.cut(Arc::clone(child)))
            .collect::<Result<Vec<_>>>()?;
        let plan = if children.is_empty() {
            plan
        } else {
            plan.with_new_children(children)?
        };
        let any = plan.as_any();
        if let Some(repartition) = any.downcast_ref::<RepartitionExec>() {
            let input = Arc::clone(repartition.input());
            let ordering = input.output_ordering().cloned();
            let equivalences = ColumnEquivalences::of(input.as_ref(), false);
            let partitioning = repartition.partitioning().clone();
            let count = partitioning.partition_count();
            let stage_id = self.add_stage(input, Some(partitioning.clone()))?;
            let reader: Arc<dyn ExecutionPlan> = Arc::new(
                ShuffleReaderExec::try_new(
                    stage_id,
                    plan.schema(),
                    partitioning,
                    None,
                    vec![Vec::new(); count],
                    false,
                )?
                .with_equivalences(equivalences)?,
            );
            // A sort-preserving exchange merges its inputs in order; files read one after
            // another don't, so sort each partition again.
            return Ok(match (repartition.preserve_order(), ordering) {
                (true, Some(ordering)) => {
                    Arc::new(SortExec::new(ordering, reader).with_preserve_partitioning(true))
                }
                _ => reader,
            });
        }
        let merges = any.is::<CoalescePartitionsExec>() || any.is::<SortPreservingMergeExec>();
        if merges {
            let input = Arc::clone(plan.children()[0]);
            let count = input.output_partitioning().partition_count();
            if count <= 1 {
                return Ok(plan);
            }
            let ordering = if any.is::<SortPreservingMergeExec>() {
                input.output_ordering().cloned()
            } else {
                None
            };
            // Partition `p` of this reader is exactly task `p`'s output.
            let equivalences = ColumnEquivalences::of(input.as_ref(), true);
            let stage_id = self.add_stage(Arc::clone(&input), None)?;
            let reader = Arc::new(
                ShuffleReaderExec::try_new(
                    stage_id,
                    input.schema(),
                    datafusion::physical_expr::Partitioning::UnknownPartitioning(count),
                    ordering,
                    vec![Vec::new(); count],
                    false,
                )?
                .with_equivalences(equivalences)?,
            );
            return Ok(plan.with_new_children(vec![reader])?);
        }
        Ok(plan)
    }

    fn add_stage(
        &mut self,
        input: Arc<dyn ExecutionPlan>,
        partitioning: Option<Partitioning>,
    ) -> Result<usize> {
        let id = self.stages.len();
        let tasks = input.output_partitioning().partition_count();
        let input = if tasks > 1 {
            mark_broadcasts(input)?
        } else {
            input
        };
        let mut inputs = BTreeSet::new();
        collect_reader_stages(&input, &mut inputs);
        let plan = Arc::new(ShuffleWriterExec::try_new(
            input,
            self.job_id.clone(),
            id,
            partitioning,
        )?);
        self.stages.push(Stage {
            id,
            plan,
            inputs: inputs.into_iter().collect(),
        });
        Ok(id)
    }
}

fn collect_reader_stages(plan: &Arc<dyn ExecutionPlan>, stages: &mut BTreeSet<usize>) {
    if let Some(reader) = plan.as_any().downcast_ref::<ShuffleReaderExec>() {
        stages.insert(reader.stage_id());
    }
    for child in plan.children() {
        collect_reader_stages(child, stages);
    }
}

/// Marks readers directly under a merge as broadcast: in a stage of several tasks, each task
/// reads all of them.
fn mark_broadcasts(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let is_merge = plan.as_any().is::<CoalescePartitionsExec>()
        || plan.as_any().is::<SortPreservingMergeExec>();
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let mut new_children = Vec::with_capacity(children.len());
    for child in children {
        let new_child = match child.as_any().downcast_ref::<ShuffleReaderExec>() {
            Some(reader) if is_merge => Arc::new(reader.as_broadcast()?) as Arc<dyn ExecutionPlan>,
            _ => mark_broadcasts(Arc::clone(child))?,
        };
        new_children.push(new_child);
    }
    Ok(plan.with_new_children(new_children)?)
}

/// Moves the empty projection of a `FilterExec` (it keeps no column: only the row count
/// matters, as under a scalar subquery's join in TPC-DS q09) into a `ProjectionExec` of its own.
/// datafusion-proto 53 encodes an empty projection as none, so a task would decode a filter
/// emitting every column and fail on the columns its parent expects.
fn keep_empty_filter_projections(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let rewritten = plan.transform_up(|node| {
        let Some(filter) = node.as_any().downcast_ref::<FilterExec>() else {
            return Ok(Transformed::no(node));
        };
        if !filter.projection().as_ref().is_some_and(|p| p.is_empty()) {
            return Ok(Transformed::no(node));
        }
        let unprojected = FilterExecBuilder::from(filter)
            .apply_projection(None)?
            .build()?;
        let nothing = ProjectionExec::try_new(Vec::<ProjectionExpr>::new(), Arc::new(unprojected))?;
        Ok(Transformed::yes(Arc::new(nothing) as Arc<dyn ExecutionPlan>))
    })?;
    Ok(rewritten.data)
}

/// Input locations of one reader: `locations[p]` are the files of its partition `p`.
pub type ReaderLocations = Vec<Vec<ShuffleLocation>>;

/// The plan of task `partition` of `stage`: readers resolved through `locations_of` (by input
/// stage id) and everything trimmed to the files this partition reads.
pub fn task_plan(
    stage: &Stage,
    partition: usize,
    locations_of: &dyn Fn(usize) -> Result<ReaderLocations>,
    runtime: &RuntimeEnv,
) -> Result<Arc<dyn ExecutionPlan>> {
    let input = Arc::clone(stage.plan.input());
    let input = resolve_and_trim(input, &BTreeSet::from([partition]), locations_of, runtime)?;
    let root: Arc<dyn ExecutionPlan> = Arc::clone(&stage.plan) as _;
    Ok(root.with_new_children(vec![input])?)
}

fn resolve_and_trim(
    plan: Arc<dyn ExecutionPlan>,
    needed: &BTreeSet<usize>,
    locations_of: &dyn Fn(usize) -> Result<ReaderLocations>,
    runtime: &RuntimeEnv,
) -> Result<Arc<dyn ExecutionPlan>> {
    let any = plan.as_any();
    if let Some(reader) = any.downcast_ref::<ShuffleReaderExec>() {
        let all = locations_of(reader.stage_id())?;
        if all.len() != reader.locations().len() {
            return Err(SchedulerError::Internal(format!(
                "stage {} produced {} partitions, its reader expects {}",
                reader.stage_id(),
                all.len(),
                reader.locations().len()
            )));
        }
        let kept = all
            .into_iter()
            .enumerate()
            .map(|(p, files)| {
                if needed.contains(&p) {
                    files
                } else {
                    Vec::new()
                }
            })
            .collect();
        return Ok(Arc::new(reader.with_locations(kept)?));
    }
    if let Some(scan) = any.downcast_ref::<IcebergScanExec>() {
        let mut spec = scan.spec().clone();
        for (p, group) in spec.file_groups.iter_mut().enumerate() {
            if !needed.contains(&p) {
                group.clear();
            }
        }
        return Ok(Arc::new(IcebergScanExec::try_new(spec, runtime)?));
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let output_partitions = plan.output_partitioning().partition_count();
    let mut offset = 0;
    let mut new_children = Vec::with_capacity(children.len());
    for child in children {
        let child_partitions = child.output_partitioning().partition_count();
        let child_needed: BTreeSet<usize> = if any.is::<UnionExec>() {
            // Union concatenates its inputs' partitions.
            let range = offset..offset + child_partitions;
            offset += child_partitions;
            needed
                .iter()
                .filter(|p| range.contains(p))
                .map(|p| p - range.start)
                .collect()
        } else if child_partitions == output_partitions && !any.is::<RepartitionExec>() {
            // Partition p of the output reads partition p of the input; an exchange (inside a
            // one-task plan) reads every input partition for each output one.
            needed.clone()
        } else {
            (0..child_partitions).collect()
        };
        new_children.push(resolve_and_trim(
            Arc::clone(child),
            &child_needed,
            locations_of,
            runtime,
        )?);
    }
    Ok(plan.with_new_children(new_children)?)
}
