//! The 99 TPC-DS queries shipped with the harness.

use std::path::{Path, PathBuf};

/// Directory of the query files in this source tree.
pub fn query_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("queries")
}

/// Query names `q01`..`q99` in order.
pub fn all_query_names() -> Vec<String> {
    (1..=99).map(|n| format!("q{n:02}")).collect()
}

/// Whether a query orders its final result: an `ORDER BY` outside every parenthesis.
pub fn orders_result(sql: &str) -> bool {
    let mut depth = 0i32;
    let upper = sql.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let mut last_top_level_order = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'O' if depth == 0 && upper[i..].starts_with("ORDER BY") => {
                last_top_level_order = true;
            }
            _ => {}
        }
        i += 1;
    }
    last_top_level_order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_99_queries_are_present() {
        for name in all_query_names() {
            let path = query_dir().join(format!("{name}.sql"));
            assert!(path.is_file(), "{} missing", path.display());
        }
    }

    #[test]
    fn top_level_order_by_is_found() {
        assert!(orders_result("SELECT a FROM t ORDER BY a LIMIT 10"));
        assert!(!orders_result(
            "SELECT * FROM (SELECT a FROM t ORDER BY a) x"
        ));
        assert!(!orders_result("SELECT a, rank() OVER (ORDER BY b) FROM t"));
    }
}
