//! Time travel: `FROM t <version clause>` in the syntaxes of Trino and Spark, for every dialect.
//!
//! | clause | reads |
//! |---|---|
//! | `FOR VERSION AS OF 123`, `FOR SYSTEM_VERSION AS OF 123`, `VERSION AS OF 123` | snapshot 123 |
//! | `FOR VERSION AS OF 'audit'` (and the other two) | the snapshot of branch or tag `audit` |
//! | `FOR TIMESTAMP AS OF ts`, `FOR SYSTEM_TIME AS OF ts`, `TIMESTAMP AS OF ts` | the snapshot current at `ts` |
//!
//! `ts` is a string or `TIMESTAMP '...'` literal; without a zone it is UTC.
//!
//! sqlparser parses some of these only in some dialects, and DataFusion's planner then ignores
//! the clause and reads the current snapshot. So the clause is taken out of the token stream
//! before parsing, in every dialect, and folded into the table's name
//! (`orders FOR VERSION AS OF 123`), which the Iceberg schema provider resolves against the
//! table's metadata ([`TableVersion::split`]); an alias keeps the column qualifier the table's
//! own name. Whatever clause still reaches the AST (Snowflake's `AT(...)`) is refused by
//! [`refuse_unresolved_versions`].

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace, Word};

use floe_common::table_names::TableVersion;

use super::lexer::significant;

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

fn is_layout(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// Folds every time-travel clause of `tokens` into the table name before it; see the module docs.
pub fn rewrite(tokens: &mut Vec<TokenWithSpan>) -> Result<(), ParserError> {
    let mut i = 0;
    while i < tokens.len() {
        if let Some(rewritten) = rewrite_at(tokens, i)? {
            i = rewritten;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Rewrites a clause starting at `start`, if one does; returns the index after the rewrite.
fn rewrite_at(tokens: &mut Vec<TokenWithSpan>, start: usize) -> Result<Option<usize>, ParserError> {
    let head = significant(tokens, start, 4);
    let word = |k: usize, keyword: &str| {
        head.get(k)
            .is_some_and(|&i| is_word(&tokens[i].token, keyword))
    };
    let (is_time, keywords) = if word(0, "FOR") && (word(1, "VERSION") || word(1, "SYSTEM_VERSION"))
    {
        (false, 2)
    } else if word(0, "FOR") && (word(1, "TIMESTAMP") || word(1, "SYSTEM_TIME")) {
        (true, 2)
    } else if word(0, "VERSION") {
        (false, 1)
    } else if word(0, "TIMESTAMP") {
        (true, 1)
    } else {
        return Ok(None);
    };
    if !(word(keywords, "AS") && word(keywords + 1, "OF")) {
        return Ok(None);
    }
    // The clause follows a table name: the word right before it.
    let Some(name_index) = (0..start).rev().find(|&i| !is_layout(&tokens[i].token)) else {
        return Ok(None);
    };
    let Token::Word(name) = tokens[name_index].token.clone() else {
        return Ok(None);
    };
    let after_of = head[keywords + 1] + 1;
    let (version, end) = parse_value(tokens, after_of, is_time)?;
    let table = match name.quote_style {
        Some(_) => name.value.clone(),
        None => name.value.to_lowercase(),
    };
    tokens[name_index].token = Token::Word(Word {
        value: version.name_with(&table),
        quote_style: Some('"'),
        keyword: Keyword::NoKeyword,
    });
    let mut replacement = Vec::new();
    if !alias_follows(tokens, end) {
        let span = tokens[name_index].span;
        let token = |token: Token| TokenWithSpan { token, span };
        replacement.push(token(Token::Whitespace(Whitespace::Space)));
        replacement.push(token(Token::make_keyword("AS")));
        replacement.push(token(Token::Whitespace(Whitespace::Space)));
        replacement.push(token(Token::Word(name)));
    }
    let inserted = replacement.len();
    tokens.splice(start..end, replacement);
    Ok(Some(start + inserted))
}

/// The version value starting at (or after layout from) `from`, and the index after it.
fn parse_value(
    tokens: &[TokenWithSpan],
    from: usize,
    is_time: bool,
) -> Result<(TableVersion, usize), ParserError> {
    let next = significant(tokens, from, 2);
    let token = |k: usize| next.get(k).map(|&i| &tokens[i].token);
    let expected = |what: &str| {
        let found = token(0).map_or("end of input".to_string(), ToString::to_string);
        let at = next.first().map(|&i| tokens[i].span.start);
        let location = at.map_or(String::new(), |l| format!(" at {l}"));
        ParserError::ParserError(format!(
            "time travel: expected {what}, found {found}{location}"
        ))
    };
    if is_time {
        let (literal, end) = match (token(0), token(1)) {
            (Some(Token::SingleQuotedString(text)), _) => (text.clone(), next[0] + 1),
            (Some(t), Some(Token::SingleQuotedString(text))) if is_word(t, "TIMESTAMP") => {
                (text.clone(), next[1] + 1)
            }
            _ => return Err(expected("a timestamp literal ('2024-05-01 10:00:00')")),
        };
        return Ok((TableVersion::Timestamp(literal), end));
    }
    match (token(0), token(1)) {
        (Some(Token::Number(n, _)), _) => {
            let id = n.parse().map_err(|_| expected("a snapshot id"))?;
            Ok((TableVersion::Snapshot(id), next[0] + 1))
        }
        (Some(Token::Minus), Some(Token::Number(n, _))) => {
            let id: i64 = n.parse().map_err(|_| expected("a snapshot id"))?;
            Ok((TableVersion::Snapshot(-id), next[1] + 1))
        }
        (Some(Token::SingleQuotedString(name)), _) => {
            Ok((TableVersion::Ref(name.clone()), next[0] + 1))
        }
        _ => Err(expected("a snapshot id or a branch or tag name in quotes")),
    }
}

/// Whether the tokens from `from` start with an alias (`AS x` or a bare name).
fn alias_follows(tokens: &[TokenWithSpan], from: usize) -> bool {
    let next = significant(tokens, from, 1);
    match next.first().map(|&i| &tokens[i].token) {
        Some(Token::Word(word)) => {
            word.keyword == Keyword::AS || word.keyword == Keyword::NoKeyword
        }
        _ => false,
    }
}

/// Refuses a statement in which a table still carries a version clause: one this module does
/// not rewrite (Snowflake's `AT(...)`/`BEFORE(...)`), which DataFusion would silently ignore.
pub fn refuse_unresolved_versions<V: Visit>(statement: &V) -> Result<(), String> {
    struct Versions;
    impl Visitor for Versions {
        type Break = String;
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
            if let TableFactor::Table {
                name,
                version: Some(version),
                ..
            } = factor
            {
                return ControlFlow::Break(format!(
                    "time travel `{version}` on {name} is not supported; use FOR VERSION AS OF \
                     <snapshot id | 'branch or tag'> or FOR TIMESTAMP AS OF '<timestamp>'"
                ));
            }
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Versions) {
        ControlFlow::Break(message) => Err(message),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut tokens = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        rewrite(&mut tokens).unwrap();
        tokens.iter().map(|t| t.token.to_string()).collect()
    }

    #[test]
    fn every_syntax_folds_into_the_name_with_an_alias() {
        assert_eq!(
            rewritten("SELECT * FROM s.Orders FOR SYSTEM_VERSION AS OF 42 WHERE a = 1"),
            r#"SELECT * FROM s."orders FOR VERSION AS OF 42" AS Orders WHERE a = 1"#
        );
        assert_eq!(
            rewritten("SELECT * FROM t VERSION AS OF 'audit' x"),
            r#"SELECT * FROM "t FOR VERSION AS OF 'audit'" x"#
        );
        assert_eq!(
            rewritten("SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2024-05-01 10:00:00' AS y"),
            r#"SELECT * FROM "t FOR TIMESTAMP AS OF '2024-05-01 10:00:00'" AS y"#
        );
        assert_eq!(
            rewritten("SELECT * FROM t TIMESTAMP AS OF '2024-05-01'"),
            r#"SELECT * FROM "t FOR TIMESTAMP AS OF '2024-05-01'" AS t"#
        );
        // Not a clause: a column named version, a cast to TIMESTAMP.
        assert_eq!(rewritten("SELECT version FROM t"), "SELECT version FROM t");
    }

    #[test]
    fn names_split_back_into_table_and_version() {
        for version in [
            TableVersion::Snapshot(-7),
            TableVersion::Ref("audit".into()),
            TableVersion::Timestamp("2024-05-01".into()),
        ] {
            let name = version.name_with("orders");
            assert_eq!(TableVersion::split(&name), Some(("orders", version)));
        }
        assert_eq!(TableVersion::split("orders"), None);
    }

    #[test]
    fn a_clause_without_a_value_is_an_error() {
        let mut tokens = Tokenizer::new(&GenericDialect {}, "SELECT * FROM t FOR VERSION AS OF x")
            .tokenize_with_location()
            .unwrap();
        let err = rewrite(&mut tokens).unwrap_err().to_string();
        assert!(err.contains("snapshot id"), "{err}");
    }
}
