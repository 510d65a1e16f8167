//! [`FloeParser`]: parses a script into [`FloeStatement`]s, Floe's own syntax first and
//! DataFusion's `DFParser` for the rest.
//!
//! Floe's statements are recognised by their leading words, looked at before anything is
//! consumed, so a statement that is not Floe's reaches `DFParser` whole. Their names, column
//! definitions, expressions and queries are parsed by sqlparser's own routines, so they read
//! exactly as in DataFusion's statements.

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, DFParserBuilder};
use datafusion::sql::sqlparser::ast::ObjectName;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::ast::{CreateTable, FloeStatement, TableProperty};
use super::lexer;

/// Parses every statement of `sql` (separated by `;`).
pub fn parse_sql(
    sql: &str,
    dialect: &dyn Dialect,
    recursion_limit: usize,
) -> Result<Vec<FloeStatement>, DataFusionError> {
    FloeParser::new(sql, dialect, recursion_limit)?.parse_statements()
}

/// Floe's SQL parser: DataFusion's `DFParser` over Floe's tokens, extended with Floe's
/// statements.
pub struct FloeParser<'a> {
    inner: DFParser<'a>,
}

impl std::fmt::Debug for FloeParser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloeParser").finish_non_exhaustive()
    }
}

impl<'a> FloeParser<'a> {
    /// Tokenizes `sql` (see [`lexer::tokenize`]) for parsing in `dialect`.
    pub fn new(
        sql: &str,
        dialect: &'a dyn Dialect,
        recursion_limit: usize,
    ) -> Result<Self, DataFusionError> {
        let tokens = lexer::tokenize(sql, dialect)?;
        let inner = DFParserBuilder::new(tokens)
            .with_dialect(dialect)
            .with_recursion_limit(recursion_limit)
            .build()?;
        Ok(Self { inner })
    }

    /// Parses statements up to the end of the input; empty statements (`;;`) are skipped.
    pub fn parse_statements(&mut self) -> Result<Vec<FloeStatement>, DataFusionError> {
        let mut statements = Vec::new();
        loop {
            while self.parser().consume_token(&Token::SemiColon) {}
            if self.parser().peek_token_ref().token == Token::EOF {
                return Ok(statements);
            }
            statements.push(self.parse_statement()?);
            let next = self.parser().peek_token();
            if !matches!(next.token, Token::SemiColon | Token::EOF) {
                return Ok(self.parser().expected("end of statement", next)?);
            }
        }
    }

    /// Parses one statement.
    pub fn parse_statement(&mut self) -> Result<FloeStatement, DataFusionError> {
        let statement = if self.parse_words(&["USE"]) {
            Some(FloeStatement::Use(self.object_name()?))
        } else if self.peek_words(&["SHOW"]) {
            self.parse_show()?
        } else if self.peek_words(&["CREATE"]) {
            self.parse_create()?
        } else if self.peek_words(&["DROP"]) {
            self.parse_drop()?
        } else {
            None
        };
        match statement {
            Some(statement) => Ok(statement),
            None => Ok(FloeStatement::DataFusion(Box::new(
                self.inner.parse_statement()?,
            ))),
        }
    }

    fn parser(&mut self) -> &mut Parser<'a> {
        &mut self.inner.parser
    }

    /// Whether the `n`th token ahead is the unquoted word `word` (any case). A word before a
    /// `.` is a name part (see [`lexer`]), never one of Floe's keywords.
    fn word_at(&self, n: usize, word: &str) -> bool {
        let parser = &self.inner.parser;
        match &parser.peek_nth_token_ref(n).token {
            Token::Word(w) => {
                w.quote_style.is_none()
                    && w.value.eq_ignore_ascii_case(word)
                    && parser.peek_nth_token_ref(n + 1).token != Token::Period
            }
            _ => false,
        }
    }

    fn peek_words(&self, words: &[&str]) -> bool {
        words.iter().enumerate().all(|(i, w)| self.word_at(i, w))
    }

    /// Consumes `words` if they come next.
    fn parse_words(&mut self, words: &[&str]) -> bool {
        if !self.peek_words(words) {
            return false;
        }
        self.skip(words.len());
        true
    }

    fn skip(&mut self, tokens: usize) {
        for _ in 0..tokens {
            self.parser().next_token();
        }
    }

    /// The first of `words` that comes next, consumed.
    fn parse_one_of(&mut self, words: &[&'static str]) -> Option<&'static str> {
        let found = words.iter().copied().find(|w| self.word_at(0, w))?;
        self.skip(1);
        Some(found)
    }

    fn object_name(&mut self) -> Result<ObjectName, ParserError> {
        self.parser().parse_object_name(false)
    }

    /// `[FROM | IN] name`, if there.
    fn parse_from_or_in(&mut self) -> Result<Option<ObjectName>, ParserError> {
        match self.parse_one_of(&["FROM", "IN"]) {
            Some(_) => Ok(Some(self.object_name()?)),
            None => Ok(None),
        }
    }

    /// Floe's `SHOW` statements; `None` (nothing consumed) for DataFusion's (`SHOW COLUMNS`,
    /// `SHOW ALL`, variables).
    fn parse_show(&mut self) -> Result<Option<FloeStatement>, ParserError> {
        const SCHEMAS: [&str; 3] = ["SCHEMAS", "DATABASES", "NAMESPACES"];
        if self.parse_words(&["SHOW", "CATALOGS"]) {
            return Ok(Some(FloeStatement::ShowCatalogs));
        }
        if SCHEMAS.iter().any(|w| self.peek_words(&["SHOW", w])) {
            self.skip(2);
            let catalog = self.parse_from_or_in()?;
            return Ok(Some(FloeStatement::ShowSchemas { catalog }));
        }
        if self.parse_words(&["SHOW", "TABLES"]) {
            let namespace = self.parse_from_or_in()?;
            return Ok(Some(FloeStatement::ShowTables { namespace }));
        }
        if self.parse_words(&["SHOW", "CREATE", "TABLE"]) {
            let table = self.object_name()?;
            return Ok(Some(FloeStatement::ShowCreateTable { table }));
        }
        Ok(None)
    }

    /// Floe's `CREATE` statements; `None` (nothing consumed) for DataFusion's
    /// (`CREATE EXTERNAL TABLE`, views, functions).
    fn parse_create(&mut self) -> Result<Option<FloeStatement>, ParserError> {
        const SCHEMA: [&str; 3] = ["SCHEMA", "DATABASE", "NAMESPACE"];
        if SCHEMA.iter().any(|w| self.peek_words(&["CREATE", w])) {
            self.skip(2);
            let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
            let name = self.object_name()?;
            return Ok(Some(FloeStatement::CreateSchema {
                name,
                if_not_exists,
            }));
        }
        // CREATE [OR REPLACE] [TEMP | TEMPORARY] TABLE
        let mut at = 1;
        let or_replace = self.word_at(at, "OR") && self.word_at(at + 1, "REPLACE");
        if or_replace {
            at += 2;
        }
        let temporary = self.word_at(at, "TEMP") || self.word_at(at, "TEMPORARY");
        if temporary {
            at += 1;
        }
        if !self.word_at(at, "TABLE") {
            return Ok(None);
        }
        self.skip(at + 1);
        let table = self.parse_create_table(or_replace, temporary)?;
        Ok(Some(FloeStatement::CreateTable(Box::new(table))))
    }

    /// The rest of a `CREATE TABLE` after `TABLE`.
    fn parse_create_table(
        &mut self,
        or_replace: bool,
        temporary: bool,
    ) -> Result<CreateTable, ParserError> {
        let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
        let name = self.object_name()?;
        let (columns, constraints) = self.parser().parse_columns()?;
        let mut table = CreateTable {
            name,
            or_replace,
            temporary,
            if_not_exists,
            columns,
            constraints,
            using: None,
            partitioned_by: Vec::new(),
            location: None,
            properties: Vec::new(),
            query: None,
        };
        let mut seen = Vec::new();
        loop {
            let start = self.parser().peek_token().span.start;
            let clause = if self.parse_words(&["USING"]) {
                table.using = Some(self.parser().parse_identifier()?);
                "USING"
            } else if self.parse_words(&["PARTITIONED", "BY"]) {
                let parser = self.parser();
                parser.expect_token(&Token::LParen)?;
                table.partitioned_by = parser.parse_comma_separated(Parser::parse_expr)?;
                parser.expect_token(&Token::RParen)?;
                "PARTITIONED BY"
            } else if self.parse_words(&["LOCATION"]) {
                table.location = Some(self.parser().parse_literal_string()?);
                "LOCATION"
            } else if self.parse_words(&["TBLPROPERTIES"]) {
                table.properties = self.parse_properties()?;
                "TBLPROPERTIES"
            } else {
                break;
            };
            if seen.contains(&clause) {
                return Err(ParserError::ParserError(format!(
                    "{clause} given more than once{start}"
                )));
            }
            seen.push(clause);
        }
        if self.parse_words(&["AS"]) {
            table.query = Some(self.parser().parse_query()?);
        }
        Ok(table)
    }

    /// `( key [=] value, ... )`; a value is one literal, so it may hold commas.
    fn parse_properties(&mut self) -> Result<Vec<TableProperty>, ParserError> {
        self.parser().expect_token(&Token::LParen)?;
        let mut properties = Vec::new();
        loop {
            let key = self.parse_property_key()?;
            let _ = self.parser().consume_token(&Token::Eq);
            let value = self.parse_property_value()?;
            properties.push(TableProperty { key, value });
            if !self.parser().consume_token(&Token::Comma) {
                break;
            }
        }
        self.parser().expect_token(&Token::RParen)?;
        Ok(properties)
    }

    /// `'write.format.default'`, or the same unquoted as a dotted name.
    fn parse_property_key(&mut self) -> Result<String, ParserError> {
        let token = self.parser().peek_token();
        match &token.token {
            Token::SingleQuotedString(key) | Token::DoubleQuotedString(key) => {
                let key = key.clone();
                self.parser().next_token();
                Ok(key)
            }
            Token::Word(_) => {
                let name = self.object_name()?;
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .map(|part| {
                        part.as_ident()
                            .map_or_else(|| part.to_string(), |i| i.value.clone())
                    })
                    .collect();
                Ok(parts.join("."))
            }
            _ => self
                .parser()
                .expected("a property key such as 'write.format.default'", token),
        }
    }

    /// A string, number or boolean literal, as text.
    fn parse_property_value(&mut self) -> Result<String, ParserError> {
        let token = self.parser().next_token();
        let value = match &token.token {
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::EscapedStringLiteral(s)
            | Token::NationalStringLiteral(s) => Some(s.clone()),
            // The generic dialect reads "text" as a quoted name.
            Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
            Token::Word(w)
                if w.value.eq_ignore_ascii_case("true")
                    || w.value.eq_ignore_ascii_case("false") =>
            {
                Some(w.value.to_ascii_lowercase())
            }
            Token::Number(n, _) => Some(n.clone()),
            Token::Minus => match self.parser().next_token().token {
                Token::Number(n, _) => Some(format!("-{n}")),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(value) => Ok(value),
            None => self
                .parser()
                .expected("a property value (a string, number or boolean)", token),
        }
    }

    /// Floe's `DROP` statements; `None` (nothing consumed) for DataFusion's (views, functions).
    fn parse_drop(&mut self) -> Result<Option<FloeStatement>, ParserError> {
        const SCHEMA: [&str; 3] = ["SCHEMA", "DATABASE", "NAMESPACE"];
        if SCHEMA.iter().any(|w| self.peek_words(&["DROP", w])) {
            self.skip(2);
            let if_exists = self.parse_words(&["IF", "EXISTS"]);
            let name = self.object_name()?;
            let cascade = self.parse_one_of(&["CASCADE", "RESTRICT"]) == Some("CASCADE");
            return Ok(Some(FloeStatement::DropSchema {
                name,
                if_exists,
                cascade,
            }));
        }
        if self.parse_words(&["DROP", "TABLE"]) {
            let if_exists = self.parse_words(&["IF", "EXISTS"]);
            let name = self.object_name()?;
            let purge = self.parse_words(&["PURGE"]);
            return Ok(Some(FloeStatement::DropTable {
                name,
                if_exists,
                purge,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::sql::parser::Statement as DFStatement;
    use datafusion::sql::sqlparser::ast::Statement as SQLStatement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    use super::*;

    fn parse(sql: &str) -> Vec<FloeStatement> {
        parse_sql(sql, &GenericDialect {}, 50).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn one(sql: &str) -> FloeStatement {
        let mut statements = parse(sql);
        assert_eq!(statements.len(), 1, "{sql}: {statements:?}");
        statements.remove(0)
    }

    fn error(sql: &str) -> String {
        match parse_sql(sql, &GenericDialect {}, 50) {
            Ok(statements) => panic!("{sql} parsed: {statements:?}"),
            Err(err) => {
                assert!(matches!(err, DataFusionError::SQL(..)), "{err:?}");
                err.to_string()
            }
        }
    }

    fn name(text: &str) -> ObjectName {
        let dialect = GenericDialect {};
        Parser::new(&dialect)
            .try_with_sql(text)
            .unwrap()
            .parse_object_name(false)
            .unwrap()
    }

    /// The sqlparser statement DataFusion gets, printed.
    fn datafusion_text(statement: &FloeStatement) -> String {
        match statement {
            FloeStatement::DataFusion(statement) => statement.to_string(),
            other => panic!("not a DataFusion statement: {other:?}"),
        }
    }

    #[test]
    fn keyword_named_catalogs_work_in_every_statement() {
        for catalog in ["local", "default", "user", "table", "if"] {
            let t = format!("{catalog}.s.t");
            let ns = format!("{catalog}.s");
            assert_eq!(one(&format!("USE {ns}")), FloeStatement::Use(name(&ns)));
            assert_eq!(
                one(&format!("SHOW TABLES IN {ns}")),
                FloeStatement::ShowTables {
                    namespace: Some(name(&ns))
                }
            );
            assert_eq!(
                one(&format!("SHOW CREATE TABLE {t}")),
                FloeStatement::ShowCreateTable { table: name(&t) }
            );
            assert_eq!(
                one(&format!("CREATE SCHEMA IF NOT EXISTS {ns}")),
                FloeStatement::CreateSchema {
                    name: name(&ns),
                    if_not_exists: true
                }
            );
            assert_eq!(
                one(&format!("DROP SCHEMA IF EXISTS {ns} CASCADE")),
                FloeStatement::DropSchema {
                    name: name(&ns),
                    if_exists: true,
                    cascade: true
                }
            );
            assert_eq!(
                one(&format!("DROP TABLE IF EXISTS {t} PURGE")),
                FloeStatement::DropTable {
                    name: name(&t),
                    if_exists: true,
                    purge: true
                }
            );
            let FloeStatement::CreateTable(create) =
                one(&format!("CREATE TABLE {t} AS SELECT * FROM {t}"))
            else {
                panic!("not CREATE TABLE");
            };
            assert_eq!(create.name, name(&t));
            assert!(create.query.unwrap().to_string().contains(&t));

            for (sql, expected) in [
                (
                    format!("INSERT INTO {t} VALUES (1)"),
                    format!("INSERT INTO {t} VALUES (1)"),
                ),
                (
                    format!("INSERT INTO {t} SELECT {t}.id FROM {t}"),
                    format!("INSERT INTO {t} SELECT {t}.id FROM {t}"),
                ),
                (format!("SELECT * FROM {t}"), format!("SELECT * FROM {t}")),
                (format!("DESCRIBE {t}"), format!("DESCRIBE {t}")),
            ] {
                let statement = one(&sql);
                assert_eq!(datafusion_text(&statement), expected, "{sql}");
            }
            let explain = one(&format!("EXPLAIN INSERT INTO {t} VALUES (1)"));
            let FloeStatement::DataFusion(explain) = explain else {
                panic!("EXPLAIN is DataFusion's");
            };
            let DFStatement::Explain(explain) = *explain else {
                panic!("not EXPLAIN: {explain:?}");
            };
            let DFStatement::Statement(inner) = *explain.statement else {
                panic!("not a sqlparser statement");
            };
            assert!(
                matches!(*inner, SQLStatement::Insert(_)),
                "EXPLAIN of {inner:?}"
            );
        }
    }

    #[test]
    fn create_table_clauses_in_any_order() {
        let sql = "CREATE TABLE IF NOT EXISTS local.s.t (id INT, ts TIMESTAMP, PRIMARY KEY (id)) \
                   TBLPROPERTIES ('format-version' = '2', 'list' = 'a,b', write.format.default \
                   'parquet', 'n' = 10, 'flag' = true) \
                   LOCATION '/tmp/x' USING iceberg \
                   PARTITIONED BY (day(ts), bucket(4, id), truncate(2, \"Name\"))";
        let FloeStatement::CreateTable(create) = one(sql) else {
            panic!("not CREATE TABLE");
        };
        assert!(create.if_not_exists && !create.or_replace && !create.temporary);
        assert_eq!(create.columns.len(), 2);
        assert_eq!(create.constraints.len(), 1);
        assert_eq!(create.using.unwrap().value, "iceberg");
        assert_eq!(create.location.as_deref(), Some("/tmp/x"));
        let items: Vec<String> = create
            .partitioned_by
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(items, ["day(ts)", "bucket(4, id)", "truncate(2, \"Name\")"]);
        let properties: Vec<(&str, &str)> = create
            .properties
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            properties,
            [
                ("format-version", "2"),
                ("list", "a,b"),
                ("write.format.default", "parquet"),
                ("n", "10"),
                ("flag", "true"),
            ]
        );
        assert!(create.query.is_none());

        let FloeStatement::CreateTable(create) =
            one("create or replace temporary table t partitioned by (k) as select 1 as k")
        else {
            panic!("not CREATE TABLE");
        };
        assert!(create.or_replace && create.temporary && create.columns.is_empty());
        assert_eq!(create.query.unwrap().to_string(), "SELECT 1 AS k");
    }

    #[test]
    fn other_statements_go_to_datafusion() {
        for sql in [
            "CREATE EXTERNAL TABLE p STORED AS PARQUET LOCATION '/tmp/p'",
            "CREATE VIEW v AS SELECT 1",
            "DROP VIEW v",
            "SHOW COLUMNS FROM t",
            "SET datafusion.execution.target_partitions = 4",
            "COPY (SELECT 1) TO '/tmp/x.parquet'",
        ] {
            assert!(matches!(one(sql), FloeStatement::DataFusion(_)), "{sql}");
        }
    }

    #[test]
    fn scripts_and_statement_ends() {
        let statements = parse("USE s; ; SHOW TABLES;\nSELECT ';' AS x;");
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[1], FloeStatement::ShowTables { namespace: None });
        assert!(parse(" -- nothing\n").is_empty());
        let err = error("SHOW TABLES IN s extra");
        assert!(
            err.contains("end of statement") && err.contains("Line: 1, Column: 18"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        let err = error("SELECT 1;\nCREATE TABLE t (a INT) TBLPROPERTIES ('a' = )");
        assert!(
            err.contains("property value") && err.contains("Line: 2, Column: 45"),
            "{err}"
        );
        let err = error("CREATE TABLE t (a INT) LOCATION '/a' LOCATION '/b'");
        assert!(
            err.contains("LOCATION given more than once at Line: 1, Column: 38"),
            "{err}"
        );
        let err = error("DROP TABLE");
        assert!(err.contains("Expected: identifier"), "{err}");
        let err = error("SELECT 'open");
        assert!(err.contains("Unterminated string literal"), "{err}");
    }
}
