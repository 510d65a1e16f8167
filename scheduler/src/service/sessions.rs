//! Client sessions: one [`FloeSession`] per connection, so `USE`, `SET` and a session's views
//! last from one statement to the next.
//!
//! A client names its session in one of two ways:
//! - the `arrow_flight_session_id` cookie, which the server assigns: [`SessionCookieLayer`]
//!   gives every Flight call that carries no session a fresh id and returns it in `set-cookie`.
//!   A client with a cookie jar (the JDBC driver by default, ADBC with
//!   `adbc.flight.sql.rpc.with_cookie_middleware`) sends it back and stays in that session;
//! - the `x-floe-session` header ([`SESSION_HEADER`]), which Floe's shell sends.
//!
//! A ticket made in a session the client presented is redeemable only in that session
//! (`PermissionDenied` elsewhere). A call whose session was assigned on that very call has not
//! shown that it keeps sessions (a client without a cookie jar gets a new one on every call), so
//! its tickets are redeemable by whoever holds them, as Flight's tickets are by default: an
//! unguessable query id. Sessions idle for [`SESSION_IDLE_TIMEOUT`] are dropped, and at most
//! [`MAX_SESSIONS`] are kept (the least recently used goes first).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use floe_core::FloeSession;
use floe_proto::SESSION_HEADER;
use floe_proto::flight_sessions::session_option_value::OptionValue;
use floe_proto::flight_sessions::set_session_options_result::{Error, ErrorValue};
use floe_proto::flight_sessions::{
    GetSessionOptionsResult, SESSION_COOKIE, SessionOptionValue, SetSessionOptionsRequest,
    SetSessionOptionsResult,
};
use tonic::Request;

use super::SchedulerService;
use crate::error::SchedulerError;

/// Client sessions kept; the least recently used is dropped beyond this.
pub const MAX_SESSIONS: usize = 1024;

/// A session nobody used for this long is dropped (its `USE` choices, settings and views).
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The longest session id accepted from a client; longer ones are replaced by a fresh one.
pub const MAX_SESSION_ID_BYTES: usize = 128;

/// Request extension: the session id of this call was assigned by [`SessionCookieLayer`] now.
#[derive(Debug, Clone, Copy)]
struct AssignedNow;

/// A call's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SessionKey {
    /// The session id.
    pub id: String,
    /// The client sent it (rather than having it assigned on this call).
    pub presented: bool,
}

impl SessionKey {
    /// The session a ticket made on this call belongs to: only one the client presented.
    pub fn owner(&self) -> Option<String> {
        self.presented.then(|| self.id.clone())
    }
}

pub(super) struct SessionEntry {
    session: Arc<FloeSession>,
    last_used: Instant,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The session cookie among `cookie` header values (`a=1; arrow_flight_session_id=…`).
fn session_cookie<'a>(cookies: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    cookies
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .find(|id| valid_id(id))
}

/// The session of `request`: its `x-floe-session` header, else its cookie.
pub(super) fn session_key<T>(request: &Request<T>) -> Option<SessionKey> {
    let metadata = request.metadata();
    if let Some(id) = metadata
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid_id(id))
    {
        return Some(SessionKey {
            id: id.to_string(),
            presented: true,
        });
    }
    let cookies = metadata
        .get_all("cookie")
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    session_cookie(cookies).map(|id| SessionKey {
        id: id.to_string(),
        presented: request.extensions().get::<AssignedNow>().is_none(),
    })
}

impl SchedulerService {
    /// The session of `request`, made on its first use.
    pub(super) fn session<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Arc<FloeSession>, SchedulerError> {
        let new_session = || {
            FloeSession::with_catalogs(&self.catalogs, Some(Arc::clone(&self.planner) as Arc<_>))
                .map(Arc::new)
        };
        // A session assigned on this very call is kept only once the client sends it back: a
        // client without a cookie jar gets a new one on every call, and keeping those would
        // crowd out the sessions of clients that do keep theirs.
        let Some(key) = session_key(request).filter(|key| key.presented) else {
            return Ok(new_session()?);
        };
        let mut evicted = None;
        let session = {
            let mut sessions = self
                .sessions
                .lock()
                .map_err(|_| SchedulerError::Internal("session table poisoned".into()))?;
            if let Some(entry) = sessions.get_mut(&key.id) {
                entry.last_used = Instant::now();
                return Ok(Arc::clone(&entry.session));
            }
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
                evicted = Some(oldest);
            }
            let session = new_session()?;
            sessions.insert(
                key.id,
                SessionEntry {
                    session: Arc::clone(&session),
                    last_used: Instant::now(),
                },
            );
            session
        };
        if let Some(evicted) = evicted {
            self.close_prepared_of_session(&evicted);
        }
        Ok(session)
    }

    /// Marks session `id` as used now (a prepared statement or ticket of it was used).
    pub(super) fn touch_session(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock()
            && let Some(entry) = sessions.get_mut(id)
        {
            entry.last_used = Instant::now();
        }
    }

    /// Ends the session of `request`: its prepared statements are dropped and its queries,
    /// waiting or running, cancelled (as a BI tool closing its connection expects). Whether
    /// there was a session.
    pub(super) fn close_session<T>(&self, request: &Request<T>) -> Result<bool, SchedulerError> {
        let Some(key) = session_key(request) else {
            return Ok(false);
        };
        let removed = self
            .sessions
            .lock()
            .map_err(|_| SchedulerError::Internal("session table poisoned".into()))?
            .remove(&key.id)
            .is_some();
        self.close_prepared_of_session(&key.id);
        self.cancel_queries_of_session(&key.id);
        Ok(removed)
    }

    /// Drops sessions idle for longer than [`SESSION_IDLE_TIMEOUT`], with their prepared
    /// statements.
    pub fn expire_sessions(&self) {
        let mut expired = Vec::new();
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|id, entry| {
                let keep = entry.last_used.elapsed() <= SESSION_IDLE_TIMEOUT;
                if !keep {
                    expired.push(id.clone());
                }
                keep
            });
        }
        for id in expired {
            self.close_prepared_of_session(&id);
        }
    }
}

/// A setting's name: dotted words (`datafusion.execution.batch_size`, `floe.…`).
fn setting_name(name: &str) -> bool {
    name.contains('.')
        && name
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

fn option_text(value: &OptionValue) -> Option<String> {
    match value {
        OptionValue::StringValue(text) => Some(text.clone()),
        OptionValue::BoolValue(b) => Some(b.to_string()),
        OptionValue::Int64Value(n) => Some(n.to_string()),
        OptionValue::DoubleValue(x) => Some(x.to_string()),
        OptionValue::StringListValue(_) => None,
    }
}

impl SchedulerService {
    /// `SetSessionOptions`: `catalog` and `schema` as `USE` sets them, any other option a
    /// session setting (as `SET name = value`; erased as `RESET`), through the session's API
    /// rather than SQL text. Options that cannot be set are reported per name; the others are
    /// set.
    pub(super) async fn set_session_options<T>(
        &self,
        request: &Request<T>,
        options: SetSessionOptionsRequest,
    ) -> Result<SetSessionOptionsResult, SchedulerError> {
        let session = self.session(request)?;
        let mut errors = HashMap::new();
        let mut fail = |name: &str, value: ErrorValue| {
            errors.insert(name.to_string(), Error { value: value as i32 });
        };
        let text = |name: &str| {
            options
                .session_options
                .get(name)
                .map(|value| value.option_value.as_ref().and_then(option_text))
        };
        // The catalog first: a new catalog's `schema` is looked up in it.
        for name in ["catalog", "schema"] {
            let Some(value) = text(name) else { continue };
            let Some(value) = value else {
                fail(name, ErrorValue::InvalidValue);
                continue;
            };
            let parts: Vec<String> = if name == "catalog" {
                vec![value]
            } else {
                std::iter::once(session.defaults().0)
                    .chain(value.split('.').map(str::to_string))
                    .collect()
            };
            if session.use_namespace(&parts).await.is_err() {
                fail(name, ErrorValue::InvalidValue);
            }
        }
        let mut others: Vec<_> = options
            .session_options
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "catalog" | "schema"))
            .collect();
        others.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in others {
            if !setting_name(name) {
                fail(name, ErrorValue::InvalidName);
                continue;
            }
            let text = match value.option_value.as_ref() {
                None => None,
                Some(value) => match option_text(value) {
                    Some(text) => Some(text),
                    None => {
                        fail(name, ErrorValue::InvalidValue);
                        continue;
                    }
                },
            };
            if session.set_setting(name, text.as_deref()).await.is_err() {
                fail(name, ErrorValue::InvalidValue);
            }
        }
        Ok(SetSessionOptionsResult { errors })
    }

    /// `GetSessionOptions`: the session's current catalog and schema.
    pub(super) fn get_session_options<T>(
        &self,
        request: &Request<T>,
    ) -> Result<GetSessionOptionsResult, SchedulerError> {
        let (catalog, schema) = self.session(request)?.defaults();
        let string = |text: String| SessionOptionValue {
            option_value: Some(OptionValue::StringValue(text)),
        };
        Ok(GetSessionOptionsResult {
            session_options: HashMap::from([
                ("catalog".to_string(), string(catalog)),
                ("schema".to_string(), string(schema)),
            ]),
        })
    }
}

/// Assigns a session to every Flight call that carries none; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionCookieLayer;

impl<S> tower_layer::Layer<S> for SessionCookieLayer {
    type Service = SessionCookies<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionCookies { inner }
    }
}

/// The service [`SessionCookieLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct SessionCookies<S> {
    inner: S,
}

/// The gRPC path prefix of Flight's (and so Flight SQL's) calls; the executors' control service
/// on the same port has no sessions.
const FLIGHT_PATH_PREFIX: &str = "/arrow.flight.protocol.FlightService/";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for SessionCookies<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let headers = request.headers();
        let has_session = headers.contains_key(SESSION_HEADER)
            || session_cookie(
                headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            )
            .is_some();
        let assigned = if request.uri().path().starts_with(FLIGHT_PATH_PREFIX) && !has_session {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let cookie = format!("{SESSION_COOKIE}={id}");
            match http::HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    request.headers_mut().append(http::header::COOKIE, value.clone());
                    request.extensions_mut().insert(AssignedNow);
                    Some(value)
                }
                Err(_) => None,
            }
        } else {
            None
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(cookie) = assigned {
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, cookie);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let headers = ["theme=dark; arrow_flight_session_id=abc123", "x=1"];
        assert_eq!(session_cookie(headers.into_iter()), Some("abc123"));
        assert_eq!(session_cookie(["x=1", "y=2"].into_iter()), None);
        // Ids with characters a header could smuggle, or too long, are not sessions.
        assert_eq!(
            session_cookie(["arrow_flight_session_id=a,b"].into_iter()),
            None
        );
        let long = format!("arrow_flight_session_id={}", "a".repeat(MAX_SESSION_ID_BYTES + 1));
        assert_eq!(session_cookie([long.as_str()].into_iter()), None);
    }

    #[test]
    fn only_presented_sessions_own_tickets() {
        let presented = SessionKey {
            id: "s1".into(),
            presented: true,
        };
        assert_eq!(presented.owner().as_deref(), Some("s1"));
        let assigned = SessionKey {
            id: "s2".into(),
            presented: false,
        };
        assert_eq!(assigned.owner(), None);
    }
}
