//! Tokenizing SQL with sqlparser's tokenizer, and the shell's script helpers on top of it.
//!
//! [`tokenize`] is where the one keyword rule lives: an unquoted keyword directly followed by
//! `.` is a name part, not a keyword. sqlparser decides between a keyword and a name by the
//! keyword alone in several places (`INSERT INTO local.s.t` reads `LOCAL` as Hive's
//! `INSERT ... LOCAL DIRECTORY`, `DESCRIBE TABLE ...`, `SELECT user.s.t.c`), so a catalog or
//! namespace named after a keyword would break statement by statement. No SQL syntax puts a `.`
//! right after a keyword that stays a keyword: a `.` followed by a digit is a number token
//! (`AND .5`), not a period, so only names are affected.

use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// Tokens of `sql` with their locations, keywords before a `.` turned into names, `?`
/// parameters numbered, Spark's
/// metadata-table names turned into Trino's ([`super::metadata_names`]) and time-travel clauses
/// folded into table names ([`super::time_travel`]).
pub fn tokenize(sql: &str, dialect: &dyn Dialect) -> Result<Vec<TokenWithSpan>, ParserError> {
    let mut tokens = Tokenizer::new(dialect, sql).tokenize_with_location()?;
    keywords_before_periods_are_names(&mut tokens);
    number_question_mark_placeholders(&mut tokens);
    super::metadata_names::rewrite(&mut tokens);
    super::time_travel::rewrite(&mut tokens)?;
    Ok(tokens)
}

/// The keyword rule (see the module docs). Whitespace and comments may sit between the word and
/// the `.`, as they may inside any dotted name.
fn keywords_before_periods_are_names(tokens: &mut [TokenWithSpan]) {
    let mut period_follows = false;
    for token in tokens.iter_mut().rev() {
        match &mut token.token {
            Token::Whitespace(_) => continue,
            Token::Word(word) if period_follows && word.quote_style.is_none() => {
                word.keyword = Keyword::NoKeyword;
            }
            _ => {}
        }
        period_follows = token.token == Token::Period;
    }
}

/// JDBC's and ODBC's `?` parameters become `$1`, `$2`, ... in the order they appear in each
/// statement: DataFusion binds parameters by position only in that form (every `?` would be the
/// same named parameter).
fn number_question_mark_placeholders(tokens: &mut [TokenWithSpan]) {
    let mut next = 1;
    for token in tokens.iter_mut() {
        match &mut token.token {
            Token::SemiColon => next = 1,
            Token::Placeholder(name) if name == "?" => {
                *name = format!("${next}");
                next += 1;
            }
            _ => {}
        }
    }
}

/// Indices of the next `n` tokens other than whitespace and comments, from `start` on.
pub(crate) fn significant(tokens: &[TokenWithSpan], start: usize, n: usize) -> Vec<usize> {
    (start..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .take(n)
        .collect()
}

/// Whether `token` is layout only (whitespace or a comment).
fn is_layout(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_) | Token::EOF)
}

/// Maps sqlparser's 1-based line/column locations (columns count characters) to byte offsets.
struct LineIndex<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(sql: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { sql, line_starts }
    }

    fn offset(&self, location: Location) -> usize {
        let line = usize::try_from(location.line).unwrap_or(usize::MAX);
        let Some(&start) = line.checked_sub(1).and_then(|l| self.line_starts.get(l)) else {
            return self.sql.len();
        };
        let column = usize::try_from(location.column)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        self.sql[start..]
            .char_indices()
            .nth(column)
            .map_or(self.sql.len(), |(i, _)| start + i)
    }
}

/// Splits a script into statement texts at top-level `;` (not in literals, quoted names or
/// comments), dropping empty and comment-only ones; each text runs from its first token to
/// its last, without the `;`. When the script does not tokenize (an unterminated literal),
/// the statements before the bad one are split and the rest is returned whole, so the
/// session reports the error at its position.
pub fn split_statements(sql: &str) -> Vec<String> {
    let dialect = GenericDialect {};
    let mut tokens = Vec::new();
    let failed = Tokenizer::new(&dialect, sql)
        .tokenize_with_location_into_buf(&mut tokens)
        .is_err();
    let index = LineIndex::new(sql);
    let mut statements = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for token in &tokens {
        if is_layout(&token.token) {
            continue;
        }
        if token.token == Token::SemiColon {
            if let Some((start, end)) = current.take() {
                statements.push(sql[start..end].to_string());
            }
            continue;
        }
        let end = index.offset(token.span.end);
        match &mut current {
            Some((_, current_end)) => *current_end = end,
            None => current = Some((index.offset(token.span.start), end)),
        }
    }
    if failed {
        let rest_start = match current {
            Some((start, _)) => start,
            None => tokens.last().map_or(0, |t| index.offset(t.span.end)),
        };
        let rest = sql[rest_start..].trim();
        if !rest.is_empty() {
            statements.push(rest.to_string());
        }
    } else if let Some((start, end)) = current {
        statements.push(sql[start..end].to_string());
    }
    statements
}

/// Whether `sql` ends a statement: its last token other than whitespace and comments is `;`,
/// and no literal, quoted name or comment is left open. The shell reads lines until this holds.
pub fn is_complete(sql: &str) -> bool {
    let dialect = GenericDialect {};
    match Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(tokens) => tokens
            .iter()
            .rev()
            .find(|t| !is_layout(&t.token))
            .is_some_and(|t| t.token == Token::SemiColon),
        // More lines can close an open literal or comment; any other tokenizer error cannot be
        // fixed by reading on, so a `;` at the end sends the text and the session names it.
        Err(err) => {
            let open = err.message.contains("Unterminated") || err.message.contains("EOF");
            !open && sql.trim_end().ends_with(';')
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keywords_before_a_period_are_names() {
        let tokens = tokenize(
            "INSERT INTO local . s.t SELECT a AND .5",
            &GenericDialect {},
        )
        .unwrap();
        let keyword_of = |value: &str| {
            tokens.iter().find_map(|t| match &t.token {
                Token::Word(w) if w.value == value => Some(w.keyword),
                _ => None,
            })
        };
        assert_eq!(keyword_of("local"), Some(Keyword::NoKeyword));
        assert_eq!(keyword_of("INTO"), Some(Keyword::INTO));
        // `.5` is a number, so `AND` stays a keyword.
        assert_eq!(keyword_of("AND"), Some(Keyword::AND));
    }

    #[test]
    fn question_marks_are_numbered_per_statement() {
        let tokens = tokenize("SELECT ?, '?', ? ; SELECT ?", &GenericDialect {}).unwrap();
        let placeholders: Vec<String> = tokens
            .iter()
            .filter_map(|t| match &t.token {
                Token::Placeholder(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(placeholders, ["$1", "$2", "$1"]);
    }

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "select ';' as a; -- one; two\nselect \"x;y\" from t; /* ; */ ;  ";
        let statements = split_statements(sql);
        assert_eq!(statements, vec!["select ';' as a", "select \"x;y\" from t"]);
        let sql = "select 'é;' ;\n  select\n 2;";
        assert_eq!(split_statements(sql), vec!["select 'é;'", "select\n 2"]);
        // An unterminated literal: what comes before still splits, the rest stays whole.
        let sql = "select 1; select 'oops; select 3";
        assert_eq!(
            split_statements(sql),
            vec!["select 1", "select 'oops; select 3"]
        );
        assert!(split_statements(" -- nothing\n").is_empty());
    }

    #[test]
    fn completeness() {
        assert!(is_complete("select 1;"));
        assert!(is_complete("select 1; -- done"));
        assert!(!is_complete("select ';"));
        assert!(!is_complete("select 1"));
        assert!(!is_complete("select 1 /* ; */"));
        assert!(!is_complete("select 1 /* ; "));
    }
}
