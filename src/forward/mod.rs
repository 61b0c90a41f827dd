//! Forwarding to the merchant's app (SPEC §6): a transactional outbox, filled in the
//! receive transaction, drained by a worker that signs each request the Standard
//! Webhooks way and retries with exponential backoff.
//!
//! - [`outbox`]: the data the store hands over.
//! - [`request`]: what one attempt sends (headers, signature).
//! - [`worker`]: claiming, sending, recording, waking up.
//!
//! The settings are [`ForwardOptions`] (top level) and [`Targets`] (per source). Until
//! the shared `Config` declares them, [`from_env`] reads the `HOOKLATCH_FORWARD_*`
//! variables for the binary.

pub mod outbox;
pub mod request;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigError;
use crate::model::Source;

pub use worker::{Forwarder, backoff};

/// Top-level forwarding settings, named as in SPEC §6.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardOptions {
    /// The decoded `whsec_` key; `None` sends no `webhook-signature`.
    pub secret: Option<Vec<u8>>,
    /// Bound on one whole attempt: connect, send, answer.
    pub timeout: Duration,
    /// Delay before the first retry; doubles per attempt up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Attempts (the first included) before an entry is `failed`.
    pub max_attempts: u32,
    /// Attempts in flight at once, per instance.
    pub concurrency: usize,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            secret: None,
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_attempts: 20,
            concurrency: 8,
        }
    }
}

/// Never print the key.
impl std::fmt::Debug for ForwardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardOptions")
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Where each source forwards: `forward_to` by source name, or by the
/// `HOOKLATCH_FORWARD_TO_<SOURCE>` suffix for sources only named in the environment.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    by_name: HashMap<String, String>,
    by_env_suffix: HashMap<String, String>,
}

impl Targets {
    /// Adds or replaces one source's URL, after checking it is `http(s)`.
    pub fn insert(&mut self, source: &str, url: &str) -> Result<(), ConfigError> {
        check_url(source, url)?;
        self.by_name.insert(source.to_owned(), url.to_owned());
        Ok(())
    }

    /// The URL `source` forwards to, if it forwards.
    pub fn url(&self, source: &Source) -> Option<&str> {
        self.by_name
            .get(source.as_str())
            .or_else(|| self.by_env_suffix.get(&env_suffix(source.as_str())))
            .map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_env_suffix.is_empty()
    }
}

/// A shared, read-only view the HTTP layer and the worker both consult.
pub type SharedTargets = Arc<Targets>;

fn env_suffix(source: &str) -> String {
    source.to_ascii_uppercase().replace('-', "_")
}

/// A forward URL must be absolute `http://` or `https://`; anything else would fail
/// every attempt, so it stops startup instead.
pub fn check_url(source: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError(format!("forward_to of {source}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError(format!(
            "forward_to of {source} must be an http:// or https:// URL"
        )));
    }
    Ok(())
}

/// Interim reader of the forwarding settings from the environment (SPEC §6 names),
/// used by the binary until `Config` carries them.
pub fn from_env(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(ForwardOptions, Targets), ConfigError> {
    let mut options = ForwardOptions::default();
    let mut targets = Targets::default();
    for (key, value) in env {
        let Some(name) = key.strip_prefix("HOOKLATCH_FORWARD_") else {
            continue;
        };
        match name {
            "SECRET" => {
                let key = crate::sources::standard_secret_key(&value)
                    .filter(|_| value.starts_with("whsec_"))
                    .ok_or_else(|| {
                        ConfigError(
                            "HOOKLATCH_FORWARD_SECRET must be whsec_ followed by base64".into(),
                        )
                    })?;
                options.secret = Some(key);
            }
            "TIMEOUT" => options.timeout = seconds(&key, &value)?,
            "RETRY_INITIAL" => options.retry_initial = seconds(&key, &value)?,
            "RETRY_MAX" => options.retry_max = seconds(&key, &value)?,
            "MAX_ATTEMPTS" => options.max_attempts = count(&key, &value)?,
            "CONCURRENCY" => options.concurrency = count(&key, &value)? as usize,
            _ => {
                if let Some(suffix) = name.strip_prefix("TO_") {
                    check_url(suffix, &value)?;
                    targets.by_env_suffix.insert(suffix.to_owned(), value);
                } else {
                    return Err(ConfigError(format!("unknown setting {key}")));
                }
            }
        }
    }
    Ok((options, targets))
}

fn seconds(key: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| ConfigError(format!("{key} must be a positive number of seconds")))
}

fn count(key: &str, value: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError(format!("{key} must be a positive whole number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_from_the_environment() {
        let (options, targets) = from_env(env(&[
            ("HOOKLATCH_FORWARD_TO_MY_SHOP", "https://app.example/hooks"),
            ("HOOKLATCH_FORWARD_TIMEOUT", "2.5"),
            ("HOOKLATCH_FORWARD_RETRY_INITIAL", "0.05"),
            ("HOOKLATCH_FORWARD_MAX_ATTEMPTS", "3"),
            (
                "HOOKLATCH_FORWARD_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("HOOKLATCH_SECRET_X", "unrelated"),
        ]))
        .unwrap();
        assert_eq!(options.timeout, Duration::from_millis(2500));
        assert_eq!(options.retry_initial, Duration::from_millis(50));
        assert_eq!(options.retry_max, Duration::from_secs(3600));
        assert_eq!(options.max_attempts, 3);
        assert!(options.secret.is_some());
        assert!(!format!("{options:?}").contains("MfKQ"));
        let shop = Source::parse("my-shop").unwrap();
        assert_eq!(targets.url(&shop), Some("https://app.example/hooks"));
        assert_eq!(targets.url(&Source::parse("other").unwrap()), None);
    }

    #[test]
    fn unusable_settings_stop_startup() {
        for bad in [
            ("HOOKLATCH_FORWARD_TO_SHOP", "ftp://app.example/"),
            ("HOOKLATCH_FORWARD_TO_SHOP", "not a url"),
            ("HOOKLATCH_FORWARD_SECRET", "whsec_!!!"),
            ("HOOKLATCH_FORWARD_SECRET", "plain"),
            ("HOOKLATCH_FORWARD_TIMEOUT", "0"),
            ("HOOKLATCH_FORWARD_TIMEOUT", "-1"),
            ("HOOKLATCH_FORWARD_MAX_ATTEMPTS", "0"),
            ("HOOKLATCH_FORWARD_TIMOUT", "3"),
        ] {
            assert!(from_env(env(&[bad])).is_err(), "{bad:?}");
        }
    }
}
