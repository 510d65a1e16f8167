//! `JoinOrder`: a logical optimizer rule that orders chains of inner joins by estimated size.
//!
//! DataFusion joins tables in the order the query names them (`EliminateCrossJoin` keeps FROM
//! order). TPC-DS q72 names `catalog_sales JOIN inventory ON item` first: a many-to-many join of
//! two fact tables, about a billion rows at SF1, that the query's dimension filters would have
//! cut to a few thousand had they come first. This rule takes each tree of inner equi-joins
//! apart into its inputs (leaves) and join conditions, then rebuilds it greedily, always
//! joining the two connected parts whose join is estimated smallest (GOO, "greedy operator
//! ordering"). Estimates come from `estimate` (manifest row counts and column bounds).
//!
//! It only reorders what is safe to reorder: inner joins with `ON` conditions where nulls never
//! match. A tree it cannot estimate, or whose inputs are not all connected by equi-join keys
//! (a cross join), is left exactly as written. Non-equi conditions go to the lowest join that
//! sees all their columns; a projection on top restores the original column order.

mod estimate;

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Expr, Filter, Join, JoinConstraint, JoinType, LogicalPlan, Projection,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Most inputs of one join tree the rule orders; larger trees stay as written (the greedy
/// search is quadratic per step).
pub const MAX_JOIN_INPUTS: usize = 16;

/// Orders inner-join trees by estimated size; see the module docs.
#[derive(Debug, Default)]
pub struct JoinOrder;

impl OptimizerRule for JoinOrder {
    fn name(&self) -> &str {
        "floe_join_order"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        reorder(plan)
    }
}

/// Reorders every inner-join tree in `plan`, outermost first, then inside the trees' inputs.
fn reorder(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if is_reorderable(&plan) {
        let mut tree = JoinTree::default();
        tree.flatten(plan.clone());
        let mut changed = false;
        let mut leaves = Vec::with_capacity(tree.leaves.len());
        for leaf in std::mem::take(&mut tree.leaves) {
            let rewritten = reorder(leaf)?;
            changed |= rewritten.transformed;
            leaves.push(rewritten.data);
        }
        tree.leaves = leaves;
        if let Some(ordered) = tree.order(plan.schema())? {
            return Ok(Transformed::yes(ordered));
        }
        if !changed {
            return Ok(Transformed::no(plan));
        }
        return Ok(Transformed::yes(tree.rebuild_as_written(plan)?));
    }
    plan.map_children(reorder)
}

/// An inner equi-join whose inputs may be joined in any order.
fn is_reorderable(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Join(join)
            if join.join_type == JoinType::Inner
                && join.join_constraint == JoinConstraint::On
                && join.null_equality == NullEquality::NullEqualsNothing
                && !join.null_aware
                && !join.on.is_empty()
    )
}

/// A join tree taken apart: its inputs and every condition that joined them.
#[derive(Default)]
struct JoinTree {
    leaves: Vec<LogicalPlan>,
    equi: Vec<(Expr, Expr)>,
    filters: Vec<Expr>,
}

/// Part of the tree built so far: which leaves it holds, its plan, its estimated rows.
struct Part {
    leaves: HashSet<usize>,
    plan: LogicalPlan,
    rows: f64,
}

impl JoinTree {
    fn flatten(&mut self, plan: LogicalPlan) {
        if !is_reorderable(&plan) {
            self.leaves.push(plan);
            return;
        }
        let LogicalPlan::Join(join) = plan else {
            return;
        };
        self.equi.extend(join.on);
        if let Some(filter) = join.filter {
            self.filters.extend(split_conjunction_owned(filter));
        }
        self.flatten(Arc::unwrap_or_clone(join.left));
        self.flatten(Arc::unwrap_or_clone(join.right));
    }

    /// The leaf holding every column `expr` reads, if one does.
    fn leaf_of(&self, expr: &Expr) -> Option<usize> {
        let columns = expr.column_refs();
        let mut owners = self
            .leaves
            .iter()
            .enumerate()
            .filter(|(_, leaf)| columns.iter().any(|c| leaf.schema().has_column(c)))
            .map(|(i, _)| i);
        let owner = owners.next()?;
        let covers_all = columns
            .iter()
            .all(|c| self.leaves[owner].schema().has_column(c));
        (owners.next().is_none() && covers_all).then_some(owner)
    }

    /// The tree rebuilt greedily, or `None` when it must stay as written.
    fn order(&self, schema: &datafusion::common::DFSchemaRef) -> Result<Option<LogicalPlan>> {
        if self.leaves.len() < 3 || self.leaves.len() > MAX_JOIN_INPUTS {
            return Ok(None);
        }
        let Some(sides) = self
            .equi
            .iter()
            .map(|(l, r)| Some((self.leaf_of(l)?, self.leaf_of(r)?)))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(None);
        };
        let Some(mut parts) = self
            .leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| {
                Some(Part {
                    leaves: HashSet::from([i]),
                    plan: leaf.clone(),
                    rows: estimate::rows(leaf)?,
                })
            })
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(None);
        };
        let mut filters: Vec<Expr> = self.filters.clone();
        while parts.len() > 1 {
            let Some((a, b, rows)) = self.cheapest_pair(&parts, &sides) else {
                return Ok(None);
            };
            let (first, second) = (a.min(b), a.max(b));
            let one = parts.swap_remove(second);
            let other = parts.swap_remove(first);
            // The smaller part on the left, DataFusion's build side: its `JoinSelection` only
            // swaps sides when it has statistics for both, which a join's output often lacks.
            let (left, right) = if one.rows <= other.rows {
                (one, other)
            } else {
                (other, one)
            };
            parts.push(self.join(left, right, rows, &sides, &mut filters)?);
        }
        let Some(Part { plan, .. }) = parts.pop() else {
            return Ok(None);
        };
        let plan = match conjunction(filters) {
            Some(rest) => LogicalPlan::Filter(Filter::try_new(rest, Arc::new(plan))?),
            None => plan,
        };
        Ok(Some(restore_columns(plan, schema)?))
    }

    /// The two connected parts whose join is estimated smallest, and that estimate.
    fn cheapest_pair(
        &self,
        parts: &[Part],
        sides: &[(usize, usize)],
    ) -> Option<(usize, usize, f64)> {
        let mut best: Option<(usize, usize, f64)> = None;
        for a in 0..parts.len() {
            for b in a + 1..parts.len() {
                let keys = self.keys_between(&parts[a], &parts[b], sides);
                if keys.is_empty() {
                    continue;
                }
                let rows = estimate::join_rows(parts[a].rows, parts[b].rows, &keys, |e, left| {
                    let part = if left { &parts[a] } else { &parts[b] };
                    self.ndv_in(part, e)
                });
                if best.is_none_or(|(_, _, r)| rows < r) {
                    best = Some((a, b, rows));
                }
            }
        }
        best
    }

    /// Equi-join keys between two parts, oriented `(left part's side, right part's side)`.
    fn keys_between(
        &self,
        left: &Part,
        right: &Part,
        sides: &[(usize, usize)],
    ) -> Vec<(Expr, Expr)> {
        self.equi
            .iter()
            .zip(sides)
            .filter_map(|((l, r), (ls, rs))| {
                if left.leaves.contains(ls) && right.leaves.contains(rs) {
                    Some((l.clone(), r.clone()))
                } else if left.leaves.contains(rs) && right.leaves.contains(ls) {
                    Some((r.clone(), l.clone()))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Distinct values of a key in a part: its leaf's, at most the part's rows.
    fn ndv_in(&self, part: &Part, expr: &Expr) -> Option<f64> {
        let leaf = self.leaf_of(expr)?;
        let distinct = estimate::expr_ndv(&self.leaves[leaf], expr)?;
        Some(distinct.min(part.rows))
    }

    fn join(
        &self,
        left: Part,
        right: Part,
        rows: f64,
        sides: &[(usize, usize)],
        filters: &mut Vec<Expr>,
    ) -> Result<Part> {
        let on = self.keys_between(&left, &right, sides);
        let (left_schema, right_schema) = (left.plan.schema().clone(), right.plan.schema().clone());
        let sees = |expr: &Expr| {
            expr.column_refs()
                .iter()
                .all(|c| left_schema.has_column(c) || right_schema.has_column(c))
        };
        let (here, later): (Vec<Expr>, Vec<Expr>) =
            std::mem::take(filters).into_iter().partition(sees);
        *filters = later;
        let join = Join::try_new(
            Arc::new(left.plan),
            Arc::new(right.plan),
            on,
            conjunction(here),
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?;
        let mut leaves = left.leaves;
        leaves.extend(right.leaves);
        Ok(Part {
            leaves,
            plan: LogicalPlan::Join(join),
            rows,
        })
    }

    /// `original` with its leaves replaced by (reordered) `self.leaves`, joins as written.
    fn rebuild_as_written(&self, original: LogicalPlan) -> Result<LogicalPlan> {
        let mut next = self.leaves.iter().cloned();
        rebuild(original, &mut next)
    }
}

fn rebuild(
    plan: LogicalPlan,
    leaves: &mut impl Iterator<Item = LogicalPlan>,
) -> Result<LogicalPlan> {
    if !is_reorderable(&plan) {
        return Ok(leaves.next().unwrap_or(plan));
    }
    let LogicalPlan::Join(join) = plan else {
        return Ok(plan);
    };
    let left = rebuild(Arc::unwrap_or_clone(join.left), leaves)?;
    let right = rebuild(Arc::unwrap_or_clone(join.right), leaves)?;
    Ok(LogicalPlan::Join(Join::try_new(
        Arc::new(left),
        Arc::new(right),
        join.on,
        join.filter,
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?))
}

/// `plan`'s columns in `schema`'s order (a reordered join emits them in leaf order).
fn restore_columns(
    plan: LogicalPlan,
    schema: &datafusion::common::DFSchemaRef,
) -> Result<LogicalPlan> {
    if plan.schema().as_ref() == schema.as_ref() {
        return Ok(plan);
    }
    let columns = schema
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())))
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}
