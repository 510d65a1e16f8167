//! Reference answers and comparing results with them.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

/// Relative tolerance for numbers (engines round DECIMAL and DOUBLE arithmetic differently).
pub const RELATIVE_TOLERANCE: f64 = 1e-6;

/// Absolute tolerance for numbers near zero.
pub const ABSOLUTE_TOLERANCE: f64 = 1e-6;

/// Most mismatching rows listed per query.
pub const MAX_LISTED_MISMATCHES: usize = 10;

/// Errors reading answers or results.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The answer file could not be read.
    #[error("cannot read answer {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The answer file has no header line.
    #[error("answer {0} is empty")]
    Empty(String),
    /// Formatting the result.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// A reference answer: column names and rows of text fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Column names from the header line.
    pub columns: Vec<String>,
    /// Rows, each a list of fields as written (`NULL`, `(empty)`, numbers, dates, text).
    pub rows: Vec<Vec<String>>,
}

impl Answer {
    /// Parses answer text.
    pub fn parse(name: &str, text: &str) -> Result<Self, AnswerError> {
        let mut lines = text.lines();
        let header = lines
            .next()
            .ok_or_else(|| AnswerError::Empty(name.to_string()))?;
        let split = |line: &str| line.split('|').map(str::to_string).collect::<Vec<_>>();
        Ok(Self {
            columns: split(header),
            rows: lines.filter(|l| !l.is_empty()).map(split).collect(),
        })
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, AnswerError> {
        let text = std::fs::read_to_string(path).map_err(|source| AnswerError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }
}

/// Whether two fields are equal: numbers within tolerance, everything else as text.
pub fn fields_match(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    match (expected.parse::<f64>(), actual.parse::<f64>()) {
        (Ok(e), Ok(a)) => {
            let difference = (e - a).abs();
            difference <= ABSOLUTE_TOLERANCE
                || difference <= RELATIVE_TOLERANCE * e.abs().max(a.abs())
        }
        _ => false,
    }
}

fn rows_match(expected: &[String], actual: &[String]) -> bool {
    expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| fields_match(e, a))
}

/// Compares a result with its answer; returns the mismatches (empty when they agree).
///
/// With `ordered`, rows must come in the answer's order, except that rows equal to each other
/// within tolerance may trade places; without it, the rows are compared as a multiset.
pub fn compare(
    answer: &Answer,
    batches: &[RecordBatch],
    ordered: bool,
) -> Result<Vec<String>, AnswerError> {
    let actual = floe_core::text_rows::rows_as_text(batches)?;
    Ok(compare_text(answer, &actual, ordered))
}

/// [`compare`] for a result already in text form (as [`floe_core::text_rows::rows_as_text`]
/// writes it).
pub fn compare_text(answer: &Answer, actual: &[Vec<String>], ordered: bool) -> Vec<String> {
    let mut mismatches = Vec::new();
    if actual.len() != answer.rows.len() {
        mismatches.push(format!(
            "{} rows, expected {}",
            actual.len(),
            answer.rows.len()
        ));
    }
    if ordered {
        for (index, (expected, got)) in answer.rows.iter().zip(actual).enumerate() {
            if !rows_match(expected, got) && mismatches.len() < MAX_LISTED_MISMATCHES {
                mismatches.push(format!(
                    "row {}: expected {}, got {}",
                    index + 1,
                    expected.join("|"),
                    got.join("|")
                ));
            }
        }
        // Rows that tie on the ORDER BY keys may come in any order; say so rather than list
        // every shifted row, and let the caller judge.
        if !mismatches.is_empty()
            && actual.len() == answer.rows.len()
            && unmatched(answer, actual).is_empty()
        {
            mismatches = vec![
                "same rows in another order (rows tying on the ORDER BY keys may explain it)"
                    .to_string(),
            ];
        }
    } else {
        mismatches.extend(unmatched(answer, actual));
    }
    mismatches
}

/// Rows of the answer with no equal row in `actual` (each actual row used once).
fn unmatched(answer: &Answer, actual: &[Vec<String>]) -> Vec<String> {
    let mut used = vec![false; actual.len()];
    let mut missing = Vec::new();
    for expected in &answer.rows {
        let found = actual
            .iter()
            .enumerate()
            .position(|(i, got)| !used[i] && rows_match(expected, got));
        match found {
            Some(i) => used[i] = true,
            None if missing.len() < MAX_LISTED_MISMATCHES => {
                missing.push(format!("missing row {}", expected.join("|")));
            }
            None => {}
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(names: &[Option<&str>], values: &[f64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("value", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names.to_vec())),
                Arc::new(Float64Array::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn numbers_match_within_tolerance() {
        assert!(fields_match("86.2500000000000000", "86.25"));
        assert!(fields_match("1194980.0000000023", "1194979.9999999967"));
        assert!(!fields_match("86.25", "86.26"));
        assert!(!fields_match("NULL", "0"));
        assert!(fields_match("AAAA", "AAAA"));
    }

    #[test]
    fn results_compare_with_answers() {
        let answer = Answer::parse("q", "name|value\nb|2.0\nNULL|1.5\n").unwrap();
        assert_eq!(answer.columns, vec!["name", "value"]);
        let same = batch(&[Some("b"), None], &[2.0, 1.5]);
        assert!(
            compare(&answer, std::slice::from_ref(&same), true)
                .unwrap()
                .is_empty()
        );
        let swapped = batch(&[None, Some("b")], &[1.5, 2.0]);
        assert!(
            compare(&answer, std::slice::from_ref(&swapped), false)
                .unwrap()
                .is_empty()
        );
        let ordered = compare(&answer, &[swapped], true).unwrap();
        assert_eq!(ordered.len(), 1);
        assert!(ordered[0].contains("another order"), "{ordered:?}");
        let wrong = batch(&[Some("b"), None], &[2.0, 1.6]);
        let mismatches = compare(&answer, &[wrong], false).unwrap();
        assert_eq!(mismatches, vec!["missing row NULL|1.5"]);
        let short = batch(&[Some("b")], &[2.0]);
        assert!(compare(&answer, &[short], true).unwrap()[0].contains("1 rows, expected 2"));
    }
}
