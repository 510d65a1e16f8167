//! The 99 TPC-DS queries, compiled into the harness so that an installed `floe-tpcds` needs
//! no source tree.

use crate::error::{Result, TpcdsError};

/// Each query's name and text (`benchmarks/tpcds/queries/qNN.sql`).
pub const QUERIES: [(&str, &str); 99] = [
    ("q01", include_str!("../queries/q01.sql")),
    ("q02", include_str!("../queries/q02.sql")),
    ("q03", include_str!("../queries/q03.sql")),
    ("q04", include_str!("../queries/q04.sql")),
    ("q05", include_str!("../queries/q05.sql")),
    ("q06", include_str!("../queries/q06.sql")),
    ("q07", include_str!("../queries/q07.sql")),
    ("q08", include_str!("../queries/q08.sql")),
    ("q09", include_str!("../queries/q09.sql")),
    ("q10", include_str!("../queries/q10.sql")),
    ("q11", include_str!("../queries/q11.sql")),
    ("q12", include_str!("../queries/q12.sql")),
    ("q13", include_str!("../queries/q13.sql")),
    ("q14", include_str!("../queries/q14.sql")),
    ("q15", include_str!("../queries/q15.sql")),
    ("q16", include_str!("../queries/q16.sql")),
    ("q17", include_str!("../queries/q17.sql")),
    ("q18", include_str!("../queries/q18.sql")),
    ("q19", include_str!("../queries/q19.sql")),
    ("q20", include_str!("../queries/q20.sql")),
    ("q21", include_str!("../queries/q21.sql")),
    ("q22", include_str!("../queries/q22.sql")),
    ("q23", include_str!("../queries/q23.sql")),
    ("q24", include_str!("../queries/q24.sql")),
    ("q25", include_str!("../queries/q25.sql")),
    ("q26", include_str!("../queries/q26.sql")),
    ("q27", include_str!("../queries/q27.sql")),
    ("q28", include_str!("../queries/q28.sql")),
    ("q29", include_str!("../queries/q29.sql")),
    ("q30", include_str!("../queries/q30.sql")),
    ("q31", include_str!("../queries/q31.sql")),
    ("q32", include_str!("../queries/q32.sql")),
    ("q33", include_str!("../queries/q33.sql")),
    ("q34", include_str!("../queries/q34.sql")),
    ("q35", include_str!("../queries/q35.sql")),
    ("q36", include_str!("../queries/q36.sql")),
    ("q37", include_str!("../queries/q37.sql")),
    ("q38", include_str!("../queries/q38.sql")),
    ("q39", include_str!("../queries/q39.sql")),
    ("q40", include_str!("../queries/q40.sql")),
    ("q41", include_str!("../queries/q41.sql")),
    ("q42", include_str!("../queries/q42.sql")),
    ("q43", include_str!("../queries/q43.sql")),
    ("q44", include_str!("../queries/q44.sql")),
    ("q45", include_str!("../queries/q45.sql")),
    ("q46", include_str!("../queries/q46.sql")),
    ("q47", include_str!("../queries/q47.sql")),
    ("q48", include_str!("../queries/q48.sql")),
    ("q49", include_str!("../queries/q49.sql")),
    ("q50", include_str!("../queries/q50.sql")),
    ("q51", include_str!("../queries/q51.sql")),
    ("q52", include_str!("../queries/q52.sql")),
    ("q53", include_str!("../queries/q53.sql")),
    ("q54", include_str!("../queries/q54.sql")),
    ("q55", include_str!("../queries/q55.sql")),
    ("q56", include_str!("../queries/q56.sql")),
    ("q57", include_str!("../queries/q57.sql")),
    ("q58", include_str!("../queries/q58.sql")),
    ("q59", include_str!("../queries/q59.sql")),
    ("q60", include_str!("../queries/q60.sql")),
    ("q61", include_str!("../queries/q61.sql")),
    ("q62", include_str!("../queries/q62.sql")),
    ("q63", include_str!("../queries/q63.sql")),
    ("q64", include_str!("../queries/q64.sql")),
    ("q65", include_str!("../queries/q65.sql")),
    ("q66", include_str!("../queries/q66.sql")),
    ("q67", include_str!("../queries/q67.sql")),
    ("q68", include_str!("../queries/q68.sql")),
    ("q69", include_str!("../queries/q69.sql")),
    ("q70", include_str!("../queries/q70.sql")),
    ("q71", include_str!("../queries/q71.sql")),
    ("q72", include_str!("../queries/q72.sql")),
    ("q73", include_str!("../queries/q73.sql")),
    ("q74", include_str!("../queries/q74.sql")),
    ("q75", include_str!("../queries/q75.sql")),
    ("q76", include_str!("../queries/q76.sql")),
    ("q77", include_str!("../queries/q77.sql")),
    ("q78", include_str!("../queries/q78.sql")),
    ("q79", include_str!("../queries/q79.sql")),
    ("q80", include_str!("../queries/q80.sql")),
    ("q81", include_str!("../queries/q81.sql")),
    ("q82", include_str!("../queries/q82.sql")),
    ("q83", include_str!("../queries/q83.sql")),
    ("q84", include_str!("../queries/q84.sql")),
    ("q85", include_str!("../queries/q85.sql")),
    ("q86", include_str!("../queries/q86.sql")),
    ("q87", include_str!("../queries/q87.sql")),
    ("q88", include_str!("../queries/q88.sql")),
    ("q89", include_str!("../queries/q89.sql")),
    ("q90", include_str!("../queries/q90.sql")),
    ("q91", include_str!("../queries/q91.sql")),
    ("q92", include_str!("../queries/q92.sql")),
    ("q93", include_str!("../queries/q93.sql")),
    ("q94", include_str!("../queries/q94.sql")),
    ("q95", include_str!("../queries/q95.sql")),
    ("q96", include_str!("../queries/q96.sql")),
    ("q97", include_str!("../queries/q97.sql")),
    ("q98", include_str!("../queries/q98.sql")),
    ("q99", include_str!("../queries/q99.sql")),
];

/// Query names `q01`..`q99` in order.
pub fn all_query_names() -> Vec<String> {
    QUERIES
        .iter()
        .map(|(name, _)| (*name).to_string())
        .collect()
}

/// The text of a query by name (`q7` and `q07` both name query 7).
pub fn query_text(name: &str) -> Result<&'static str> {
    let number: Option<u32> = name
        .strip_prefix(['q', 'Q'])
        .and_then(|digits| digits.parse().ok());
    let canonical = number.map(|n| format!("q{n:02}")).unwrap_or_default();
    QUERIES
        .iter()
        .find(|(query, _)| *query == canonical)
        .map(|(_, text)| *text)
        .ok_or_else(|| TpcdsError::UnknownQuery(name.to_string()))
}

/// Resolves a `--queries` list (`all`, or names separated by commas) to query names.
pub fn select_queries(list: &str) -> Result<Vec<String>> {
    if list.trim().eq_ignore_ascii_case("all") {
        return Ok(all_query_names());
    }
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            query_text(name)?;
            let number: u32 = name[1..].parse().unwrap_or_default();
            Ok(format!("q{number:02}"))
        })
        .collect()
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
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn queries_are_selected_by_name() {
        assert_eq!(all_query_names().len(), 99);
        assert!(
            query_text("q7")
                .unwrap()
                .to_ascii_lowercase()
                .contains("select")
        );
        assert_eq!(select_queries("q1, q14").unwrap(), vec!["q01", "q14"]);
        assert_eq!(select_queries("all").unwrap().len(), 99);
        let err = select_queries("q1,q100").unwrap_err().to_string();
        assert!(err.contains("`q100`"), "{err}");
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
