//! Cardinality estimates for logical plans: rows a plan returns and distinct values a column
//! holds, from the table statistics Iceberg manifests give (row counts, column bounds).
//!
//! Iceberg keeps no distinct counts by default, so a column's distinct count is derived from
//! its bounds: an integer or date column between `min` and `max` holds at most `max - min + 1`
//! values (exact for surrogate keys, which is what star-schema joins use), and never more than
//! the rows. Filters scale rows by textbook selectivities (`col = v`: 1 / distinct values;
//! ranges 1/3; unknown predicates 1/2). The numbers only rank join orders; they are never used
//! where a wrong guess could change a result.

use datafusion::common::ScalarValue;
use datafusion::common::stats::Precision;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, JoinType, LogicalPlan, Operator};

/// Selectivity of a predicate nothing better is known about.
const UNKNOWN_SELECTIVITY: f64 = 0.5;
/// Selectivity of one side of a range (`<`, `>=`, ...).
const RANGE_SELECTIVITY: f64 = 1.0 / 3.0;
/// Selectivity of `col = value` when the column's distinct count is unknown.
const EQUALITY_SELECTIVITY: f64 = 0.1;
/// Distinct values assumed for a join key when neither side's count is known.
const UNKNOWN_KEY_DISTINCT: f64 = 100.0;
/// Selectivity of `LIKE`.
const LIKE_SELECTIVITY: f64 = 0.25;

/// Rows `plan` returns, if its inputs' sizes are known.
pub fn rows(plan: &LogicalPlan) -> Option<f64> {
    let estimate = match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let statistics = provider.statistics()?;
            let rows = *statistics.num_rows.get_value()? as f64;
            // `scan.filters` are not counted: Floe's scans take them as inexact, so the same
            // predicates stay in a `Filter` above, which counts them once.
            scan.fetch.map_or(rows, |fetch| rows.min(fetch as f64))
        }
        LogicalPlan::Filter(filter) => {
            rows(&filter.input)? * selectivity(&filter.input, &filter.predicate)
        }
        LogicalPlan::Projection(p) => rows(&p.input)?,
        LogicalPlan::SubqueryAlias(a) => rows(&a.input)?,
        LogicalPlan::Sort(s) => {
            let input = rows(&s.input)?;
            s.fetch.map_or(input, |fetch| input.min(fetch as f64))
        }
        LogicalPlan::Limit(limit) => {
            let input = rows(&limit.input)?;
            match limit.get_fetch_type().ok()? {
                datafusion::logical_expr::logical_plan::FetchType::Literal(Some(n)) => {
                    input.min(n as f64)
                }
                _ => input,
            }
        }
        LogicalPlan::Aggregate(aggregate) if aggregate.group_expr.is_empty() => 1.0,
        // Groups are at most the input rows, and at most the product of the keys' distinct
        // counts when all are known.
        LogicalPlan::Aggregate(aggregate) => {
            let input = rows(&aggregate.input)?;
            let groups: Option<f64> = aggregate
                .group_expr
                .iter()
                .map(|key| expr_ndv(&aggregate.input, key))
                .product();
            groups.map_or(input, |groups| groups.min(input))
        }
        LogicalPlan::Distinct(distinct) => rows(distinct.input())?,
        LogicalPlan::Union(union) => union.inputs.iter().map(|i| rows(i)).sum::<Option<f64>>()?,
        LogicalPlan::Join(join) => {
            let left = rows(&join.left)?;
            let right = rows(&join.right)?;
            match join.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left,
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right,
                join_type => {
                    let inner = join_rows(left, right, &join.on, |expr, left_side| {
                        let side = if left_side { &join.left } else { &join.right };
                        expr_ndv(side, expr)
                    });
                    match join_type {
                        JoinType::Inner => inner,
                        JoinType::Left => inner.max(left),
                        JoinType::Right => inner.max(right),
                        _ => inner.max(left).max(right),
                    }
                }
            }
        }
        _ => return None,
    };
    Some(estimate.max(1.0))
}

/// Rows of an equi-join of `left` and `right` rows on `on`: each key pair divides the cross
/// product by the larger of its two distinct counts (`ndv(expr, is_left_side)`).
pub fn join_rows(
    left: f64,
    right: f64,
    on: &[(Expr, Expr)],
    ndv: impl Fn(&Expr, bool) -> Option<f64>,
) -> f64 {
    let mut rows = left * right;
    for (l, r) in on {
        let distinct = match (ndv(l, true), ndv(r, false)) {
            (Some(a), Some(b)) => a.max(b),
            (Some(known), None) | (None, Some(known)) => known,
            // Neither side's distinct count is known (a string key, a computed one): assume
            // few, so a join that may multiply rows (TPC-DS q85 joins two copies of
            // customer_demographics on marital and education status) is not taken first.
            (None, None) => left.min(right).min(UNKNOWN_KEY_DISTINCT),
        };
        rows /= distinct.max(1.0);
    }
    rows.max(1.0)
}

/// Distinct values of `expr` over `plan`'s rows (a plain column only).
pub fn expr_ndv(plan: &LogicalPlan, expr: &Expr) -> Option<f64> {
    let Expr::Column(column) = expr else {
        return None;
    };
    let index = plan.schema().maybe_index_of_column(column)?;
    let distinct = column_ndv(plan, index)?;
    Some(rows(plan).map_or(distinct, |rows| distinct.min(rows)))
}

/// Distinct values of output column `index` of `plan`, before `plan`'s own filters.
fn column_ndv(plan: &LogicalPlan, index: usize) -> Option<f64> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let source_index = match &scan.projection {
                Some(projection) => *projection.get(index)?,
                None => index,
            };
            let provider = source_as_provider(&scan.source).ok()?;
            let statistics = provider.statistics()?;
            let table_rows = *statistics.num_rows.get_value()? as f64;
            let column = statistics.column_statistics.get(source_index)?;
            if let Some(distinct) = column.distinct_count.get_value() {
                return Some(*distinct as f64);
            }
            let span = value_span(&column.min_value, &column.max_value)?;
            Some(span.min(table_rows))
        }
        LogicalPlan::Filter(f) => column_ndv(&f.input, index),
        // A group key has the distinct values of the input column it groups by.
        LogicalPlan::Aggregate(aggregate) => {
            let key = aggregate
                .group_expr
                .get(index)?
                .clone()
                .unalias_nested()
                .data;
            let Expr::Column(column) = key else {
                return None;
            };
            let input_index = aggregate.input.schema().maybe_index_of_column(&column)?;
            column_ndv(&aggregate.input, input_index)
        }
        LogicalPlan::SubqueryAlias(a) => column_ndv(&a.input, index),
        LogicalPlan::Sort(s) => column_ndv(&s.input, index),
        LogicalPlan::Limit(l) => column_ndv(&l.input, index),
        LogicalPlan::Projection(p) => {
            let Expr::Column(column) = p.expr.get(index)?.clone().unalias_nested().data else {
                return None;
            };
            let input_index = p.input.schema().maybe_index_of_column(&column)?;
            column_ndv(&p.input, input_index)
        }
        _ => None,
    }
}

/// Values an integer-like column can take between its bounds (`max - min + 1`).
fn value_span(min: &Precision<ScalarValue>, max: &Precision<ScalarValue>) -> Option<f64> {
    let as_f64 = |value: &ScalarValue| -> Option<f64> {
        match value {
            ScalarValue::Int8(Some(v)) => Some(f64::from(*v)),
            ScalarValue::Int16(Some(v)) => Some(f64::from(*v)),
            ScalarValue::Int32(Some(v)) | ScalarValue::Date32(Some(v)) => Some(f64::from(*v)),
            ScalarValue::Int64(Some(v)) => Some(*v as f64),
            _ => None,
        }
    };
    let low = as_f64(min.get_value()?)?;
    let high = as_f64(max.get_value()?)?;
    (high >= low).then_some(high - low + 1.0)
}

/// Fraction of `plan`'s rows that pass `predicate`.
fn selectivity(plan: &LogicalPlan, predicate: &Expr) -> f64 {
    split_conjunction(predicate)
        .into_iter()
        .map(|conjunct| conjunct_selectivity(plan, conjunct))
        .product::<f64>()
        .clamp(0.0, 1.0)
}

fn conjunct_selectivity(plan: &LogicalPlan, expr: &Expr) -> f64 {
    let distinct = |expr: &Expr| -> Option<f64> {
        let Expr::Column(column) = expr else {
            return None;
        };
        let index = plan.schema().maybe_index_of_column(column)?;
        column_ndv(plan, index)
    };
    let equality = |expr: &Expr| distinct(expr).map_or(EQUALITY_SELECTIVITY, |n| 1.0 / n.max(1.0));
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq if is_literal(right) => equality(left),
            Operator::Eq if is_literal(left) => equality(right),
            Operator::Eq => EQUALITY_SELECTIVITY,
            Operator::NotEq => 1.0 - EQUALITY_SELECTIVITY,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => RANGE_SELECTIVITY,
            Operator::Or => {
                let a = conjunct_selectivity(plan, left);
                let b = selectivity(plan, right);
                a + b - a * b
            }
            Operator::And => selectivity(plan, expr),
            _ => UNKNOWN_SELECTIVITY,
        },
        Expr::Between(between) if !between.negated => RANGE_SELECTIVITY * RANGE_SELECTIVITY * 2.0,
        Expr::InList(list) if !list.negated => {
            (equality(&list.expr) * list.list.len() as f64).min(1.0)
        }
        Expr::Like(like) if !like.negated => LIKE_SELECTIVITY,
        Expr::IsNull(_) => EQUALITY_SELECTIVITY,
        Expr::IsNotNull(_) => 1.0 - EQUALITY_SELECTIVITY,
        Expr::Not(inner) => 1.0 - conjunct_selectivity(plan, inner),
        _ => UNKNOWN_SELECTIVITY,
    }
}

fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(..) => true,
        Expr::Cast(cast) => is_literal(&cast.expr),
        Expr::TryCast(cast) => is_literal(&cast.expr),
        _ => false,
    }
}
