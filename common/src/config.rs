//! `floe.toml`: the catalogs Floe can reach and the engine's knobs.
//!
//! A file names any number of catalogs, each an Iceberg catalog of one `type` with its
//! properties. With no file, Floe uses one catalog named `local`: an Iceberg SQL catalog on
//! SQLite with its warehouse in `./floe-warehouse`, laid out as PyIceberg's `SqlCatalog` lays it
//! out, so both tools see the same tables.
//!
//! Errors name the offending key (`catalogs.prod.type: unknown variant ...`), because a user
//! fixing a config file needs the path to the mistake, not a serde backtrace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{FloeError, Result};

/// Name of the catalog Floe creates when no configuration is given.
pub const DEFAULT_CATALOG_NAME: &str = "local";
/// Directory of the default warehouse, relative to the working directory (like `spark-warehouse`).
pub const DEFAULT_WAREHOUSE_DIR: &str = "floe-warehouse";
/// File name of the default SQLite catalog database, inside the default warehouse.
pub const DEFAULT_CATALOG_DB: &str = "catalog.db";
/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV_VAR: &str = "FLOE_CONFIG";

/// Upper bound of DataFusion's Parquet footer and page-index cache, in MiB. DataFusion's own
/// default (50 MiB) is too small for a TPC-DS warehouse of a few thousand files.
pub const DEFAULT_METADATA_CACHE_MIB: usize = 512;
/// Upper bound of manifests whose per-file column bounds are kept between queries.
pub const DEFAULT_MANIFEST_CACHE_ENTRIES: usize = 4096;
/// Upper bound of loaded Iceberg tables (metadata + manifest caches) kept between queries.
pub const DEFAULT_TABLE_CACHE_ENTRIES: usize = 256;

/// The whole `floe.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloeConfig {
    /// The catalog unqualified names resolve against; defaults to the first catalog by name,
    /// or `local`.
    #[serde(default)]
    pub default_catalog: Option<String>,
    /// The namespace unqualified table names resolve against.
    #[serde(default = "default_namespace")]
    pub default_namespace: String,
    /// Catalogs by the name SQL uses for them (`SELECT * FROM <name>.ns.table`).
    #[serde(default)]
    pub catalogs: BTreeMap<String, CatalogConfig>,
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineConfig,
}

fn default_namespace() -> String {
    "default".to_string()
}

/// Which Iceberg catalog implementation serves a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogType {
    /// Iceberg JDBC-style catalog in a SQL database (SQLite here), PyIceberg-compatible.
    Sql,
    /// Iceberg REST catalog (Polaris, SeaweedFS, Glue/S3 Tables REST endpoints).
    Rest,
    /// AWS Glue Data Catalog through its native API.
    Glue,
    /// Amazon S3 Tables through its native API.
    S3tables,
    /// In-memory catalog; its tables vanish with the process. For tests and scratch work.
    Memory,
}

/// One `[catalogs.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// The implementation.
    #[serde(rename = "type")]
    pub catalog_type: CatalogType,
    /// Catalog endpoint: a database URL (`sqlite:///path/catalog.db`) or an HTTP(S) URL.
    #[serde(default)]
    pub uri: Option<String>,
    /// Where new tables go: a directory, `file://` URL or `s3://bucket/prefix`; for REST, the
    /// warehouse name the server expects.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// REST bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// REST OAuth2 client credentials, `client_id:client_secret`.
    #[serde(default)]
    pub credential: Option<String>,
    /// AWS SigV4 signing for REST catalogs (AWS Glue / S3 Tables endpoints).
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// REST: ask the catalog for each table's storage credentials
    /// (`X-Iceberg-Access-Delegation: vended-credentials`) and read its files with them.
    #[serde(default)]
    pub vended_credentials: bool,
    /// Object storage of the warehouse.
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// Extra properties passed verbatim to the Iceberg catalog and its FileIO.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[catalogs.<name>.signing]`: SigV4 request signing for REST catalogs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The service name to sign for: `glue` or `s3tables`.
    pub name: String,
    /// The AWS region to sign for.
    pub region: String,
}

/// `[catalogs.<name>.s3]`: S3 (or S3-compatible) storage of a warehouse. Serializable because
/// scan tasks carry it to executors, which have no catalog connection of their own.
#[derive(Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible servers; AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// AWS region.
    #[serde(default)]
    pub region: Option<String>,
    /// Static access key id; the AWS default chain when absent.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Static secret access key.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most local servers need.
    #[serde(default)]
    pub path_style: bool,
    /// Set by Floe (scans carry it to executors), not meant for `floe.toml`: the credentials
    /// are a table's own, vended by its REST catalog, so its files are read through an object
    /// store of their own.
    #[serde(default)]
    pub credentials_vended: bool,
}

/// Secrets never reach logs, plans or error messages.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("path_style", &self.path_style)
            .field("credentials_vended", &self.credentials_vended)
            .finish()
    }
}

/// `[engine]`: execution settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Partitions per scan and operator; defaults to the number of cores.
    #[serde(default)]
    pub target_partitions: Option<usize>,
    /// Rows per record batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Parquet footer/page-index cache limit, MiB.
    #[serde(default = "default_metadata_cache_mib")]
    pub metadata_cache_mib: usize,
    /// Scan bytes up to which a query runs as one task (the session's default for
    /// `floe.single_task_max_scan_bytes`; 0: always stages).
    #[serde(default = "default_single_task_max_scan_bytes")]
    pub single_task_max_scan_bytes: u64,
}

fn default_batch_size() -> usize {
    8192
}

fn default_metadata_cache_mib() -> usize {
    DEFAULT_METADATA_CACHE_MIB
}

fn default_single_task_max_scan_bytes() -> u64 {
    crate::options::DEFAULT_SINGLE_TASK_MAX_SCAN_BYTES
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            target_partitions: None,
            batch_size: default_batch_size(),
            metadata_cache_mib: DEFAULT_METADATA_CACHE_MIB,
            single_task_max_scan_bytes: default_single_task_max_scan_bytes(),
        }
    }
}

impl FloeConfig {
    /// The configuration used when no file is given: one SQLite-backed catalog `local` with its
    /// warehouse in `./floe-warehouse`.
    pub fn default_local() -> Result<Self> {
        let cwd = std::env::current_dir().map_err(|source| FloeError::Io {
            context: "reading the current directory".to_string(),
            source,
        })?;
        Ok(Self::local_warehouse(&cwd.join(DEFAULT_WAREHOUSE_DIR)))
    }

    /// A configuration with one SQLite-backed catalog `local` whose warehouse (and catalog
    /// database) live in `warehouse`.
    pub fn local_warehouse(warehouse: &Path) -> Self {
        let catalog = CatalogConfig {
            catalog_type: CatalogType::Sql,
            uri: Some(sqlite_uri(&warehouse.join(DEFAULT_CATALOG_DB))),
            warehouse: Some(warehouse.display().to_string()),
            token: None,
            credential: None,
            signing: None,
            vended_credentials: false,
            s3: None,
            properties: BTreeMap::new(),
        };
        Self {
            default_catalog: Some(DEFAULT_CATALOG_NAME.to_string()),
            default_namespace: default_namespace(),
            catalogs: BTreeMap::from([(DEFAULT_CATALOG_NAME.to_string(), catalog)]),
            engine: EngineConfig::default(),
        }
    }

    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| FloeError::Io {
            context: format!("reading configuration file {}", path.display()),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let config_error = |message: String| FloeError::Config {
            path: origin.to_string(),
            message,
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| config_error(e.to_string().trim_end().to_string()))?;
        let config: FloeConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            // toml's message carries a line/column excerpt; the key path is what users need first.
            let message = inner.message().to_string();
            config_error(format!("key `{key}`: {message}"))
        })?;
        config.validate().map_err(config_error)?;
        Ok(config)
    }

    /// Loads `--config PATH`, else `$FLOE_CONFIG`, else the default local warehouse.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let from_env = std::env::var_os(CONFIG_ENV_VAR).map(PathBuf::from);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => Self::from_file(&path),
            None => Self::default_local(),
        }
    }

    /// The catalog unqualified names resolve against.
    pub fn default_catalog_name(&self) -> String {
        self.default_catalog
            .clone()
            .or_else(|| self.catalogs.keys().next().cloned())
            .unwrap_or_else(|| DEFAULT_CATALOG_NAME.to_string())
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if let Some(name) = &self.default_catalog
            && !self.catalogs.contains_key(name)
        {
            return Err(format!(
                "key `default_catalog`: catalog `{name}` is not defined under [catalogs]"
            ));
        }
        for (name, catalog) in &self.catalogs {
            let needs_uri = matches!(catalog.catalog_type, CatalogType::Sql | CatalogType::Rest);
            if needs_uri && catalog.uri.is_none() {
                return Err(format!(
                    "key `catalogs.{name}.uri`: required for this catalog type"
                ));
            }
            let needs_warehouse = matches!(
                catalog.catalog_type,
                CatalogType::Sql | CatalogType::Glue | CatalogType::S3tables | CatalogType::Memory
            );
            if needs_warehouse && catalog.warehouse.is_none() {
                return Err(format!(
                    "key `catalogs.{name}.warehouse`: required for this catalog type"
                ));
            }
        }
        Ok(())
    }
}

/// The sqlx URL of a SQLite database file, created on first use.
pub fn sqlite_uri(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_catalogs_of_every_type() {
        let config = FloeConfig::parse(
            r#"
            default_catalog = "lake"
            [catalogs.lake]
            type = "sql"
            uri = "sqlite:///tmp/x.db"
            warehouse = "/tmp/wh"
            [catalogs.rest]
            type = "rest"
            uri = "http://127.0.0.1:8181"
            warehouse = "warehouse"
            token = "t"
            signing = { name = "glue", region = "us-east-1" }
            s3 = { endpoint = "http://127.0.0.1:9000", region = "us-east-1", path_style = true }
            [catalogs.mem]
            type = "memory"
            warehouse = "/tmp/mem"
            "#,
            "floe.toml",
        )
        .unwrap();
        assert_eq!(config.default_catalog_name(), "lake");
        assert_eq!(config.catalogs["rest"].catalog_type, CatalogType::Rest);
        assert!(config.catalogs["rest"].s3.as_ref().unwrap().path_style);
    }

    #[test]
    fn errors_name_the_key() {
        let err = FloeConfig::parse("[catalogs.prod]\ntype = \"oracle\"\n", "floe.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("catalogs.prod.type"), "{err}");
        assert!(err.contains("floe.toml"), "{err}");

        let err = FloeConfig::parse("[catalogs.prod]\ntype = \"sql\"\nwarehose = \"x\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("warehose"), "{err}");

        let err = FloeConfig::parse("[catalogs.prod]\ntype = \"sql\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("catalogs.prod.uri"), "{err}");

        let err = FloeConfig::parse("[catalogs\ntype = 1", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
