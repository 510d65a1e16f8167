//! SigV4 signing for Iceberg REST catalogs served by AWS (the Glue Iceberg endpoint, S3 Tables).
//!
//! `iceberg-catalog-rest` 0.10 sends its requests through a plain `reqwest::Client` and has no
//! hook to sign them. So a signed catalog talks to a small HTTP proxy on loopback that this
//! module starts beside it: the proxy takes each request, signs it with AWS Signature Version 4
//! for the configured service and region, sends it to the real endpoint over HTTPS, and hands the
//! answer back unchanged. The catalog crate is used as is; only its `uri` points at the proxy.
//!
//! - **Credentials** come from the standard AWS chain (environment, shared profile files, SSO,
//!   web identity, ECS and EC2 instance roles) through `reqsign`, the signer OpenDAL uses. They
//!   are cached and refreshed before they expire, and never logged.
//! - **Canonical path**: services other than S3 sign each path segment URI-encoded *twice*
//!   (botocore's `SigV4Auth`, the AWS SDKs). Catalog paths carry escapes (`%3A`, `%2F` in a Glue
//!   warehouse prefix, `%1F` between namespace levels), so the signature is computed over the
//!   once-more-encoded path while the request goes out with its wire path.
//! - **Payload**: the body's SHA-256 is sent as `x-amz-content-sha256` and signed.
//! - **Who may use it**: the proxy listens on 127.0.0.1 only and serves only requests that carry
//!   a random bearer token the catalog client was given, so no other local process can have its
//!   requests signed with this process's credentials.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, RequestSigner};
use reqsign_core::{Context, HttpSend, OsEnv, Signer};
use reqsign_file_read_tokio::TokioFileRead;
use tokio::net::TcpListener;
use url::Url;

use floe_common::config::SigningConfig;
use floe_common::error::{FloeError, Result};

/// Largest request body the proxy accepts from the catalog client (a commit carries metadata
/// updates, never data).
const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Largest response the proxy relays (table metadata with a long snapshot history).
const MAX_RESPONSE_BODY_BYTES: usize = 256 * 1024 * 1024;
/// How long one catalog request may take upstream, connection included.
const UPSTREAM_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after a failed `accept` before the next.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Headers that describe one hop, not the request; never forwarded nor signed.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
/// The headers the signer adds; copied from the signed request onto the one that goes out.
const SIGNATURE_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    X_AMZ_CONTENT_SHA256,
];

/// A running signing proxy; it stops when the last handle is dropped.
pub struct SigningProxy {
    /// What the catalog client uses as its `uri`: the proxy's address plus the endpoint's path.
    pub local_uri: String,
    /// The bearer token the catalog client must send (as its `token` property).
    pub client_token: String,
    task: tokio::task::JoinHandle<()>,
}

/// The token stays out of logs and error messages.
impl std::fmt::Debug for SigningProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningProxy")
            .field("local_uri", &self.local_uri)
            .finish_non_exhaustive()
    }
}

impl Drop for SigningProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What every proxied request needs.
struct Upstream {
    /// `https://glue.us-east-1.amazonaws.com`: where requests go, with their own path.
    origin: Url,
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `Bearer <token>`, the only `Authorization` the proxy serves.
    expected_authorization: String,
}

impl SigningProxy {
    /// Starts a proxy for the REST endpoint `uri` (`https://glue.<region>.amazonaws.com/iceberg`)
    /// on a free loopback port, signing for `signing.name` in `signing.region`.
    pub async fn start(catalog: &str, uri: &str, signing: &SigningConfig) -> Result<Self> {
        let invalid = |what: String| {
            FloeError::plan(format!("catalog `{catalog}`: REST uri `{uri}`: {what}"))
        };
        let endpoint = Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(invalid(
                "a SigV4-signed catalog needs an http(s) URL".into(),
            ));
        }
        let mut origin = endpoint.clone();
        origin.set_path("");
        origin.set_query(None);
        // A redirect would resend the signed headers to wherever it points.
        let client = reqwest::Client::builder()
            .timeout(UPSTREAM_REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot build an HTTP client: {e}")))?;
        let context = Context::new()
            .with_file_read(TokioFileRead)
            .with_http_send(ReqwestSend(client.clone()))
            .with_env(OsEnv);
        let signer = Signer::new(
            context,
            DefaultCredentialProvider::new(),
            RequestSigner::new(&signing.name, &signing.region),
        );
        let client_token = uuid::Uuid::new_v4().simple().to_string();
        let upstream = Arc::new(Upstream {
            origin,
            client,
            signer,
            expected_authorization: format!("Bearer {client_token}"),
        });
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| FloeError::Io {
                context: format!("catalog `{catalog}`: binding the SigV4 signing proxy"),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| FloeError::Io {
            context: format!("catalog `{catalog}`: reading the signing proxy's address"),
            source,
        })?;
        let task = tokio::spawn(serve(listener, upstream));
        let local_uri = format!("http://{address}{}", endpoint.path().trim_end_matches('/'));
        Ok(Self {
            local_uri,
            client_token,
            task,
        })
    }
}

/// Accepts connections until the proxy is dropped; each is served on its own task.
async fn serve(listener: TcpListener, upstream: Arc<Upstream>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            continue;
        };
        let upstream = Arc::clone(&upstream);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let upstream = Arc::clone(&upstream);
                async move { Ok::<_, std::convert::Infallible>(proxy(&upstream, request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                log::debug!("signing proxy connection ended: {e}");
            }
        });
    }
}

/// One request: checked, signed, sent upstream; failures become an Iceberg `ErrorModel` body.
async fn proxy(upstream: &Upstream, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == upstream.expected_authorization.as_bytes());
    if !authorized {
        return error_response(StatusCode::UNAUTHORIZED, "missing proxy token".into());
    }
    match forward(upstream, request).await {
        Ok(response) => response,
        Err((status, message)) => error_response(status, message),
    }
}

type ProxyResult<T> = std::result::Result<T, (StatusCode, String)>;

async fn forward(
    upstream: &Upstream,
    request: Request<Incoming>,
) -> ProxyResult<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")))?
        .to_bytes();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!(
        "{}{}",
        upstream.origin.as_str().trim_end_matches('/'),
        path_and_query
    );
    let mut headers = parts.headers.clone();
    for name in HOP_BY_HOP.iter().chain([&header::AUTHORIZATION]) {
        headers.remove(name);
    }
    let signature = sign(upstream, &parts.method, &target, &headers, &body)
        .await
        .map_err(|e| {
            (
                StatusCode::UNAUTHORIZED,
                format!("cannot sign the request: {e}"),
            )
        })?;
    for name in SIGNATURE_HEADERS {
        if let Some(value) = signature.get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    let response = upstream
        .client
        .request(parts.method, &target)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("{}: {e}", upstream.origin)))?;
    relay(response).await
}

/// Signs a copy of the request that carries only what SigV4 covers here: `host`, the content
/// type, the payload hash, and the path encoded once more (see the module docs). Returns the
/// copy's headers, from which the signature headers are taken.
async fn sign(
    upstream: &Upstream,
    method: &http::Method,
    target: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> std::result::Result<HeaderMap, String> {
    let uri: Uri = target.parse().map_err(|e| format!("{target}: {e}"))?;
    let mut signed = Request::builder()
        .method(method.clone())
        .uri(signing_uri(&uri)?);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        signed = signed.header(header::CONTENT_TYPE, content_type);
    }
    let payload_hash = reqsign_core::hash::hex_sha256(body);
    let (mut parts, ()) = signed
        .header(X_AMZ_CONTENT_SHA256, payload_hash)
        .body(())
        .map_err(|e| e.to_string())?
        .into_parts();
    upstream
        .signer
        .sign(&mut parts, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(parts.headers)
}

/// `uri` with each path segment percent-encoded again, `%` included, so that the signer's
/// canonical path (decode a segment, encode it) comes out encoded twice.
fn signing_uri(uri: &Uri) -> std::result::Result<Uri, String> {
    let path = uri
        .path()
        .split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, &SEGMENT_ESCAPES).to_string())
        .collect::<Vec<_>>()
        .join("/");
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|e| format!("{e}"))?);
    Uri::from_parts(parts).map_err(|e| e.to_string())
}

/// Everything but SigV4's unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const SEGMENT_ESCAPES: percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The upstream answer, status and headers kept, body read up to its limit.
async fn relay(mut response: reqwest::Response) -> ProxyResult<Response<Full<Bytes>>> {
    let status = response.status();
    let mut headers = response.headers().clone();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("reading the response: {e}"),
        )
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BODY_BYTES {
            return Err((
                StatusCode::BAD_GATEWAY,
                format!("response larger than {MAX_RESPONSE_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let mut relayed = Response::new(Full::new(Bytes::from(body)));
    *relayed.status_mut() = status;
    *relayed.headers_mut() = headers;
    Ok(relayed)
}

/// An Iceberg REST `ErrorModel`, which the catalog client turns into its error message.
fn error_response(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": {
            "message": format!("SigV4 signing proxy: {message}"),
            "type": "SigningProxyError",
            "code": status.as_u16(),
        }
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Lets the credential chain make its own HTTP calls (instance metadata, STS web identity,
/// SSO) with the proxy's client.
#[derive(Debug)]
struct ReqwestSend(reqwest::Client);

impl HttpSend for ReqwestSend {
    async fn http_send(&self, request: Request<Bytes>) -> reqsign_core::Result<Response<Bytes>> {
        let failed = |e: reqwest::Error| {
            reqsign_core::Error::unexpected("credential request failed").with_source(e)
        };
        let request = reqwest::Request::try_from(request).map_err(failed)?;
        let response = self.0.execute(request).await.map_err(failed)?;
        let mut out = Response::builder().status(response.status());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        let body = response.bytes().await.map_err(failed)?;
        out.body(body)
            .map_err(|e| reqsign_core::Error::unexpected("credential response").with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_path_encodes_escapes_again() {
        let uri: Uri = "https://glue.us-east-1.amazonaws.com/iceberg/v1/catalogs/123%3As3tablescatalog%2Fb/namespaces?pageToken=a%3D"
            .parse()
            .unwrap();
        let signing = signing_uri(&uri).unwrap();
        assert_eq!(
            signing.path(),
            "/iceberg/v1/catalogs/123%253As3tablescatalog%252Fb/namespaces"
        );
        assert_eq!(signing.query(), Some("pageToken=a%3D"));
        assert_eq!(signing.host(), Some("glue.us-east-1.amazonaws.com"));
    }
}
