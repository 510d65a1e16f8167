//! # floe-sql
//!
//! Floe's SQL front end: one parser for every statement, built on DataFusion's.
//!
//! A script is tokenized once with sqlparser's tokenizer ([`lexer`]), which also fixes one
//! keyword problem for all statements: a keyword directly before a `.` is a name part, so a
//! catalog called `local`, `default` or `user` can start a dotted name anywhere
//! (`INSERT INTO local.s.t` would otherwise read `LOCAL` as Hive's `INSERT ... LOCAL DIRECTORY`).
//!
//! [`parser::FloeParser`] then parses the tokens into [`FloeStatement`]s: Floe's own statements
//! (catalog navigation and Iceberg DDL, whose syntax DataFusion lacks) into Floe variants, and
//! everything else through DataFusion's `DFParser` into a DataFusion statement that the session
//! plans directly, so nothing is parsed twice. Syntax errors are DataFusion's
//! `DataFusionError::SQL` and keep sqlparser's `at Line: L, Column: C`.
//!
//! Time travel (`FOR VERSION AS OF`, `TIMESTAMP AS OF`, ...) is folded into table names at the
//! token level in every dialect ([`time_travel`]), so no dialect can parse a clause that the
//! planner would then ignore.
//!
//! [`name_pattern`] matches the JDBC-style name patterns (`%`, `_`, `\`) of Flight SQL's metadata
//! commands.
//!
//! The shell uses [`split_statements`] and [`is_complete`] from the same tokenizer, so it splits
//! scripts exactly where the session does.

pub mod ast;
pub mod lexer;
pub mod metadata_names;
pub mod name_pattern;
pub mod parser;
pub mod time_travel;

pub use ast::{CreateTable, FloeStatement, TableProperty};
pub use lexer::{is_complete, split_statements};
pub use parser::{FloeParser, parse_sql};
