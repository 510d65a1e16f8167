//! Join fixes applied to a plan before it runs on a cluster, where every task of a stage has
//! its own copy of a broadcast (`CollectLeft`) join's build side:
//! - joins that emit unmatched build rows (LEFT, FULL, LEFT SEMI/ANTI/MARK) would emit them once
//!   per task, so they are re-planned as partitioned joins (null-aware anti joins, `NOT IN`, run
//!   as one task);
//! - an inner join whose build side is the output of other joins (a guessed size) broadcasts
//!   the other input instead when it is a table whose scans read at most
//!   `floe.broadcast_max_scan_bytes`, or else hash-partitions both inputs;
//! - a broadcast join whose probe side was merged into one partition probes each partition.
//!
//! A re-planned join keeps the hash partitioning the plan above it was optimized for
//! ([`keep_hash_partitioning`]). The same fixes apply to a plan run as one task: a join's
//! output built into one hash table is as slow in one process (TPC-DS q06, q99).

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::TreeNode;
use datafusion::physical_expr::expressions::UnKnownColumn;
use datafusion::physical_expr::{Distribution, Partitioning};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use crate::error::Result;
use crate::single_task;

/// Join types whose `CollectLeft` form emits build-side rows that no probe row matched; they
/// are only right when one hash table sees every probe partition.
fn emits_unmatched_build_rows(join_type: &JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Left
            | JoinType::Full
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
    )
}

/// Whether `plan` joins anything: DataFusion's row estimate for a join's output is a guess (no
/// distinct counts), and a guess too low would broadcast a large build side to every task
/// (TPC-DS q66 at SF1: warehouse x web_sales copied to each task, gigabytes of shuffle files).
/// Build sides that are a join are therefore hash-partitioned like the probe side instead.
fn contains_join(plan: &dyn ExecutionPlan) -> bool {
    // Every DataFusion join operator (hash, nested loop, cross, sort-merge, symmetric hash) is
    // named `...JoinExec`.
    plan.name().ends_with("JoinExec")
        || plan
            .children()
            .iter()
            .any(|child| contains_join(child.as_ref()))
}

/// Re-plans joins that would be wrong with one build-side copy per task, and joins whose build
/// side is itself a join (see [`contains_join`]): the other input, a table, is broadcast
/// instead when its scans read at most `broadcast_max_scan_bytes`, else both inputs are
/// hash-partitioned. See the module docs.
pub fn make_build_sides_safe(
    plan: Arc<dyn ExecutionPlan>,
    broadcast_max_scan_bytes: u64,
) -> Result<Arc<dyn ExecutionPlan>> {
    let children = plan
        .children()
        .into_iter()
        .map(|child| make_build_sides_safe(Arc::clone(child), broadcast_max_scan_bytes))
        .collect::<Result<Vec<_>>>()?;
    let plan = if children.is_empty() {
        plan
    } else {
        plan.with_new_children(children)?
    };
    if let Some(join) = plan.as_any().downcast_ref::<HashJoinExec>() {
        if let Some(split) = split_merged_probe_side(join)? {
            return Ok(split);
        }
        let probe_partitions = join.right().output_partitioning().partition_count();
        let shared_build_needed = emits_unmatched_build_rows(join.join_type());
        if *join.partition_mode() == PartitionMode::CollectLeft
            && *join.join_type() == JoinType::Inner
            && contains_join(join.left().as_ref())
            && !contains_join(join.right().as_ref())
            && single_task::scan_bytes(join.right().as_ref())
                .is_some_and(|bytes| bytes <= broadcast_max_scan_bytes)
        {
            // The estimate put the joined rows on the build side; one table's rows are the
            // better guess for a broadcast, and keep the joined rows where they are. Also with
            // a one-partition probe side: the join would otherwise run as one task holding the
            // joined rows in a hash table (TPC-DS q99 with call_center as the probe: 22 s).
            let joined = below_coalesce(join.left())?;
            let table = Arc::new(CoalescePartitionsExec::new(Arc::clone(join.right())));
            let arranged = join
                .builder()
                .with_new_children(vec![joined, table])?
                .reset_state()
                .recompute_properties()
                .build()?;
            let swapped = arranged.swap_inputs(PartitionMode::CollectLeft)?;
            let partitions = swapped.output_partitioning().partition_count();
            // The join's consumer was planned for its old partition count (a `CollectLeft`
            // parent needs one); the joined rows may have more partitions than the table had.
            if partitions == probe_partitions {
                return keep_hash_partitioning(&plan, swapped);
            }
            if probe_partitions == 1 {
                return Ok(Arc::new(CoalescePartitionsExec::new(swapped)));
            }
            return Ok(plan);
        }
        if *join.partition_mode() == PartitionMode::CollectLeft
            && probe_partitions > 1
            && (shared_build_needed || contains_join(join.left().as_ref()))
        {
            if shared_build_needed && join.null_aware {
                // NOT IN semantics need every probe row in one place: run the join as one task.
                let probe = Arc::new(CoalescePartitionsExec::new(Arc::clone(join.right())));
                let build = Arc::clone(join.left());
                let one_task = Arc::clone(&plan).with_new_children(vec![build, probe])?;
                return keep_hash_partitioning(&plan, one_task);
            }
            let build = below_coalesce(join.left())?;
            let (left_keys, right_keys): (Vec<_>, Vec<_>) = join
                .on()
                .iter()
                .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
                .unzip();
            let left = Arc::new(RepartitionExec::try_new(
                build,
                Partitioning::Hash(left_keys, probe_partitions),
            )?);
            let right = Arc::new(RepartitionExec::try_new(
                Arc::clone(join.right()),
                Partitioning::Hash(right_keys, probe_partitions),
            )?);
            let partitioned = join
                .builder()
                .with_partition_mode(PartitionMode::Partitioned)
                .with_new_children(vec![left, right])?
                .reset_state()
                .recompute_properties()
                .build_exec()?;
            return keep_hash_partitioning(&plan, partitioned);
        }
    }
    if let Some(join) = plan.as_any().downcast_ref::<NestedLoopJoinExec>()
        && emits_unmatched_build_rows(join.join_type())
        && join.right().output_partitioning().partition_count() > 1
    {
        let probe = Arc::new(CoalescePartitionsExec::new(Arc::clone(join.right())));
        let build = Arc::clone(join.left());
        return Ok(Arc::clone(&plan).with_new_children(vec![build, probe])?);
    }
    Ok(plan)
}

/// `rewritten`, a join re-planned in place of `original`, with the hash partitioning `original`
/// had restored when the rewrite lost it: the plan above was optimized for that partitioning,
/// and an operator there (a final aggregate, a partitioned join) may rely on it without an
/// exchange of its own. A `CollectLeft` join passes its probe side's partitioning on; the
/// re-planned join partitions by its own keys or runs as one task.
fn keep_hash_partitioning(
    original: &Arc<dyn ExecutionPlan>,
    rewritten: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let wanted = original.output_partitioning();
    let Partitioning::Hash(exprs, _) = wanted else {
        return Ok(rewritten);
    };
    // A partitioning on columns the join projects away (`UnKnownColumn`) is one nothing above
    // can rely on, nor can it be restored.
    let unknown = exprs.iter().any(|expr| {
        expr.exists(|e| Ok(e.as_any().is::<UnKnownColumn>()))
            .unwrap_or(true)
    });
    // Hash on a column the join made equal to the wanted one (its other key) is as good.
    let kept = rewritten.output_partitioning().partition_count() == wanted.partition_count()
        && rewritten
            .output_partitioning()
            .satisfaction(
                &Distribution::HashPartitioned(exprs.clone()),
                rewritten.equivalence_properties(),
                false,
            )
            .is_satisfied();
    if unknown || kept {
        return Ok(rewritten);
    }
    Ok(Arc::new(RepartitionExec::try_new(
        rewritten,
        wanted.clone(),
    )?))
}

/// A broadcast join whose probe side was merged into one partition (JoinSelection swaps a
/// semi join's sides after the merge was placed; TPC-DS q58 merges 2.75 M store_sales rows into
/// one task that way) probes each partition instead, and its output is merged: one task per
/// probe partition, and the rows that cross the stage boundary are the join's output. Only for
/// joins whose rows each come from one probe row (not those emitting unmatched build rows).
fn split_merged_probe_side(join: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(merge) = join
        .right()
        .as_any()
        .downcast_ref::<CoalescePartitionsExec>()
    else {
        return Ok(None);
    };
    let probe = Arc::clone(merge.input());
    if *join.partition_mode() != PartitionMode::CollectLeft
        || emits_unmatched_build_rows(join.join_type())
        || merge.fetch().is_some()
        || probe.output_partitioning().partition_count() <= 1
    {
        return Ok(None);
    }
    let split = join
        .builder()
        .with_new_children(vec![Arc::clone(join.left()), probe])?
        .reset_state()
        .recompute_properties()
        .build()?;
    Ok(Some(Arc::new(CoalescePartitionsExec::new(Arc::new(split)))))
}

/// `plan` without the `CoalescePartitionsExec` a broadcast build side sits under, if any,
/// also under the projections a swapped join leaves on top (TPC-DS q06: otherwise the joined
/// rows stay one partition and cannot take the probe side's place).
fn below_coalesce(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(coalesce) = plan.as_any().downcast_ref::<CoalescePartitionsExec>()
        && coalesce.fetch().is_none()
    {
        return Ok(Arc::clone(coalesce.input()));
    }
    if let Some(projection) = plan.as_any().downcast_ref::<ProjectionExec>() {
        let input = below_coalesce(projection.input())?;
        if !Arc::ptr_eq(&input, projection.input()) {
            return Ok(Arc::clone(plan).with_new_children(vec![input])?);
        }
    }
    Ok(Arc::clone(plan))
}
