//! Who may use the admin side: a bearer token for the API, a session cookie for the
//! console (signed in once with the same token). Tokens are compared in constant time:
//! as HMAC tags (hmac's `verify_slice` compares in constant time), so that not even their
//! length leaks through timing.
//!
//! A console session is a signed value, not a row in this process (SPEC §5.1):
//! `<issued unix seconds>.<random nonce>.<HMAC-SHA256 tag>`, keyed from the admin token.
//! Every instance sharing the token accepts it, it survives a restart, and changing the
//! token signs everyone out. Its CSRF token is derived from it with the same key, so no
//! instance needs to remember either.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use warp::http::HeaderMap;

use super::sign_in_limit::SignInLimit;
use crate::model::clock::unix_now;

/// The shortest admin token accepted (SPEC §5.1).
pub const MIN_TOKEN_LEN: usize = 16;

/// How long a console session lasts after sign-in (SPEC §5.1).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Instances' clocks differ a little: a session issued this far in the future is taken.
const CLOCK_SKEW_SECS: i64 = 60;

/// Signed-out sessions remembered until they expire; past this, the one closest to
/// expiry is forgotten first, so signing out in a loop cannot grow memory.
const MAX_SIGNED_OUT: usize = 10_000;

/// The admin side, when it is on.
pub struct Admin {
    tag: Vec<u8>,
    /// Signs session values; derived from the token, never the token itself.
    session_key: Vec<u8>,
    /// Nonces of sessions signed out here, with their expiry (unix seconds).
    signed_out: Mutex<HashMap<String, i64>>,
    /// Wrong tokens per client address (SPEC §5.1).
    pub limit: SignInLimit,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    /// Unix seconds.
    pub expires: i64,
    nonce: String,
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
            session_key: keyed(token.as_bytes(), "hooklatch console session key v1")
                .unwrap_or_default(),
            signed_out: Mutex::new(HashMap::new()),
            limit: SignInLimit::default(),
        }
    }

    /// Constant-time comparison with the configured token.
    pub fn accepts(&self, candidate: &str) -> bool {
        same_tag(candidate, &self.tag)
    }

    /// The token an `Authorization: Bearer <token>` header carries, if any.
    pub fn bearer(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(warp::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 7235); the token is not.
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
    }

    /// `Authorization: Bearer <token>` carries the admin token.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        Self::bearer(headers).is_some_and(|token| self.accepts(token))
    }

    /// Opens a session now; returns the cookie value. `None` only if the OS random
    /// generator fails: a session must never be guessable.
    pub fn open_session(&self) -> Option<(String, Session)> {
        self.session_issued_at(unix_now())
    }

    /// A session signed as if opened at `issued` (unix seconds): sign-in uses now; a test
    /// uses the past to see a session expire without waiting 12 hours.
    pub fn session_issued_at(&self, issued: i64) -> Option<(String, Session)> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let nonce = URL_SAFE_NO_PAD.encode(bytes);
        let signed = format!("{issued}.{nonce}");
        let value = format!("{signed}.{}", self.sign("session", &signed)?);
        let session = self.session_of(issued, &nonce)?;
        Some((value, session))
    }

    /// The live session a cookie value names: signed with this token's key, not expired,
    /// not signed out here.
    pub fn session(&self, value: &str) -> Option<Session> {
        let (signed, signature) = value.rsplit_once('.')?;
        let (issued, nonce) = signed.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac("session")?;
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let issued: i64 = issued.parse().ok()?;
        let now = unix_now();
        if issued > now + CLOCK_SKEW_SECS {
            return None;
        }
        let session = self.session_of(issued, nonce)?;
        if session.expires <= now || self.signed_out.lock().contains_key(nonce) {
            return None;
        }
        Some(session)
    }

    /// Ends the session the cookie value names. Its value is refused here from now on;
    /// the browser's cookie is cleared by the answer.
    pub fn close_session(&self, value: &str) {
        let Some(session) = self.session(value) else {
            return;
        };
        let mut signed_out = self.signed_out.lock();
        let now = unix_now();
        signed_out.retain(|_, expires| *expires > now);
        if signed_out.len() >= MAX_SIGNED_OUT
            && let Some(soonest) = signed_out
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(nonce, _)| nonce.clone())
        {
            signed_out.remove(&soonest);
        }
        signed_out.insert(session.nonce, session.expires);
    }

    fn session_of(&self, issued: i64, nonce: &str) -> Option<Session> {
        let ttl = i64::try_from(SESSION_TTL.as_secs()).ok()?;
        Some(Session {
            csrf: self.sign("csrf", &format!("{issued}.{nonce}"))?,
            expires: issued.checked_add(ttl)?,
            nonce: nonce.to_owned(),
        })
    }

    /// A MAC under the session key, separated by `purpose` so a session tag can never
    /// serve as a CSRF token or the other way round.
    fn mac(&self, purpose: &str) -> Option<Hmac<Sha256>> {
        if self.session_key.is_empty() {
            return None;
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.session_key).ok()?;
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        Some(mac)
    }

    fn sign(&self, purpose: &str, text: &str) -> Option<String> {
        let mut mac = self.mac(purpose)?;
        mac.update(text.as_bytes());
        Some(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// HMAC-SHA256 of `text` under `key`; `None` never happens (HMAC takes any key length),
/// and were it to, no session would ever be accepted rather than any.
fn keyed(key: &[u8], text: &str) -> Option<Vec<u8>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(text.as_bytes());
    Some(mac.finalize().into_bytes().to_vec())
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

/// Constant-time equality of two short strings (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    same_tag(a, &tag(b))
}
