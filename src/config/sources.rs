//! Per-source settings: `[sources.<name>]` tables of the TOML file and the
//! `HOOKLATCH_SECRET_<SOURCE>` / `HOOKLATCH_FORWARD_TO_<SOURCE>` variables, validated at
//! startup, and the gate that decides whether a source without a secret may take
//! unsigned deliveries.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::layering::file_error;
use crate::error::redact;
use crate::metrics::KnownSources;
use crate::model::Source;
use crate::sources::{Encoding, GenericScheme, IdLocation, Preset, standard_secret_key};

/// Reads the file's `[sources.<name>]` tables and the per-source variables, and checks
/// every secret and forwarding URL.
pub(super) fn load(
    file_sources: toml::Table,
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<Sources, ConfigError> {
    let mut sources = Sources::default();
    for (name, value) in file_sources {
        let path = config_path.unwrap_or_else(|| std::path::Path::new("?"));
        let source: FileSource = value.try_into().map_err(|e: toml::de::Error| {
            file_error(path, &format!("[sources.{name}]: {}", e.message()))
        })?;
        let settings = source_settings(&name, source)?;
        sources.configured.insert(name, settings);
    }
    read_env_sources(&mut sources, env)?;
    validate_secrets(&sources)?;
    let forwarding: Vec<(String, String)> = sources
        .configured
        .iter()
        .filter_map(|(name, s)| {
            Some((
                format!("[sources.{name}] forward_to"),
                s.forward_to.clone()?,
            ))
        })
        .chain(
            sources
                .env_forward_to
                .iter()
                .map(|(suffix, url)| (format!("{FORWARD_TO_PREFIX}{suffix}"), url.clone())),
        )
        .collect();
    for (place, url) in forwarding {
        check_forward_url(&place, &url)?;
    }
    Ok(sources)
}

/// `[sources.<name>]` in the TOML file. Unknown keys are an error, so a typo never
/// silently drops a secret.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSource {
    preset: Option<String>,
    /// `Some(vec![])` (written out) is an error, never "unsigned".
    secrets: Option<Vec<String>>,
    #[serde(default)]
    allow_unsigned: bool,
    forward_to: Option<String>,
    forward_types: Option<Vec<String>>,
    forward_rate: Option<f64>,
    forward_pause_after: Option<u32>,
    // `generic` only:
    signature_header: Option<String>,
    encoding: Option<Encoding>,
    prefix: Option<String>,
    id_header: Option<String>,
    id_pointer: Option<String>,
}

/// The variable prefixes of per-source settings; the source name follows, upper-cased
/// with `-` as `_`. `FORWARD_TO_` cannot collide with the top-level `FORWARD_*` settings
/// (`HOOKLATCH_FORWARD_TIMEOUT` vs `HOOKLATCH_FORWARD_TO_TIMEOUT` for a source named
/// `timeout`): no top-level name starts with either prefix, which a test checks.
pub const SECRET_PREFIX: &str = "HOOKLATCH_SECRET_";
pub const FORWARD_TO_PREFIX: &str = "HOOKLATCH_FORWARD_TO_";

/// How one source is checked and read. Its `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceSettings {
    pub preset: Preset,
    /// Empty: no secret; see [`Sources::unsigned_policy`].
    pub secrets: Vec<String>,
    /// The operator accepts unsigned deliveries on this source even off loopback (its
    /// own `allow_unsigned`, or `HOOKLATCH_ALLOW_UNSIGNED`).
    pub allow_unsigned: bool,
    /// Where new events are forwarded.
    pub forward_to: Option<String>,
    /// Event type patterns to forward (`*` any run of characters); `None`: every event.
    pub forward_types: Option<Vec<String>>,
    /// The least time between the starts of two attempts to this source's app
    /// (1 / `forward_rate`); `None`: unlimited.
    pub forward_every: Option<Duration>,
    /// This source's own `forward_pause_after`.
    pub forward_pause_after: Option<u32>,
}

impl SourceSettings {
    /// Settings with a preset and secrets, nothing else (tests, embedding).
    pub fn new(preset: Preset, secrets: Vec<String>) -> SourceSettings {
        SourceSettings {
            preset,
            secrets,
            allow_unsigned: false,
            forward_to: None,
            forward_types: None,
            forward_every: None,
            forward_pause_after: None,
        }
    }

    /// Whether a new event of this type gets forwarded (SPEC §6.1): the source forwards,
    /// and its type matches one of `forward_types` (an event without a type matches
    /// only `*`).
    pub fn forwards(&self, event_type: Option<&str>) -> bool {
        if self.forward_to.is_none() {
            return false;
        }
        match &self.forward_types {
            None => true,
            Some(patterns) => patterns.iter().any(|pattern| match event_type {
                Some(event_type) => type_matches(pattern, event_type),
                None => pattern == "*",
            }),
        }
    }
}

/// A URL's scheme, host and port only (the port made explicit), never its path, query
/// or credentials: what the forwarding list shows of `forward_to`.
pub fn destination(url: &str) -> String {
    let Ok(uri) = url.parse::<warp::http::Uri>() else {
        return "?".into();
    };
    let scheme = uri.scheme_str().unwrap_or("?");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    match uri.host() {
        Some(host) => format!("{scheme}://{host}:{port}"),
        None => "?".into(),
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn type_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl fmt::Debug for SourceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSettings")
            .field("preset", &self.preset)
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .field("allow_unsigned", &self.allow_unsigned)
            .field("forward_to", &self.forward_to.as_deref().map(redact))
            .field("forward_types", &self.forward_types)
            .field("forward_every", &self.forward_every)
            .field("forward_pause_after", &self.forward_pause_after)
            .finish()
    }
}

/// Per-source settings from the TOML file and `HOOKLATCH_SECRET_<SOURCE>` /
/// `HOOKLATCH_FORWARD_TO_<SOURCE>` variables. Its `Debug` never shows a secret.
#[derive(Clone, Default)]
pub struct Sources {
    configured: HashMap<String, SourceSettings>,
    /// Environment values by their variable suffix (`MY_SHOP`), looked up per request
    /// because any source name may receive deliveries.
    env_secrets: HashMap<String, Vec<String>>,
    env_forward_to: HashMap<String, String>,
    /// `HOOKLATCH_ALLOW_UNSIGNED`.
    allow_unsigned_all: bool,
    /// Listening off loopback: a source without a secret refuses deliveries unless
    /// allowed.
    exposed: bool,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("configured", &self.configured)
            .field("env_secrets", &self.env_secrets.keys().collect::<Vec<_>>())
            .field(
                "env_forward_to",
                &self.env_forward_to.keys().collect::<Vec<_>>(),
            )
            .field("allow_unsigned_all", &self.allow_unsigned_all)
            .field("exposed", &self.exposed)
            .finish()
    }
}

impl KnownSources for Sources {
    fn is_known(&self, source: &Source) -> bool {
        Sources::is_known(self, source)
    }
}

impl Sources {
    /// The settings for `source`: configured, else its preset by name, with environment
    /// values taking precedence over the file.
    pub fn settings(&self, source: &Source) -> SourceSettings {
        let mut settings = self
            .configured
            .get(source.as_str())
            .cloned()
            .unwrap_or_else(|| {
                SourceSettings::new(Preset::for_source(source.as_str()), Vec::new())
            });
        let suffix = env_suffix(source.as_str());
        if let Some(secrets) = self.env_secrets.get(&suffix) {
            settings.secrets = secrets.clone();
        }
        if let Some(url) = self.env_forward_to.get(&suffix) {
            settings.forward_to = Some(url.clone());
        }
        settings.allow_unsigned |= self.allow_unsigned_all;
        settings
    }

    /// Where `source` forwards its new events, if anywhere (file or environment).
    pub fn forward_to(&self, source: &Source) -> Option<&str> {
        self.env_forward_to
            .get(&env_suffix(source.as_str()))
            .or_else(|| self.configured.get(source.as_str())?.forward_to.as_ref())
            .map(String::as_str)
    }

    /// Whether a delivery to a source with these settings may be unsigned: yes when it has
    /// no secret and the server listens on loopback or the operator allowed it.
    pub fn unsigned_policy(&self, settings: &SourceSettings) -> crate::sources::Unsigned {
        if self.exposed && !settings.allow_unsigned {
            crate::sources::Unsigned::Refused
        } else {
            crate::sources::Unsigned::Accepted
        }
    }

    /// Applies where the server listens and `HOOKLATCH_ALLOW_UNSIGNED`. `App::new` calls
    /// it, so settings built by hand get the same gate as loaded ones.
    pub fn serving_on(&mut self, listen: SocketAddr, allow_unsigned_all: bool) {
        self.exposed = !listen.ip().to_canonical().is_loopback();
        self.allow_unsigned_all = allow_unsigned_all;
    }

    /// Listening off loopback.
    pub fn exposed(&self) -> bool {
        self.exposed
    }

    /// Adds or replaces one source's settings (tests, embedding).
    pub fn insert(&mut self, name: &str, settings: SourceSettings) {
        self.configured.insert(name.to_owned(), settings);
    }

    /// A source the operator configured, or a preset's name.
    pub fn is_known(&self, source: &Source) -> bool {
        let suffix = env_suffix(source.as_str());
        self.configured.contains_key(source.as_str())
            || Preset::named(source.as_str()).is_some()
            || self.env_secrets.contains_key(&suffix)
            || self.env_forward_to.contains_key(&suffix)
    }

    /// Sources without a secret among those configured and the presets' names, with
    /// whether each accepts unsigned deliveries (for the startup warnings).
    pub fn without_secret(&self) -> Vec<(String, bool)> {
        let mut names: Vec<String> = self
            .configured
            .keys()
            .cloned()
            .chain(Preset::BUILT_IN.iter().map(|name| (*name).to_owned()))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| {
                let settings = self.settings(&Source::parse(&name)?);
                let accepted =
                    self.unsigned_policy(&settings) == crate::sources::Unsigned::Accepted;
                settings.secrets.is_empty().then_some((name, accepted))
            })
            .collect()
    }

    /// The sources the configuration forwards: named in the file, or by a
    /// `HOOKLATCH_FORWARD_TO_<SOURCE>` variable (read back as the lower-cased name).
    pub fn forwarding_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .configured
            .iter()
            .filter(|(_, s)| s.forward_to.is_some())
            .map(|(name, _)| name.clone())
            .chain(
                self.env_forward_to
                    .keys()
                    .map(|suffix| suffix.to_ascii_lowercase()),
            )
            .filter(|name| Source::parse(name).is_some_and(|s| self.forward_to(&s).is_some()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether any source forwards (for the missing `forward_secret` warning).
    pub fn any_forwarding(&self) -> bool {
        !self.env_forward_to.is_empty() || self.configured.values().any(|s| s.forward_to.is_some())
    }
}

fn env_suffix(source: &str) -> String {
    source.to_ascii_uppercase().replace('-', "_")
}

/// The environment variable that holds a source's secrets: `HOOKLATCH_SECRET_<SOURCE>`.
pub fn secret_variable(source: &str) -> String {
    format!("{SECRET_PREFIX}{}", env_suffix(source))
}

/// `HOOKLATCH_SECRET_<SOURCE>` and `HOOKLATCH_FORWARD_TO_<SOURCE>`.
fn read_env_sources(
    sources: &mut Sources,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    for (key, value) in env {
        let (suffix, is_secret) = if let Some(suffix) = key.strip_prefix(SECRET_PREFIX) {
            (suffix, true)
        } else if let Some(suffix) = key.strip_prefix(FORWARD_TO_PREFIX) {
            (suffix, false)
        } else {
            continue;
        };
        let valid_suffix = !suffix.is_empty()
            && suffix.len() <= 64
            && suffix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_suffix {
            return Err(ConfigError(format!(
                "{key}: the part after the prefix must be a source name upper-cased, with - as _ (A-Z, 0-9, _)"
            )));
        }
        if is_secret {
            let secrets: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
            if secrets.iter().any(String::is_empty) {
                return Err(ConfigError(format!(
                    "{key} holds an empty secret; remove the variable for an unsigned source, or set the secret"
                )));
            }
            sources.env_secrets.insert(suffix.to_owned(), secrets);
        } else {
            sources
                .env_forward_to
                .insert(suffix.to_owned(), value.trim().to_owned());
        }
    }
    Ok(())
}

fn check_forward_url(place: &str, url: &str) -> Result<(), ConfigError> {
    let uri: Option<warp::http::Uri> = url.parse().ok();
    let ok = uri.is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|host| !host.is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{place} must be an http:// or https:// URL; got {:?}",
            redact(url)
        )))
    }
}

fn source_settings(name: &str, source: FileSource) -> Result<SourceSettings, ConfigError> {
    if Source::parse(name).is_none() {
        return Err(ConfigError(format!(
            "[sources.{name}]: a source name is 1-64 characters of a-z, 0-9, _ and -"
        )));
    }
    let preset_name = source
        .preset
        .clone()
        .unwrap_or_else(|| Preset::for_source(name).name().to_owned());
    let preset = match preset_name.as_str() {
        "generic" => {
            let signature_header = source.signature_header.ok_or_else(|| {
                ConfigError(format!("[sources.{name}]: the generic preset needs signature_header"))
            })?;
            let id = match (source.id_header, source.id_pointer) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError(format!("[sources.{name}]: set id_header or id_pointer, not both")));
                }
                (Some(header), None) => Some(IdLocation::Header(header)),
                (None, Some(pointer)) if pointer.starts_with('/') => Some(IdLocation::Pointer(pointer)),
                (None, Some(pointer)) => {
                    return Err(ConfigError(format!("[sources.{name}]: id_pointer {pointer:?} must start with /")));
                }
                (None, None) => None,
            };
            Preset::Generic(GenericScheme {
                signature_header,
                encoding: source.encoding.unwrap_or(Encoding::Hex),
                prefix: source.prefix,
                id,
            })
        }
        other => Preset::named(other).ok_or_else(|| {
            ConfigError(format!(
                "[sources.{name}]: unknown preset {other:?}; use refersion, shopify, stripe, github, standard or generic"
            ))
        })?,
    };
    let secrets = match source.secrets {
        None => Vec::new(),
        Some(secrets) if secrets.is_empty() => {
            return Err(ConfigError(format!(
                "[sources.{name}]: secrets = [] is empty; remove the key for an unsigned source, or list a secret"
            )));
        }
        Some(secrets) if secrets.iter().any(|s| s.trim().is_empty()) => {
            return Err(ConfigError(format!(
                "[sources.{name}]: secrets holds an empty secret"
            )));
        }
        Some(secrets) => secrets,
    };
    let forward_every = match source.forward_rate {
        None => None,
        Some(rate) if rate.is_finite() && rate > 0.0 && rate <= 1e6 => {
            Some(Duration::from_secs_f64(1.0 / rate))
        }
        Some(_) => {
            return Err(ConfigError(format!(
                "[sources.{name}]: forward_rate must be a number of attempts per second above 0, such as 5 or 0.5"
            )));
        }
    };
    if source.forward_pause_after == Some(0) {
        return Err(ConfigError(format!(
            "[sources.{name}]: forward_pause_after must be at least 1"
        )));
    }
    if let Some(types) = &source.forward_types
        && types.iter().any(String::is_empty)
    {
        return Err(ConfigError(format!(
            "[sources.{name}]: forward_types holds an empty pattern; use \"*\" for every event"
        )));
    }
    Ok(SourceSettings {
        preset,
        secrets,
        allow_unsigned: source.allow_unsigned,
        forward_to: source.forward_to,
        forward_types: source.forward_types,
        forward_every,
        forward_pause_after: source.forward_pause_after,
    })
}

/// A Standard Webhooks secret that does not decode would reject every delivery; say so
/// at startup instead, wherever it was set.
fn validate_secrets(sources: &Sources) -> Result<(), ConfigError> {
    let from_file = sources
        .configured
        .iter()
        .filter(|(name, _)| !sources.env_secrets.contains_key(&env_suffix(name)))
        .map(|(name, settings)| {
            (
                format!("[sources.{name}]"),
                settings.preset.clone(),
                &settings.secrets,
            )
        });
    let from_env = sources.env_secrets.iter().map(|(suffix, secrets)| {
        // The preset of the source this variable names: configured, else by its name.
        let preset = sources
            .configured
            .iter()
            .find(|(name, _)| env_suffix(name) == *suffix)
            .map(|(_, settings)| settings.preset.clone())
            .unwrap_or_else(|| Preset::for_source(&suffix.to_ascii_lowercase()));
        (format!("{SECRET_PREFIX}{suffix}"), preset, secrets)
    });
    for (place, preset, secrets) in from_file.chain(from_env) {
        let undecodable = secrets.iter().any(|s| standard_secret_key(s).is_none());
        if matches!(preset, Preset::Standard) && undecodable {
            // The setting only, not one character of the secret: even a prefix narrows
            // a guess, and startup errors end up in shared logs.
            return Err(ConfigError(format!(
                "{place}: a secret does not decode (Standard Webhooks secrets are whsec_ followed by base64)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod type_tests {
    use super::type_matches;

    #[test]
    fn a_star_matches_any_run_of_characters() {
        for (pattern, text, expected) in [
            ("orders/*", "orders/create", true),
            ("orders/*", "orders/", true),
            ("orders/*", "order/create", false),
            ("*", "", true),
            ("*", "anything", true),
            ("NEW_CONVERSION", "NEW_CONVERSION", true),
            ("NEW_CONVERSION", "NEW_CONVERSIONS", false),
            ("*.created", "charge.created", true),
            ("*.created", "charge.created.late", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(type_matches(pattern, text), expected, "{pattern} on {text}");
        }
    }
}
