//! Floe's TPC-DS harness.
//!
//! The 99 queries live in `benchmarks/tpcds/queries/qNN.sql` (DuckDB's rendering of the
//! templates, copied from the shared reference set). [`answers`] reads reference answers
//! (`qNN.csv`: a header line, then `|`-separated rows, `NULL` and `(empty)` spelled out) and
//! compares a result with one: numbers within a relative tolerance, because engines differ
//! in DECIMAL vs DOUBLE arithmetic, and row order only where the query orders its result.
//!
//! Data generation and the `floe-tpcds` runner are the rest of the harness (not written yet).

pub mod answers;
pub mod queries;
