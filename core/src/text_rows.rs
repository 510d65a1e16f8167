//! Result rows as text, the way sqllogictest files and reference answers write them: `NULL`
//! for nulls, `(empty)` for empty strings, Arrow's display format for everything else.

use arrow::array::{Array, RecordBatch};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Every row of `batches`, each as one string per column.
pub fn rows_as_text(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .zip(batch.columns())
                    .map(|(formatter, column)| {
                        let text = formatter.value(row).to_string();
                        if text.is_empty() && !column.is_null(row) {
                            "(empty)".to_string()
                        } else {
                            text
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}
