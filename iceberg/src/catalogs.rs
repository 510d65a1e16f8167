//! Builds Iceberg catalogs from `floe.toml` entries, and the object stores DataFusion reads
//! their files through.
//!
//! Iceberg's `FileIO` (used for metadata, manifests and writes) and DataFusion's `object_store`
//! (used by the Parquet scan) are two I/O stacks over the same files; this module configures both
//! from one set of properties so they can never disagree about where a warehouse lives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use iceberg::io::StorageFactory;
use iceberg::memory::{MEMORY_CATALOG_WAREHOUSE, MemoryCatalogBuilder};
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_glue::GlueCatalogBuilder;
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_s3tables::S3TablesCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use url::Url;

use crate::rest_signing::SigningProxy;
use floe_common::config::{CatalogConfig, CatalogType, S3Config};
use floe_common::error::{FloeError, Result};

/// A configured catalog: the Iceberg handle plus what the scan needs to reach its files.
#[derive(Debug, Clone)]
pub struct FloeCatalog {
    /// The name SQL uses.
    pub name: String,
    /// The Iceberg catalog.
    pub iceberg: Arc<dyn Catalog>,
    /// S3 settings of the warehouse, used to register DataFusion object stores.
    pub s3: Option<S3Config>,
    /// The REST catalog vends each table's storage credentials.
    pub vended_credentials: bool,
    /// Signs the REST catalog's requests (SigV4); runs as long as a clone of this catalog does.
    _signing_proxy: Option<Arc<SigningProxy>>,
}

impl FloeCatalog {
    /// Connects to the catalog an entry of `floe.toml` describes.
    pub async fn connect(name: &str, config: &CatalogConfig) -> Result<Self> {
        let mut props: HashMap<String, String> = config.properties.clone().into_iter().collect();
        if let Some(s3) = &config.s3 {
            props.extend(fileio_s3_properties(s3));
        }
        let storage: Arc<dyn StorageFactory> = Arc::new(OpenDalResolvingStorageFactory::new());
        let warehouse = config
            .warehouse
            .as_deref()
            .map(normalize_location)
            .transpose()?;
        let context =
            |e: iceberg::Error| FloeError::plan(format!("cannot open catalog `{name}`: {e}"));
        let mut signing_proxy = None;
        if config.signing.is_some() && config.catalog_type != CatalogType::Rest {
            return Err(FloeError::plan(format!(
                "catalog `{name}`: `signing` applies to REST catalogs only"
            )));
        }
        let iceberg: Arc<dyn Catalog> = match config.catalog_type {
            CatalogType::Sql => {
                let mut uri = config.uri.clone().unwrap_or_default();
                let db_path = sqlite_file(&uri);
                if let Some(db_path) = &db_path {
                    create_parent_dir(db_path)?;
                    uri = sqlite_create_on_first_use(&uri);
                    // SQLite speaks `?` placeholders; the crate defaults to Postgres' `$1`.
                    props
                        .entry("sql_bind_style".into())
                        .or_insert("QMark".into());
                }
                if let Some(warehouse) = &warehouse {
                    if let Some(dir) = warehouse.strip_prefix("file://") {
                        create_parent_dir(&Path::new(dir).join("x"))?;
                    }
                    props.insert("warehouse".into(), warehouse.clone());
                }
                props.insert("uri".into(), uri);
                let catalog = SqlCatalogBuilder::default()
                    .with_storage_factory(storage)
                    .load(name, props)
                    .await
                    .map_err(|e| match &db_path {
                        Some(path) => FloeError::plan(format!(
                            "cannot open catalog `{name}`: SQLite database {}: {e}",
                            path.display()
                        )),
                        None => context(e),
                    })?;
                Arc::new(catalog)
            }
            CatalogType::Rest => {
                let uri = config.uri.clone().unwrap_or_default();
                if let Some(signing) = &config.signing {
                    if config.token.is_some() || config.credential.is_some() {
                        return Err(FloeError::plan(format!(
                            "catalog `{name}`: `signing` authenticates by signature; remove \
                             `token` and `credential`"
                        )));
                    }
                    let proxy = SigningProxy::start(name, &uri, signing).await?;
                    props.insert("uri".into(), proxy.local_uri.clone());
                    props.insert("token".into(), proxy.client_token.clone());
                    signing_proxy = Some(Arc::new(proxy));
                } else {
                    props.insert("uri".into(), uri);
                    if let Some(token) = &config.token {
                        props.insert("token".into(), token.clone());
                    }
                    if let Some(credential) = &config.credential {
                        props.insert("credential".into(), credential.clone());
                    }
                }
                if let Some(warehouse) = &config.warehouse {
                    props.insert("warehouse".into(), warehouse.clone());
                }
                if config.vended_credentials {
                    props.insert(
                        "header.X-Iceberg-Access-Delegation".into(),
                        "vended-credentials".into(),
                    );
                }
                let catalog = RestCatalogBuilder::default()
                    .with_storage_factory(storage)
                    .load(name, props)
                    .await
                    .map_err(context)?;
                Arc::new(catalog)
            }
            CatalogType::Glue | CatalogType::S3tables => {
                connect_aws_catalog(name, config, props, warehouse, storage).await?
            }
            CatalogType::Memory => {
                if let Some(warehouse) = &warehouse {
                    props.insert(MEMORY_CATALOG_WAREHOUSE.into(), warehouse.clone());
                }
                let catalog = MemoryCatalogBuilder::default()
                    .with_storage_factory(storage)
                    .load(name, props)
                    .await
                    .map_err(context)?;
                Arc::new(catalog)
            }
        };
        Ok(Self {
            name: name.to_string(),
            iceberg,
            s3: config.s3.clone(),
            vended_credentials: config.vended_credentials,
            _signing_proxy: signing_proxy,
        })
    }

    /// The storage settings `table`'s files are read with: the credentials its REST catalog
    /// vended when it loaded the table (so always the current ones), else the catalog's.
    pub fn table_storage(&self, table: &iceberg::table::Table) -> Option<S3Config> {
        if !self.vended_credentials {
            return self.s3.clone();
        }
        let props = table.file_io().config().props();
        let (Some(key), Some(secret)) = (
            props.get("s3.access-key-id"),
            props.get("s3.secret-access-key"),
        ) else {
            // Nothing vended: the configured or ambient credentials.
            return self.s3.clone();
        };
        let mut s3 = self.s3.clone().unwrap_or_default();
        s3.access_key_id = Some(key.clone());
        s3.secret_access_key = Some(secret.clone());
        s3.session_token = props.get("s3.session-token").cloned();
        s3.endpoint = s3.endpoint.or_else(|| props.get("s3.endpoint").cloned());
        s3.region = s3.region.or_else(|| {
            props
                .get("s3.region")
                .or(props.get("client.region"))
                .cloned()
        });
        s3.path_style |= props
            .get("s3.path-style-access")
            .is_some_and(|v| v == "true");
        s3.credentials_vended = true;
        Some(s3)
    }
}

/// Connects a Glue or S3 Tables catalog through its native AWS API.
async fn connect_aws_catalog(
    name: &str,
    config: &CatalogConfig,
    mut props: HashMap<String, String>,
    warehouse: Option<String>,
    storage: Arc<dyn StorageFactory>,
) -> Result<Arc<dyn Catalog>> {
    let context = |e: iceberg::Error| FloeError::plan(format!("cannot open catalog `{name}`: {e}"));
    let catalog: Arc<dyn Catalog> = match config.catalog_type {
        CatalogType::Glue => {
            if let Some(warehouse) = &warehouse {
                props.insert("warehouse".into(), warehouse.clone());
            }
            if let Some(uri) = &config.uri {
                props.insert("uri".into(), uri.clone());
            }
            props.extend(aws_sdk_properties(config.s3.as_ref()));
            let catalog = GlueCatalogBuilder::default()
                .with_storage_factory(storage)
                .load(name, props)
                .await
                .map_err(context)?;
            Arc::new(catalog)
        }
        CatalogType::S3tables => {
            // The warehouse of an S3 Tables catalog is its table bucket ARN.
            if let Some(warehouse) = &config.warehouse {
                props.insert("table_bucket_arn".into(), warehouse.clone());
            }
            if let Some(uri) = &config.uri {
                props.insert("endpoint_url".into(), uri.clone());
            }
            props.extend(aws_sdk_properties(config.s3.as_ref()));
            let catalog = S3TablesCatalogBuilder::default()
                .with_storage_factory(storage)
                .load(name, props)
                .await
                .map_err(context)?;
            Arc::new(catalog)
        }
        other => {
            return Err(FloeError::plan(format!(
                "catalog `{name}`: type {other:?} is not an AWS catalog"
            )));
        }
    };
    Ok(catalog)
}

/// Registers the object store files under `store_url` (`s3://bucket`, `file://`) are read
/// through with `s3`, unless it is registered already, and returns the URL it is registered
/// under. That is `store_url` itself, except for a table's vended credentials: then a URL naming
/// those credentials (`s3-vended-<hash>://bucket`), so that tables with different credentials,
/// or one table's renewed credentials, never share an S3 client. Executors call this for the
/// stores named by the scans they receive; it is deterministic, so every process agrees.
pub fn ensure_object_store(
    store_url: &str,
    s3: Option<&S3Config>,
    runtime: &RuntimeEnv,
) -> Result<ObjectStoreUrl> {
    let parsed = Url::parse(store_url)
        .map_err(|e| FloeError::plan(format!("invalid object store `{store_url}`: {e}")))?;
    let bucket = parsed.authority();
    let is_s3 =
        matches!(parsed.scheme(), "s3" | "s3a") || parsed.scheme().starts_with(VENDED_SCHEME);
    if parsed.scheme() == "file" {
        return Ok(ObjectStoreUrl::parse(store_url)?);
    }
    if !is_s3 {
        return Err(FloeError::NotSupported(format!(
            "storage scheme `{}` of `{store_url}` (supported: file, s3)",
            parsed.scheme()
        )));
    }
    let url = match s3.filter(|s3| s3.credentials_vended) {
        Some(vended) => ObjectStoreUrl::parse(format!(
            "{VENDED_SCHEME}{:016x}://{bucket}",
            credentials_fingerprint(vended)
        ))?,
        None => ObjectStoreUrl::parse(store_url)?,
    };
    if runtime.object_store(&url).is_err() {
        let store = build_s3_store(bucket, s3.cloned().unwrap_or_default())?;
        runtime.register_object_store(url.as_ref(), store);
    }
    Ok(url)
}

/// Scheme prefix of the object stores of vended credentials.
const VENDED_SCHEME: &str = "s3-vended-";

/// Names a set of credentials without revealing them: a hash of the key id, token and
/// endpoint (the same in every process of one build).
fn credentials_fingerprint(s3: &S3Config) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &s3.access_key_id,
        &s3.session_token,
        &s3.endpoint,
        &s3.secret_access_key,
    )
        .hash(&mut hasher);
    hasher.finish()
}

fn build_s3_store(bucket: &str, s3: S3Config) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    builder = builder.with_virtual_hosted_style_request(!s3.path_style);
    let store = builder
        .build()
        .map_err(|e| FloeError::plan(format!("cannot configure S3 bucket `{bucket}`: {e}")))?;
    Ok(Arc::new(store))
}

/// Iceberg FileIO property names for an S3 warehouse.
fn fileio_s3_properties(s3: &S3Config) -> Vec<(String, String)> {
    let mut props = Vec::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            props.push((key.to_string(), value.clone()));
        }
    };
    put("s3.endpoint", &s3.endpoint);
    put("s3.region", &s3.region);
    put("s3.access-key-id", &s3.access_key_id);
    put("s3.secret-access-key", &s3.secret_access_key);
    put("s3.session-token", &s3.session_token);
    props.push((
        "s3.path-style-access".to_string(),
        s3.path_style.to_string(),
    ));
    props
}

/// AWS SDK property names used by the Glue and S3 Tables catalog crates.
fn aws_sdk_properties(s3: Option<&S3Config>) -> Vec<(String, String)> {
    let Some(s3) = s3 else { return Vec::new() };
    let mut props = Vec::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            props.push((key.to_string(), value.clone()));
        }
    };
    put("region_name", &s3.region);
    put("aws_access_key_id", &s3.access_key_id);
    put("aws_secret_access_key", &s3.secret_access_key);
    put("aws_session_token", &s3.session_token);
    props
}

/// Turns a warehouse written as a plain (possibly relative) directory into a `file://` URL;
/// URLs with a scheme pass through.
pub fn normalize_location(location: &str) -> Result<String> {
    if location.contains("://") {
        return Ok(location.trim_end_matches('/').to_string());
    }
    let path = Path::new(location);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| FloeError::Io {
                context: "reading the current directory".into(),
                source,
            })?
            .join(path)
    };
    Ok(format!("file://{}", absolute.display())
        .trim_end_matches('/')
        .to_string())
}

/// The database file of a `sqlite:` URL, if it names one.
fn sqlite_file(uri: &str) -> Option<std::path::PathBuf> {
    let rest = uri.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// A `sqlite:` URL that creates its database file when it does not exist yet, as the default
/// catalog's does: sqlx opens an existing file only unless the URL asks for `mode=rwc`. A mode
/// the user wrote (`mode=ro`) is kept.
fn sqlite_create_on_first_use(uri: &str) -> String {
    let has_mode = uri
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("mode=")));
    match (has_mode, uri.contains('?')) {
        (true, _) => uri.to_string(),
        (false, true) => format!("{uri}&mode=rwc"),
        (false, false) => format!("{uri}?mode=rwc"),
    }
}

fn create_parent_dir(file: &Path) -> Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| FloeError::Io {
            context: format!("creating directory {}", parent.display()),
            source,
        })?;
    }
    Ok(())
}
