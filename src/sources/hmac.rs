//! The one HMAC-SHA256 every preset uses, with a constant-time comparison.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// True when `candidate` is the HMAC-SHA256 of the concatenated `parts` under `key`.
/// The comparison is constant-time (`verify_slice`), so timing never reveals how much
/// of a forged signature was right.
pub fn matches(key: &[u8], parts: &[&[u8]], candidate: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(candidate).is_ok()
}

/// True when any of `candidates` verifies under any of `keys`.
pub fn any_matches(keys: &[Vec<u8>], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    keys.iter()
        .any(|key| candidates.iter().any(|c| matches(key, parts, c)))
}
