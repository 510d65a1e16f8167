//! Spark's names for Iceberg metadata tables, `catalog.namespace.table.snapshots`, rewritten to
//! Trino's, `catalog.namespace."table$snapshots"`, which the schema provider resolves
//! (`floe_iceberg::metadata_tables`).
//!
//! DataFusion takes at most three name parts, so a four-part name right after `FROM` or `JOIN`
//! whose last part names a metadata table can mean nothing else.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use super::lexer::significant;
use floe_common::table_names::METADATA_TABLE_NAMES;

fn normalized(word: &Word) -> String {
    match word.quote_style {
        Some(_) => word.value.clone(),
        None => word.value.to_lowercase(),
    }
}

/// Rewrites every `FROM a.b.t.<metadata table>` (or `JOIN ...`); see the module docs.
pub fn rewrite(tokens: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i < tokens.len() {
        let starts_relation = matches!(
            &tokens[i].token,
            Token::Word(w) if w.quote_style.is_none() && matches!(w.keyword, Keyword::FROM | Keyword::JOIN)
        );
        if starts_relation {
            rewrite_name_after(tokens, i + 1);
        }
        i += 1;
    }
}

fn rewrite_name_after(tokens: &mut Vec<TokenWithSpan>, from: usize) {
    // name . name . name . name, then anything but another `.` or a `(`.
    let parts = significant(tokens, from, 8);
    if parts.len() < 7 {
        return;
    }
    let is_word = |k: usize| matches!(tokens[parts[k]].token, Token::Word(_));
    let is_period = |k: usize| tokens[parts[k]].token == Token::Period;
    if !(is_word(0)
        && is_period(1)
        && is_word(2)
        && is_period(3)
        && is_word(4)
        && is_period(5)
        && is_word(6))
    {
        return;
    }
    if parts
        .get(7)
        .is_some_and(|&i| matches!(tokens[i].token, Token::Period | Token::LParen))
    {
        return;
    }
    let (Token::Word(table), Token::Word(kind)) =
        (&tokens[parts[4]].token, &tokens[parts[6]].token)
    else {
        return;
    };
    let kind = normalized(kind);
    if !METADATA_TABLE_NAMES.contains(&kind.as_str()) {
        return;
    }
    tokens[parts[4]].token = Token::Word(Word {
        value: format!("{}${kind}", normalized(table)),
        quote_style: Some('"'),
        keyword: Keyword::NoKeyword,
    });
    tokens.drain(parts[4] + 1..=parts[6]);
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
        rewrite(&mut tokens);
        tokens.iter().map(|t| t.token.to_string()).collect()
    }

    #[test]
    fn four_part_metadata_names_become_trino_names() {
        assert_eq!(
            rewritten("SELECT * FROM lake.ns.Orders.snapshots WHERE x = 1"),
            r#"SELECT * FROM lake.ns."orders$snapshots" WHERE x = 1"#
        );
        assert_eq!(
            rewritten("SELECT 1 FROM t JOIN lake.ns.t.files f ON true"),
            r#"SELECT 1 FROM t JOIN lake.ns."t$files" f ON true"#
        );
        // Three parts, another last part, or a column reference: unchanged.
        for sql in [
            "SELECT * FROM ns.t.snapshots",
            "SELECT * FROM a.b.c.d",
            "SELECT lake.ns.t.files FROM lake.ns.t",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }
}
