//! Who may use the admin side: a bearer token for the API, a session cookie for the
//! console (signed in once with the same token). Tokens are compared in constant time,
//! as SHA-256 digests so that not even their length leaks through timing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::http::HeaderMap;

/// The shortest admin token accepted (SPEC §5.1).
pub const MIN_TOKEN_LEN: usize = 16;

/// How long a console session lasts without signing in again.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The console caps its sessions so a script hammering the login form cannot grow memory.
const MAX_SESSIONS: usize = 1000;

/// The admin side, when it is on.
pub struct Admin {
    digest: [u8; 32],
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
            digest: digest(token),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Constant-time comparison with the configured token.
    pub fn accepts(&self, candidate: &str) -> bool {
        bool::from(digest(candidate).ct_eq(&self.digest))
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

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// 256 bits from the OS, URL-safe.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Constant-time equality of two short strings (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    bool::from(digest(a).ct_eq(&digest(b)))
}
