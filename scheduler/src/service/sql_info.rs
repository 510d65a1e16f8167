//! What the Flight SQL front door says about itself: `GetSqlInfo` (server name and version, the
//! SQL it speaks) and `GetXdbcTypeInfo` (the SQL types ODBC's `SQLGetTypeInfo` and JDBC's
//! `getTypeInfo` list). Both are built once per process.
//!
//! The values describe Floe's SQL as DataFusion parses and runs it: identifiers fold to lower
//! case unless quoted with `"`, `NULL`s sort last ascending (high), no transactions (every
//! statement commits on its own), DDL for namespaces and tables but not catalogs (those come from
//! `floe.toml`). The function lists are DataFusion's built-in scalar functions by their
//! documented section, so they stay true as DataFusion adds functions.

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedGroupBy, SqlSupportedSubqueries,
    SqlSupportedTransaction, SqlSupportedUnions, SupportedSqlGrammar, XdbcDataType,
    XdbcDatetimeSubcode,
};
use datafusion::logical_expr::scalar_doc_sections::{
    DOC_SECTION_DATETIME, DOC_SECTION_MATH, DOC_SECTION_STRING,
};
use datafusion::logical_expr::{DocSection, ScalarUDF};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use tonic::Status;

/// The name `GetSqlInfo` gives the server.
pub const SERVER_NAME: &str = "Floe";

/// The Arrow format version Floe's Flight data carries (arrow-rs 58 writes IPC metadata V5).
const ARROW_FORMAT_VERSION: &str = "1.5.0";

static SQL_INFO: LazyLock<Result<SqlInfoData, String>> = LazyLock::new(|| {
    build_sql_info().map_err(|e| format!("cannot build the server's SqlInfo: {e}"))
});

static XDBC_TYPES: LazyLock<Result<XdbcTypeInfoData, String>> = LazyLock::new(|| {
    xdbc_types()
        .build()
        .map_err(|e| format!("cannot build the server's type info: {e}"))
});

/// The `GetSqlInfo` answers.
pub fn sql_info() -> Result<&'static SqlInfoData, Status> {
    SQL_INFO.as_ref().map_err(|e| Status::internal(e.clone()))
}

/// The `GetXdbcTypeInfo` answers.
pub fn xdbc_type_info() -> Result<&'static XdbcTypeInfoData, Status> {
    XDBC_TYPES.as_ref().map_err(|e| Status::internal(e.clone()))
}

/// A bit set of `values` (the Flight SQL spec's encoding of "which of these are supported").
fn bits(values: &[i32]) -> i32 {
    values.iter().fold(0, |set, value| set | (1 << value))
}

/// DataFusion's built-in scalar functions documented in `section`, sorted.
fn functions_in(functions: &[std::sync::Arc<ScalarUDF>], section: &DocSection) -> Vec<String> {
    let mut names: Vec<String> = functions
        .iter()
        .filter(|f| f.documentation().is_some_and(|doc| doc.doc_section == *section))
        .map(|f| f.name().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn build_sql_info() -> arrow_flight::error::Result<SqlInfoData> {
    let functions = datafusion::functions::all_default_functions();
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, SERVER_NAME);
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_FORMAT_VERSION);
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, true);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    info.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    // No server-side statement timeout yet: 0 means none.
    info.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    info.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, true);
    info.append(SqlInfo::SqlDdlTable, true);
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // Quoted identifiers keep their case and compare exactly: the enum has no "case sensitive"
    // value, and its "insensitive", "upper" and "lower" would all be wrong.
    info.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    info.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    let keywords: Vec<String> = ALL_KEYWORDS.iter().map(|k| k.to_string()).collect();
    info.append(SqlInfo::SqlKeywords, keywords);
    info.append(
        SqlInfo::SqlNumericFunctions,
        functions_in(&functions, &DOC_SECTION_MATH),
    );
    info.append(
        SqlInfo::SqlStringFunctions,
        functions_in(&functions, &DOC_SECTION_STRING),
    );
    info.append(SqlInfo::SqlSystemFunctions, vec!["version".to_string()]);
    info.append(
        SqlInfo::SqlDatetimeFunctions,
        functions_in(&functions, &DOC_SECTION_DATETIME),
    );
    info.append(SqlInfo::SqlSearchStringEscape, "\\");
    info.append(SqlInfo::SqlExtraNameCharacters, "");
    info.append(SqlInfo::SqlSupportsColumnAliasing, true);
    info.append(SqlInfo::SqlNullPlusNullIsNull, true);
    info.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    info.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    info.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    info.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    info.append(
        SqlInfo::SqlSupportedGroupBy,
        bits(&[
            SqlSupportedGroupBy::SqlGroupByUnrelated as i32,
            SqlSupportedGroupBy::SqlGroupByBeyondSelect as i32,
        ]),
    );
    info.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    info.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    info.append(
        SqlInfo::SqlSupportedGrammar,
        bits(&[
            SupportedSqlGrammar::SqlMinimumGrammar as i32,
            SupportedSqlGrammar::SqlCoreGrammar as i32,
        ]),
    );
    info.append(
        SqlInfo::SqlAnsi92SupportedLevel,
        // `SupportedAnsi92SqlGrammarLevel` (not re-exported by arrow-flight): entry (0) and
        // intermediate (1) SQL-92.
        bits(&[0, 1]),
    );
    info.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    info.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    info.append(SqlInfo::SqlSchemaTerm, "schema");
    info.append(SqlInfo::SqlProcedureTerm, "procedure");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlCatalogAtStart, true);
    info.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    info.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    info.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    info.append(SqlInfo::SqlSelectForUpdateSupported, false);
    info.append(SqlInfo::SqlStoredProceduresSupported, false);
    info.append(
        SqlInfo::SqlSupportedSubqueries,
        bits(&[
            SqlSupportedSubqueries::SqlSubqueriesInComparisons as i32,
            SqlSupportedSubqueries::SqlSubqueriesInExists as i32,
            SqlSupportedSubqueries::SqlSubqueriesInIns as i32,
            SqlSupportedSubqueries::SqlSubqueriesInQuantifieds as i32,
        ]),
    );
    info.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    info.append(
        SqlInfo::SqlSupportedUnions,
        bits(&[
            SqlSupportedUnions::SqlUnion as i32,
            SqlSupportedUnions::SqlUnionAll as i32,
        ]),
    );
    // 0: no limit Floe knows of.
    for limit in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        info.append(limit, 0i64);
    }
    info.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, false);
    info.append(SqlInfo::SqlDefaultTransactionIsolation, 0i32);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    info.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    info.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);
    info.append(SqlInfo::SqlBatchUpdatesSupported, false);
    info.append(SqlInfo::SqlSavepointsSupported, false);
    info.append(SqlInfo::SqlNamedParametersSupported, false);
    info.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    info.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    info.build()
}

/// One SQL type as `GetXdbcTypeInfo` describes it.
fn xdbc_type(
    name: &str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    literal_quote: Option<&str>,
) -> XdbcTypeInfo {
    let numeric = literal_quote.is_none() && column_size.is_some();
    XdbcTypeInfo {
        type_name: name.to_string(),
        data_type,
        column_size,
        literal_prefix: literal_quote.map(str::to_string),
        literal_suffix: literal_quote.map(|_| "'".to_string()),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: false,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.to_string()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The SQL types a Floe table column can have (Iceberg's primitive types as DataFusion names
/// them).
fn xdbc_types() -> XdbcTypeInfoDataBuilder {
    let mut types = XdbcTypeInfoDataBuilder::new();
    types.append(xdbc_type("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None));
    types.append(xdbc_type("INT", XdbcDataType::XdbcInteger, Some(10), None));
    types.append(xdbc_type("BIGINT", XdbcDataType::XdbcBigint, Some(19), None));
    types.append(xdbc_type("FLOAT", XdbcDataType::XdbcReal, Some(7), None));
    types.append(xdbc_type("DOUBLE", XdbcDataType::XdbcDouble, Some(15), None));
    types.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".into(), "scale".into()]),
        fixed_prec_scale: true,
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        ..xdbc_type("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), None)
    });
    types.append(xdbc_type(
        "VARCHAR",
        XdbcDataType::XdbcVarchar,
        None,
        Some("'"),
    ));
    types.append(xdbc_type(
        "VARBINARY",
        XdbcDataType::XdbcVarbinary,
        None,
        Some("X'"),
    ));
    types.append(XdbcTypeInfo {
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeUnknown),
        ..xdbc_type("DATE", XdbcDataType::XdbcDate, Some(10), Some("DATE '"))
    });
    types.append(xdbc_type(
        "TIME",
        XdbcDataType::XdbcTime,
        Some(15),
        Some("TIME '"),
    ));
    types.append(xdbc_type(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        Some(26),
        Some("TIMESTAMP '"),
    ));
    types
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow_flight::sql::CommandGetSqlInfo;

    #[test]
    fn sql_info_names_floe_and_answers_what_clients_require() {
        // The ids the SQLAlchemy dialect of flightsql-dbapi reads (a KeyError without them).
        let wanted = [
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::FlightSqlServerArrowVersion as u32,
            SqlInfo::FlightSqlServerReadOnly as u32,
            SqlInfo::SqlIdentifierQuoteChar as u32,
        ];
        let batch = CommandGetSqlInfo {
            info: wanted.to_vec(),
        }
        .into_builder(sql_info().unwrap())
        .build()
        .unwrap();
        let ids: Vec<u32> = batch
            .column(0)
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .values()
            .to_vec();
        assert_eq!(ids, wanted);
        let values = batch.column(1).as_union();
        let name = values.value(0);
        assert_eq!(name.as_string::<i32>().value(0), SERVER_NAME);
    }

    #[test]
    fn function_lists_come_from_datafusion() {
        let functions = datafusion::functions::all_default_functions();
        let math = functions_in(&functions, &DOC_SECTION_MATH);
        assert!(math.contains(&"abs".to_string()), "{math:?}");
        let strings = functions_in(&functions, &DOC_SECTION_STRING);
        assert!(strings.contains(&"upper".to_string()), "{strings:?}");
    }

    #[test]
    fn type_info_filters_by_type() {
        let data = xdbc_type_info().unwrap();
        assert_eq!(data.record_batch(None).unwrap().num_rows(), 11);
        let bigint = data
            .record_batch(Some(XdbcDataType::XdbcBigint as i32))
            .unwrap();
        assert_eq!(bigint.num_rows(), 1);
    }
}
