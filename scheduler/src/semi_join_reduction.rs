//! Semi-join reduction: a small, filtered join input also filters the other input's rows
//! before they cross an exchange.
//!
//! In one process DataFusion's hash join pushes its build side's keys into the probe side's
//! scan as a dynamic filter. On a cluster the probe side's scan often runs in another stage,
//! before the join's build side exists, so every row of a fact table is written to shuffle
//! files only for most of them to find no partner (TPC-DS q27 at SF10: 28.8 million
//! `store_sales` rows, 2 GB of shuffle, three times, for a `customer_demographics` filter that
//! keeps one row in seventy). Trino sends build-side keys across stages at run time; Floe gets
//! the same effect in the plan: for an inner equi-join one of whose inputs (the *reducer*) is a
//! filtered scan of a small table, the reducer's plan is copied below the exchange on the
//! other side as a `RightSemi` hash join right above the scan that produces the key column.
//! Rows whose key the reducer does not hold are dropped where they are read. A semi join
//! (`IN (SELECT ...)`) reduces likewise the input whose rows it keeps.
//!
//! It is correct because the join drops such rows anyway, and so does every operator between
//! the scan and that join as long as the column reaches it unchanged: the key column is
//! followed down only through operators that emit each row with the value it read (projections
//! of a plain column, filters, exchanges, inner, semi and anti joins, and the preserved side of
//! a one-sided outer join), so dropping a row there drops only output rows with the same key.
//! It never goes through one that makes new rows from several (aggregates), emits the other
//! side's unmatched rows (a full join, an outer join's null-supplying side) or stops after a
//! number of rows (a `fetch`).
//!
//! The copy must keep exactly the keys the original input keeps, so a reducer is a plan of
//! scans, filters, projections and broadcast (`CollectLeft`) inner or semi joins (exchanges
//! removed) with no volatile expression (`random()` would pick other rows the second time).
//! Its scans read at most `floe.semi_join_reduction_max_scan_bytes`, and it filters
//! something. Every task below the exchange reads it again (or, when it has several
//! partitions, it becomes a small stage of its own that every executor fetches once).

use std::sync::Arc;

use datafusion::common::{JoinType, NullEquality};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use crate::error::Result;
use crate::single_task;

/// Adds semi-join reductions to every inner hash join of `plan` that has a reducer whose
/// scans read at most `max_scan_bytes` (0: none); see the module docs.
pub fn reduce_semi_joins(
    plan: Arc<dyn ExecutionPlan>,
    max_scan_bytes: u64,
) -> Result<Arc<dyn ExecutionPlan>> {
    if max_scan_bytes == 0 {
        return Ok(plan);
    }
    let children = plan
        .children()
        .into_iter()
        .map(|child| reduce_semi_joins(Arc::clone(child), max_scan_bytes))
        .collect::<Result<Vec<_>>>()?;
    let plan = if children.is_empty() {
        plan
    } else {
        Arc::clone(&plan).with_new_children(children)?
    };
    let Some(join) = plan.as_any().downcast_ref::<HashJoinExec>() else {
        return Ok(plan);
    };
    if join.null_equality() != NullEquality::NullEqualsNothing {
        return Ok(plan);
    }
    // Which input may filter which: both ways for an inner join; a semi join's filtering
    // input filters the input whose rows it keeps.
    let directions: &[(Side, Side)] = match join.join_type() {
        JoinType::Inner => &[(Side::Left, Side::Right), (Side::Right, Side::Left)],
        JoinType::RightSemi => &[(Side::Left, Side::Right)],
        JoinType::LeftSemi => &[(Side::Right, Side::Left)],
        _ => return Ok(plan),
    };
    let (mut left, mut right) = (Arc::clone(join.left()), Arc::clone(join.right()));
    let mut changed = false;
    for &(reducer_side, target_side) in directions {
        let (reducer_input, target_input) = match reducer_side {
            Side::Left => (&left, &mut right),
            Side::Right => (&right, &mut left),
        };
        let Some(reducer) = Reducer::of(reducer_input, max_scan_bytes) else {
            continue;
        };
        // Filtering the smaller input with the larger one saves less than it costs.
        if single_task::scan_bytes(target_input.as_ref())
            .is_some_and(|bytes| bytes <= reducer.bytes)
        {
            continue;
        }
        for (left_key, right_key) in join.on() {
            let (reducer_key, target_key) = match target_side {
                Side::Right => (left_key, right_key),
                Side::Left => (right_key, left_key),
            };
            let (Some(reducer_key), Some(target_key)) = (
                reducer_key.as_any().downcast_ref::<Column>(),
                target_key.as_any().downcast_ref::<Column>(),
            ) else {
                continue;
            };
            let key = ReducerKey {
                plan: &reducer.plan,
                column: reducer_key.clone(),
            };
            if let Some(reduced) = reduce_below(target_input, target_key.index(), &key, false)? {
                *target_input = reduced;
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(plan);
    }
    Ok(plan.with_new_children(vec![left, right])?)
}

#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

/// A join input cheap and selective enough to filter the other input with.
struct Reducer {
    /// The input without its exchanges.
    plan: Arc<dyn ExecutionPlan>,
    /// Bytes its scans read ([`single_task::scan_bytes`]).
    bytes: u64,
}

impl Reducer {
    /// `input` as a reducer, if it is a filtered plan of scans, filters, projections and
    /// broadcast joins whose scans read at most `max_scan_bytes`.
    fn of(input: &Arc<dyn ExecutionPlan>, max_scan_bytes: u64) -> Option<Self> {
        let mut filters = false;
        let plan = without_exchanges(input, &mut filters)?;
        let bytes = single_task::scan_bytes(plan.as_ref())?;
        (filters && bytes <= max_scan_bytes).then_some(Self { plan, bytes })
    }
}

/// `plan` with its exchanges removed (they do not change which rows it produces), if it is
/// made of scans, filters, projections and broadcast joins ([`reducer_join`]); `filters` is
/// set when a filter is among them.
fn without_exchanges(
    plan: &Arc<dyn ExecutionPlan>,
    filters: &mut bool,
) -> Option<Arc<dyn ExecutionPlan>> {
    let any = plan.as_any();
    let children = plan.children();
    if children.is_empty() {
        return Some(Arc::clone(plan));
    }
    if let Some(join) = any.downcast_ref::<HashJoinExec>() {
        return reducer_join(join, filters);
    }
    let [child] = children.as_slice() else {
        return None;
    };
    if any.is::<RepartitionExec>()
        || any
            .downcast_ref::<CoalescePartitionsExec>()
            .is_some_and(|coalesce| coalesce.fetch().is_none())
    {
        return without_exchanges(child, filters);
    }
    let passes_through = any
        .downcast_ref::<ProjectionExec>()
        .is_some_and(|projection| projection.expr().iter().all(|e| !is_volatile(&e.expr)))
        || any
            .downcast_ref::<FilterExec>()
            .is_some_and(|filter| filter.fetch().is_none() && !is_volatile(filter.predicate()));
    if !passes_through {
        return None;
    }
    *filters |= any.is::<FilterExec>();
    let child = without_exchanges(child, filters)?;
    Arc::clone(plan).with_new_children(vec![child]).ok()
}

/// A broadcast hash join inside a reducer (TPC-DS q58's `d_week_seq = (SELECT ...)` over
/// `date_dim`) with its inputs' exchanges removed; its build side is merged again when it has
/// several partitions, as a `CollectLeft` join needs. Partitioned joins are refused: without
/// their exchanges their inputs would no longer be partitioned alike.
fn reducer_join(join: &HashJoinExec, filters: &mut bool) -> Option<Arc<dyn ExecutionPlan>> {
    let joins_rows_it_reads = matches!(
        join.join_type(),
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi
    );
    let volatile = join
        .on()
        .iter()
        .any(|(left, right)| is_volatile(left) || is_volatile(right))
        || join
            .filter()
            .is_some_and(|filter| is_volatile(filter.expression()));
    if *join.partition_mode() != PartitionMode::CollectLeft
        || !joins_rows_it_reads
        || join.fetch().is_some()
        || volatile
    {
        return None;
    }
    let mut build = without_exchanges(join.left(), filters)?;
    if build.output_partitioning().partition_count() > 1 {
        build = Arc::new(CoalescePartitionsExec::new(build));
    }
    let probe = without_exchanges(join.right(), filters)?;
    join.builder()
        .with_new_children(vec![build, probe])
        .ok()?
        .reset_state()
        .recompute_properties()
        .build_exec()
        .ok()
}

/// The reducer and its join key column.
struct ReducerKey<'a> {
    plan: &'a Arc<dyn ExecutionPlan>,
    column: Column,
}

/// `plan` with the reducer's semi join inserted on output column `column` as deep as the
/// column can be followed through operators that pass values through (see the module docs),
/// and only below an exchange (`crossed`): above every exchange the join's own dynamic filter
/// already reaches the scan. `None` leaves `plan` as it is.
fn reduce_below(
    plan: &Arc<dyn ExecutionPlan>,
    column: usize,
    key: &ReducerKey<'_>,
    crossed: bool,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some((child_index, child_column, crosses)) = source_of(plan.as_ref(), column) else {
        return if crossed {
            semi_join(key, plan, column).map(Some)
        } else {
            Ok(None)
        };
    };
    let children = plan.children();
    let Some(child) = children.get(child_index) else {
        return Ok(None);
    };
    let Some(reduced) = reduce_below(child, child_column, key, crossed || crosses)? else {
        return Ok(None);
    };
    let mut new_children: Vec<_> = children.into_iter().cloned().collect();
    new_children[child_index] = reduced;
    Ok(Some(Arc::clone(plan).with_new_children(new_children)?))
}

/// Which child (index), and which column of it, output column `column` of `plan` passes
/// through unchanged from, and whether `plan` is an exchange; `None` for an operator the
/// reduction does not look through.
fn source_of(plan: &dyn ExecutionPlan, column: usize) -> Option<(usize, usize, bool)> {
    let any = plan.as_any();
    if any.is::<RepartitionExec>() {
        return Some((0, column, true));
    }
    if let Some(coalesce) = any.downcast_ref::<CoalescePartitionsExec>() {
        // A merge of several partitions is a stage boundary too.
        let merges = coalesce.input().output_partitioning().partition_count() > 1;
        return coalesce.fetch().is_none().then_some((0, column, merges));
    }
    if let Some(projection) = any.downcast_ref::<ProjectionExec>() {
        let expr = projection.expr().get(column)?;
        let source = expr.expr.as_any().downcast_ref::<Column>()?;
        return Some((0, source.index(), false));
    }
    if let Some(filter) = any.downcast_ref::<FilterExec>() {
        if filter.fetch().is_some() {
            return None;
        }
        let column = match filter.projection() {
            Some(projection) => *projection.get(column)?,
            None => column,
        };
        return Some((0, column, false));
    }
    let join = any.downcast_ref::<HashJoinExec>()?;
    if join.fetch().is_some() {
        return None;
    }
    let column = match &join.projection {
        Some(projection) => *projection.get(column)?,
        None => column,
    };
    let left_columns = join.left().schema().fields().len();
    match join.join_type() {
        JoinType::Inner if column < left_columns => Some((0, column, false)),
        JoinType::Inner => Some((1, column - left_columns, false)),
        // Each output row of these carries the columns of one row of the input it keeps
        // (all of them, or its unmatched ones), so dropping that input's rows whose key the
        // reducer lacks drops only output rows with that key.
        JoinType::LeftSemi | JoinType::LeftAnti => Some((0, column, false)),
        JoinType::RightSemi | JoinType::RightAnti => Some((1, column, false)),
        // An outer join's preserved side, likewise: the other side's rows that lose their
        // partner are not emitted by a one-sided outer join.
        JoinType::Left if column < left_columns => Some((0, column, false)),
        JoinType::Right if column >= left_columns => Some((1, column - left_columns, false)),
        _ => None,
    }
}

/// `RightSemi` hash join of `probe` (on its column `column`) with the reducer collected whole.
fn semi_join(
    key: &ReducerKey<'_>,
    probe: &Arc<dyn ExecutionPlan>,
    column: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let build: Arc<dyn ExecutionPlan> = if key.plan.output_partitioning().partition_count() > 1 {
        Arc::new(CoalescePartitionsExec::new(Arc::clone(key.plan)))
    } else {
        Arc::clone(key.plan)
    };
    let probe_field = probe.schema().field(column).name().clone();
    let on = vec![(
        Arc::new(key.column.clone()) as _,
        Arc::new(Column::new(&probe_field, column)) as _,
    )];
    Ok(Arc::new(HashJoinExec::try_new(
        build,
        Arc::clone(probe),
        on,
        None,
        &JoinType::RightSemi,
        None,
        PartitionMode::CollectLeft,
        NullEquality::NullEqualsNothing,
        false,
    )?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::DFSchema;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::execution::context::ExecutionProps;
    use datafusion::functions::math::expr_fn::random;
    use datafusion::logical_expr::{Expr, col, lit};
    use datafusion::physical_expr::create_physical_expr;

    use super::*;

    /// `SELECT id FROM (VALUES 1, 2, 3) WHERE <predicate>` as a physical plan.
    fn filtered_rows(predicate: Expr) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let rows = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let scan =
            MemorySourceConfig::try_new_exec(&[vec![rows]], Arc::clone(&schema), None).unwrap();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).unwrap();
        let predicate =
            create_physical_expr(&predicate, &df_schema, &ExecutionProps::new()).unwrap();
        Arc::new(FilterExec::try_new(predicate, scan).unwrap())
    }

    #[test]
    fn only_deterministic_filtered_inputs_are_reducers() {
        let deterministic = filtered_rows(col("id").gt(lit(1i64)));
        assert!(Reducer::of(&deterministic, 1024).is_some());
        // Run twice, `random()` would keep other keys in the copy than in the original input.
        let sampled = filtered_rows(random().lt(lit(0.5)));
        assert!(Reducer::of(&sampled, 1024).is_none());
        // Without a filter the copy would keep every key: nothing to gain.
        let unfiltered = Arc::clone(deterministic.children()[0]);
        assert!(Reducer::of(&unfiltered, 1024).is_none());
    }
}
