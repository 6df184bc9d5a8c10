//! Who is signed in to the admin panel: sessions (a random token in an `HttpOnly`,
//! `SameSite=Strict` cookie, only its hash kept), each with its CSRF token; the rate limit on
//! failed sign-ins; and [`Admin`], the extractor every admin handler takes, which accepts either
//! the admin token (`Authorization: Bearer`, for programs) or a session (for the panel, with the
//! CSRF token on every request that changes something).
//!
//! Sessions live in memory: a restart signs everyone out, which is the safe direction.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use insights_store::hash_secret;

use crate::AppState;
use crate::auth::credential;
use crate::error::ApiError;

pub(crate) const SESSION_COOKIE: &str = "insights_session";
/// The sign-in form's own CSRF token (double submit: cookie and hidden field must match), so
/// that another site cannot sign a browser in to an account of its choosing.
pub(crate) const SIGN_IN_COOKIE: &str = "insights_sign_in";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Sent by the panel's background status poll: such a request does not count as activity.
pub(crate) const BACKGROUND_HEADER: &str = "x-insights-background";

/// A session unused this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// A session older than this is gone, used or not.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sessions held at most; beyond it the least recently used is signed out (counted).
const MAX_SESSIONS: usize = 1000;
/// Failed sign-ins allowed per client address within [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked for failures at most; when full, unknown addresses are refused
/// until entries expire (counted), so a flood cannot grow the table or bypass the limit.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

struct Session {
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

struct Failures {
    since: Instant,
    count: u32,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<String, Session>,
    failures: HashMap<IpAddr, Failures>,
}

/// Who is in front of the server, for the panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PanelConfig {
    /// Reverse proxies in front of the server. A request from one of them is attributed to the
    /// client its `X-Forwarded-For` names (for the sign-in rate limit), and its
    /// `X-Forwarded-Proto: https` makes the session cookie `Secure`. From anyone else, those
    /// headers are ignored: a client cannot choose the address its failures count against.
    pub trusted_proxies: Vec<IpAddr>,
    /// Always mark cookies `Secure` (TLS is terminated in front, without `X-Forwarded-Proto`).
    pub secure_cookies: bool,
}

/// Where a request comes from, as far as the panel can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) ip: IpAddr,
    /// The browser reached us over TLS (directly or through a trusted proxy), or cookies are
    /// configured to be `Secure` anyway.
    pub(crate) secure: bool,
}

/// The panel's sessions and sign-in failures.
#[derive(Default)]
pub struct Sessions {
    config: PanelConfig,
    inner: Mutex<Inner>,
}

/// A signed-in session, as a handler sees it.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub(crate) csrf: String,
}

impl Sessions {
    pub fn new(config: PanelConfig) -> Self {
        Self {
            config,
            inner: Mutex::default(),
        }
    }

    /// The client behind `peer`: `peer` itself, or, when `peer` is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not a trusted proxy (the right-most entries were
    /// added by our own proxies; anything further left the client could have written).
    pub(crate) fn client_of(
        &self,
        extensions: &axum::http::Extensions,
        headers: &HeaderMap,
    ) -> Client {
        // Without the peer address (a router served without connect info), all clients share
        // one rate-limit bucket: the safe side.
        let peer = extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        self.client(peer, headers)
    }

    /// [`Sessions::client_of`] for a known peer address.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        let trusted = |ip: &IpAddr| self.config.trusted_proxies.contains(ip);
        if !trusted(&peer) {
            return Client {
                ip: peer,
                secure: self.config.secure_cookies,
            };
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let ip = forwarded
            .iter()
            .rev()
            .find(|a| !trusted(a))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer);
        let https = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Client {
            ip,
            secure: https || self.config.secure_cookies,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session: returns the cookie token (shown to the browser only) and its CSRF token.
    pub(crate) fn create(&self) -> (String, String) {
        let token = random_token();
        let csrf = random_token();
        let now = Instant::now();
        let mut inner = self.lock();
        inner.by_hash.retain(|_, s| alive(s, now));
        if inner.by_hash.len() >= MAX_SESSIONS {
            let oldest = inner
                .by_hash
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.by_hash.remove(&k);
                metrics::counter!("insights_admin_sessions_evicted_total").increment(1);
            }
        }
        inner.by_hash.insert(
            hash_secret(&token),
            Session {
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (token, csrf)
    }

    /// The session of this cookie token, if it is alive; `touch` marks it used (a page's
    /// background status poll does not, so an open tab does not keep a session alive).
    pub(crate) fn get(&self, token: &str, touch: bool) -> Option<SignedIn> {
        let now = Instant::now();
        let mut inner = self.lock();
        let key = hash_secret(token);
        let session = inner.by_hash.get_mut(&key)?;
        if !alive(session, now) {
            inner.by_hash.remove(&key);
            return None;
        }
        if touch {
            session.last_seen = now;
        }
        Some(SignedIn {
            csrf: session.csrf.clone(),
        })
    }

    pub(crate) fn remove(&self, token: &str) {
        self.lock().by_hash.remove(&hash_secret(token));
    }

    /// Records a wrong admin token from `ip`. `Some(retry_after)` once the address has failed
    /// more than [`MAX_FAILURES`] times within the window: the caller then answers 429 and logs
    /// nothing more. The right token is never refused, whatever others sent from the same
    /// address (a NAT, a proxy, the same host): the token is long and random, so this limit is
    /// against noise and log flooding, not the defence against guessing. IPv6 addresses count
    /// per /64, the block one client usually holds.
    pub(crate) fn failed(&self, ip: IpAddr) -> Option<Duration> {
        let ip = client_block(ip);
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.failures.contains_key(&ip) && inner.failures.len() >= MAX_TRACKED_ADDRESSES {
            inner
                .failures
                .retain(|_, f| now.duration_since(f.since) < FAILURE_WINDOW);
            if inner.failures.len() >= MAX_TRACKED_ADDRESSES {
                return Some(FAILURE_WINDOW);
            }
        }
        let f = inner.failures.entry(ip).or_insert(Failures {
            since: now,
            count: 0,
        });
        let elapsed = now.duration_since(f.since);
        if elapsed >= FAILURE_WINDOW {
            *f = Failures {
                since: now,
                count: 0,
            };
        }
        f.count += 1;
        (f.count > MAX_FAILURES).then(|| FAILURE_WINDOW.saturating_sub(elapsed.min(FAILURE_WINDOW)))
    }

    /// The admin token came from `ip`: its failures are forgotten.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        self.lock().failures.remove(&client_block(ip));
    }
}

/// The unit a failure is counted against: the address (IPv4), or its /64 (IPv6).
fn client_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE_TIMEOUT && now.duration_since(s.created) < MAX_AGE
}

pub(crate) fn random_token() -> String {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, and `Secure` when the client reached us
/// over TLS (see [`Sessions::client`]). `max_age` zero deletes the cookie; `None` makes it last
/// until the browser closes.
pub(crate) fn set_cookie(
    client: Client,
    name: &str,
    value: &str,
    max_age: Option<Duration>,
) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if client.secure {
        c.push_str("; Secure");
    }
    c
}

/// Adds a `Set-Cookie` header made by [`set_cookie`] (names are fixed, values hex tokens).
pub(crate) fn add_cookie(response: &mut axum::response::Response, cookie: String) {
    let value = axum::http::HeaderValue::try_from(cookie).expect("cookies made here are ASCII");
    response.headers_mut().append(header::SET_COOKIE, value);
}

/// The signed-in session of a request, if any.
pub(crate) fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<(String, SignedIn)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    // A page's background status poll does not count as activity.
    let touch = !headers.contains_key(BACKGROUND_HEADER);
    state
        .sessions
        .get(token, touch)
        .map(|s| (token.to_string(), s))
}

/// Proof that a request comes from the administrator: the admin token in `Authorization`, or a
/// panel session (with the session's CSRF token in `X-CSRF-Token` unless the method is safe).
/// Refused requests get 401 (or 403 for a missing CSRF token), as JSON.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(c) = credential(&parts.headers) {
            // An API key is a known client's credential, not a guess: refused, not counted.
            if state.keys.is_valid(c) {
                return state.admin.check(&parts.headers).map(|()| Admin);
            }
            // The right token always passes. Wrong ones are counted per client; past the
            // limit they get 429 with Retry-After instead of 401, and nothing more is logged.
            let client = state.sessions.client_of(&parts.extensions, &parts.headers);
            if state.admin.matches(c) {
                state.sessions.succeeded(client.ip);
                return Ok(Admin);
            }
            if let Some(wait) = state.sessions.failed(client.ip) {
                metrics::counter!("insights_admin_sign_ins_total", "outcome" => "rate_limited")
                    .increment(1);
                return Err(ApiError::too_many_requests(
                    format!(
                        "too many wrong admin tokens from this address; the right token is still accepted, wrong ones are refused like this for {} seconds",
                        wait.as_secs().max(1)
                    ),
                    wait,
                ));
            }
            metrics::counter!("insights_admin_sign_ins_total", "outcome" => "wrong_token")
                .increment(1);
            return state.admin.check(&parts.headers).map(|()| Admin);
        }
        let Some((_, session)) = signed_in(state, &parts.headers) else {
            return state.admin.check(&parts.headers).map(|()| Admin);
        };
        if parts.method == Method::GET || parts.method == Method::HEAD {
            return Ok(Admin);
        }
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if sent.is_some_and(|t| constant_time_eq(t.as_bytes(), session.csrf.as_bytes())) {
            Ok(Admin)
        } else {
            metrics::counter!("insights_admin_csrf_refused_total").increment(1);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AuthorizationError",
                "a signed-in request that changes something needs the page's CSRF token in the X-CSRF-Token header; reload the page",
            ))
        }
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn five_failures_per_address_then_a_wait() {
        let s = Sessions::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(s.failed(a).is_none());
        }
        let wait = s.failed(a).unwrap();
        assert!(wait > Duration::ZERO && wait <= FAILURE_WINDOW);
        assert!(s.failed(b).is_none(), "another address is not affected");
        s.succeeded(a);
        assert!(s.failed(a).is_none(), "the right token clears the count");
        // An IPv6 client cannot get fresh tries by moving within its /64.
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            assert!(s.failed(ip).is_none());
        }
        assert!(s.failed("2001:db8::ffff".parse().unwrap()).is_some());
        assert!(s.failed("2001:db8:0:1::1".parse().unwrap()).is_none());
    }

    #[test]
    fn sessions_are_found_by_token_and_gone_after_sign_out() {
        let s = Sessions::default();
        let (token, csrf) = s.create();
        assert_eq!(s.get(&token, true).unwrap().csrf, csrf);
        assert!(s.get("not-a-session", true).is_none());
        s.remove(&token);
        assert!(s.get(&token, true).is_none());
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; insights_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        let s = Sessions::new(PanelConfig {
            trusted_proxies: vec![proxy, "10.0.0.3".parse().unwrap()],
            secure_cookies: false,
        });
        let mut h = HeaderMap::new();
        // The client wrote the first entry itself; our proxies added the last two.
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 203.0.113.9, 10.0.0.3"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let via_proxy = s.client(proxy, &h);
        assert_eq!(via_proxy.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(via_proxy.secure);
        let direct = s.client(stranger, &h);
        assert_eq!(
            direct,
            Client {
                ip: stranger,
                secure: false
            }
        );

        assert_eq!(
            set_cookie(direct, SESSION_COOKIE, "x", None),
            "insights_session=x; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(via_proxy, SESSION_COOKIE, "x", None).ends_with("; Secure"));
        let always = Sessions::new(PanelConfig {
            trusted_proxies: vec![],
            secure_cookies: true,
        });
        assert!(always.client(stranger, &HeaderMap::new()).secure);
    }
}
