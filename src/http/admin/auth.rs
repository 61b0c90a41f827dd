//! Who may use the admin side: a bearer token for the API, a session cookie for the
//! console (signed in once with the same token). Tokens are compared in constant time:
//! as HMAC tags (hmac's `verify_slice` compares in constant time), so that not even their
//! length leaks through timing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use warp::http::HeaderMap;

/// The shortest admin token accepted (SPEC §5.1).
pub const MIN_TOKEN_LEN: usize = 16;

/// How long a console session lasts without signing in again.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The console caps its sessions so a script hammering the login form cannot grow memory.
const MAX_SESSIONS: usize = 1000;

/// The admin side, when it is on.
pub struct Admin {
    tag: Vec<u8>,
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub expires: Instant,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin { token: *** }")
    }
}

impl Admin {
    pub fn new(token: &str) -> Admin {
        Admin {
            tag: tag(token),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Constant-time comparison with the configured token.
    pub fn accepts(&self, candidate: &str) -> bool {
        same_tag(candidate, &self.tag)
    }

    /// `Authorization: Bearer <token>` carries the admin token.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(warp::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 7235); the token is not.
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .is_some_and(|(_, token)| self.accepts(token.trim()))
    }

    /// Opens a session; returns its id (the cookie value). `None` only if the OS
    /// random generator fails: a session id must never be guessable.
    pub fn open_session(&self) -> Option<(String, Session)> {
        let id = random_token()?;
        let session = Session {
            csrf: random_token()?,
            expires: Instant::now() + SESSION_TTL,
        };
        let mut sessions = self.sessions.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            // Drop the session closest to expiry rather than refuse a sign-in.
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The live session named by the cookie, if any.
    pub fn session(&self, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock();
        match sessions.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn close_session(&self, id: &str) {
        self.sessions.lock().remove(id);
    }
}

/// The key only makes the tags fixed-length; the comparison needs no secret key.
const TAG_KEY: &[u8] = b"hooklatch admin comparison";

/// HMAC accepts a key of any length, so this is always `Some`; were it not, every
/// comparison would fail (refuse), never pass.
fn mac(text: &str) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(TAG_KEY).ok()?;
    mac.update(text.as_bytes());
    Some(mac)
}

fn tag(text: &str) -> Vec<u8> {
    mac(text)
        .map(|mac| mac.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// `text`'s tag equals `tag`, compared in constant time.
fn same_tag(text: &str, tag: &[u8]) -> bool {
    mac(text).is_some_and(|mac| mac.verify_slice(tag).is_ok())
}

/// 256 bits from the OS, URL-safe.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Constant-time equality of two short strings (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    same_tag(a, &tag(b))
}
