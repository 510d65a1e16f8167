//! Hash-join dynamic filters inside a task.
//!
//! A `HashJoinExec` publishes its dynamic filter (the build side's key bounds and membership,
//! pushed into the probe side's scan) once every partition of the join has built: a barrier
//! sized by the plan's partition count. A task runs one partition of its stage, so the barrier
//! would wait for partitions that other tasks run, on other executors, forever.
//!
//! [`TaskHashJoinExec`] keeps the filter and drops the wait: when partition `p` of a join is
//! executed, it builds the same join (same filter, same shared build side) over one partition
//! of each partitioned child ([`PartitionSliceExec`]) and runs that join's only partition, so the
//! barrier counts exactly the one partition this task runs. The filter then holds what this
//! task's build side holds, which is all a probe row of this task can match: a broadcast
//! (`CollectLeft`) build side is whole in every task, and a partitioned build side holds the
//! probe partition's hash partition.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};

/// Wraps every hash join of a decoded task plan in a [`TaskHashJoinExec`], except below an
/// exchange inside the task (`RepartitionExec`, a merge): everything there runs all its
/// partitions in this task (a plan run whole as one task, `scheduler/src/single_task.rs`), so
/// DataFusion's own barrier is the right one.
pub fn run_hash_joins_per_partition(
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    wrap_task_joins(plan).map(|transformed| transformed.data)
}

fn wrap_task_joins(plan: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let any = plan.as_any();
    if any.is::<RepartitionExec>()
        || any.is::<CoalescePartitionsExec>()
        || any.is::<SortPreservingMergeExec>()
    {
        return Ok(Transformed::no(plan));
    }
    let mut changed = false;
    let children = plan
        .children()
        .into_iter()
        .map(|child| {
            let child = wrap_task_joins(Arc::clone(child))?;
            changed |= child.transformed;
            Ok(child.data)
        })
        .collect::<Result<Vec<_>>>()?;
    // Rebuilt only when a child changed: a rebuilt join is a new join, not the one whose
    // dynamic filter the probe side's scan holds.
    let plan = if changed {
        plan.with_new_children(children)?
    } else {
        plan
    };
    if plan.as_any().is::<HashJoinExec>() {
        return Ok(Transformed::yes(Arc::new(TaskHashJoinExec::new(plan))));
    }
    Ok(Transformed::new_transformed(plan, changed))
}

/// A hash join whose partitions each run as a one-partition join; see the module docs.
#[derive(Debug)]
pub struct TaskHashJoinExec {
    /// Always a `HashJoinExec`.
    join: Arc<dyn ExecutionPlan>,
    /// The partition of a partitioned join executed so far: a second one would overwrite the
    /// shared filter with bounds that do not cover the first one's probe rows.
    executed_partition: Mutex<Option<usize>>,
}

impl TaskHashJoinExec {
    fn new(join: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            join,
            executed_partition: Mutex::new(None),
        }
    }

    fn hash_join(&self) -> Result<&HashJoinExec> {
        match self.join.as_any().downcast_ref::<HashJoinExec>() {
            Some(join) => Ok(join),
            None => internal_err!(
                "TaskHashJoinExec wraps {}, not a hash join",
                self.join.name()
            ),
        }
    }
}

impl DisplayAs for TaskHashJoinExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TaskHashJoinExec")
    }
}

impl ExecutionPlan for TaskHashJoinExec {
    fn name(&self) -> &str {
        "TaskHashJoinExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.join.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.join]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(join), true) if join.as_any().is::<HashJoinExec>() => {
                Ok(Arc::new(Self::new(join)))
            }
            _ => internal_err!("TaskHashJoinExec takes exactly one hash join"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let join = self.hash_join()?;
        let left = match join.partition_mode() {
            PartitionMode::Partitioned => {
                let mut executed = self
                    .executed_partition
                    .lock()
                    .map_err(|_| DataFusionError::Internal("join state poisoned".into()))?;
                match *executed {
                    Some(earlier) if earlier != partition => {
                        return internal_err!(
                            "a task ran partitions {earlier} and {partition} of one partitioned \
                             hash join; its dynamic filter covers one"
                        );
                    }
                    _ => *executed = Some(partition),
                }
                Arc::new(PartitionSliceExec::new(Arc::clone(join.left()), partition)?)
                    as Arc<dyn ExecutionPlan>
            }
            // One build side for all partitions: the filter it yields is right for any of them.
            _ => Arc::clone(join.left()),
        };
        let right = Arc::new(PartitionSliceExec::new(
            Arc::clone(join.right()),
            partition,
        )?);
        // The builder keeps the join's dynamic filter (the one its probe scan holds), its
        // shared build side and its metrics; the filter's barrier is sized when it executes.
        join.builder()
            .with_new_children(vec![left, right])?
            .build_exec()?
            .execute(0, context)
    }
}

/// Partition `partition` of `input`, as a plan of one partition.
#[derive(Debug)]
pub struct PartitionSliceExec {
    input: Arc<dyn ExecutionPlan>,
    partition: usize,
    properties: Arc<PlanProperties>,
}

impl PartitionSliceExec {
    fn new(input: Arc<dyn ExecutionPlan>, partition: usize) -> Result<Self> {
        let partitions = input.output_partitioning().partition_count();
        if partition >= partitions {
            return internal_err!(
                "partition {partition} of {} which has {partitions}",
                input.name()
            );
        }
        let properties = Arc::new(
            input
                .properties()
                .as_ref()
                .clone()
                .with_partitioning(Partitioning::UnknownPartitioning(1)),
        );
        Ok(Self {
            input,
            partition,
            properties,
        })
    }
}

impl DisplayAs for PartitionSliceExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionSliceExec: partition={}", self.partition)
    }
}

impl ExecutionPlan for PartitionSliceExec {
    fn name(&self) -> &str {
        "PartitionSliceExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input, self.partition)?)),
            _ => internal_err!("PartitionSliceExec takes exactly one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("PartitionSliceExec has one partition, asked for {partition}");
        }
        self.input.execute(self.partition, context)
    }
}
