//! Lexical helpers over raw SQL text: splitting a script into statements and finding top-level
//! keywords, both aware of quotes and comments.
//!
//! Floe reads a few clauses DataFusion's parser does not know (`PARTITIONED BY` with Iceberg
//! transforms, `TBLPROPERTIES`) before handing the rest of a statement to DataFusion; those
//! clauses must only be found outside string literals, quoted identifiers and comments.

/// A word outside quotes and comments, with its byte range and parenthesis depth.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word, upper-cased for keyword comparison.
    pub upper: String,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
    /// Parenthesis nesting depth at the word.
    pub depth: u32,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Code,
    SingleQuote,
    DoubleQuote,
    Backtick,
    LineComment,
    BlockComment,
}

/// Walks `sql`, calling `on_code` for each character that is code (not quoted, not comment).
fn scan(sql: &str, mut on_code: impl FnMut(usize, char, u32)) -> State {
    let mut state = State::Code;
    let mut depth = 0u32;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        match state {
            State::Code => match c {
                '\'' => state = State::SingleQuote,
                '"' => state = State::DoubleQuote,
                '`' => state = State::Backtick,
                '-' if next == Some('-') => state = State::LineComment,
                '/' if next == Some('*') => {
                    chars.next();
                    state = State::BlockComment;
                }
                _ => {
                    if c == ')' {
                        depth = depth.saturating_sub(1);
                    }
                    on_code(i, c, depth);
                    if c == '(' {
                        depth += 1;
                    }
                }
            },
            // A doubled quote inside a literal is an escaped quote: leaving and re-entering the
            // state on the second one gives the same result.
            State::SingleQuote if c == '\'' => state = State::Code,
            State::DoubleQuote if c == '"' => state = State::Code,
            State::Backtick if c == '`' => state = State::Code,
            State::LineComment if c == '\n' => state = State::Code,
            State::BlockComment if c == '*' && next == Some('/') => {
                chars.next();
                state = State::Code;
            }
            _ => {}
        }
    }
    state
}

/// Splits a script into statements at top-level `;`, dropping empty ones (and comment-only
/// ones). The returned texts exclude the `;`.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    scan(sql, |i, c, _| {
        if c == ';' {
            cuts.push(i);
        }
    });
    let mut statements = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(sql.len())) {
        let text = &sql[start..cut.min(sql.len())];
        if !words(text).is_empty() {
            statements.push(text.trim().to_string());
        }
        start = cut + 1;
    }
    statements
}

/// Whether `sql` ends a statement: its last code character is `;` and no quote or comment is
/// left open. The shell keeps reading lines until this holds.
pub fn is_complete(sql: &str) -> bool {
    let mut last = None;
    let state = scan(sql, |_, c, _| {
        if !c.is_whitespace() {
            last = Some(c);
        }
    });
    matches!(state, State::Code | State::LineComment) && last == Some(';')
}

/// The words of `sql` outside quotes and comments.
pub fn words(sql: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(usize, u32)> = None;
    let flush = |current: &mut Option<(usize, u32)>, end: usize, words: &mut Vec<Word>| {
        if let Some((start, depth)) = current.take() {
            words.push(Word {
                upper: sql[start..end].to_uppercase(),
                start,
                end,
                depth,
            });
        }
    };
    let mut last_end = 0;
    scan(sql, |i, c, depth| {
        let is_word_char = c.is_alphanumeric() || c == '_';
        match (&current, is_word_char) {
            (None, true) => current = Some((i, depth)),
            (Some(_), true) if i != last_end => {
                // A quote or comment split the word: close the old one.
                flush(&mut current, last_end, &mut words);
                current = Some((i, depth));
            }
            (Some(_), false) => flush(&mut current, i, &mut words),
            _ => {}
        }
        last_end = i + c.len_utf8();
    });
    flush(&mut current, last_end, &mut words);
    words
}

/// Byte offset of the `)` matching the `(` at `open`.
pub fn matching_paren(sql: &str, open: usize) -> Option<usize> {
    let mut found = None;
    let mut base_depth = None;
    scan(sql, |i, c, depth| {
        if found.is_some() {
            return;
        }
        if i == open && c == '(' {
            base_depth = Some(depth);
        } else if c == ')' && Some(depth) == base_depth && i > open {
            found = Some(i);
        }
    });
    found
}

/// The byte offset of the first code character at or after `from` that is not whitespace.
pub fn next_code_char(sql: &str, from: usize) -> Option<(usize, char)> {
    let mut found = None;
    scan(sql, |i, c, _| {
        if found.is_none() && i >= from && !c.is_whitespace() {
            found = Some((i, c));
        }
    });
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "select ';' as a; -- one; two\nselect \"x;y\" from t; /* ; */ ;  ";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert_eq!(statements[0], "select ';' as a");
        assert!(statements[1].starts_with("-- one; two\nselect \"x;y\""));
    }

    #[test]
    fn completeness() {
        assert!(is_complete("select 1;"));
        assert!(is_complete("select 1; -- done"));
        assert!(!is_complete("select ';"));
        assert!(!is_complete("select 1"));
        assert!(!is_complete("select 1 /* ; */"));
    }

    #[test]
    fn words_and_parens() {
        let sql = "CREATE TABLE t (a int) PARTITIONED BY (day(ts), 'by')";
        let w = words(sql);
        let by = w.iter().find(|w| w.upper == "PARTITIONED").unwrap();
        assert_eq!(by.depth, 0);
        let (open, c) =
            next_code_char(sql, w[w.iter().position(|x| x.upper == "BY").unwrap()].end).unwrap();
        assert_eq!(c, '(');
        assert_eq!(matching_paren(sql, open), Some(sql.len() - 1));
        assert!(
            !w.iter()
                .any(|w| w.upper == "'BY'" || (w.upper == "BY" && w.depth == 1))
        );
    }
}
