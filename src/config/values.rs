//! The value types of settings and their parsers: each refuses a bad value with a reason
//! that never echoes a secret.

use std::fmt;
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use crate::sources::standard_secret_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// 202 with `"status":"conflict"`: providers stop retrying, the original stands.
    #[default]
    Accept,
    /// 409: for operators who want the sender to notice.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message` and the fields.
    Json,
}

/// A decoded Standard Webhooks key (`whsec_` + base64). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardSecret(pub Vec<u8>);

impl ForwardSecret {
    pub(super) fn parse(text: &str) -> Result<ForwardSecret, String> {
        text.strip_prefix("whsec_")
            .and_then(|_| standard_secret_key(text))
            .map(ForwardSecret)
            .ok_or_else(|| "must be whsec_ followed by base64 (the value is not shown)".into())
    }
}

impl fmt::Debug for ForwardSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForwardSecret(***)")
    }
}

/// The admin token as parsed; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl AdminToken {
    pub(super) fn parse(text: &str) -> Result<AdminToken, String> {
        if text.chars().count() < 16 {
            return Err("must be at least 16 characters (the value is not shown)".into());
        }
        Ok(AdminToken(text.to_owned()))
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// A whole number of at least 1 (sizes, counts).
pub(super) fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: fmt::Display,
{
    let value: T = text.trim().parse().map_err(|e| format!("{e}"))?;
    if value < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(value)
}

/// Seconds, fractions allowed; zero or negative is refused (a zero connect timeout
/// panics in r2d2, a zero statement timeout turns PostgreSQL's off).
pub(super) fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be a positive number of seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text} seconds is too long"))
}

/// `90d`, `12h`, `30m` or `45s` (or a sum such as `1h 30m`): parsed by `humantime`, with
/// its units narrowed to `s`, `m`, `h` and `d` (SPEC §5.2), because its `M` is a month
/// and its `y` a year, one typo away from the minutes an operator meant. Also used by
/// `prune`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let usage = || format!("{text:?} is not an age: use a number and s, m, h or d, e.g. 90d");
    let trimmed = text.trim();
    let units_ok = trimmed
        .split(|c: char| c.is_ascii_digit() || c.is_whitespace())
        .all(|unit| matches!(unit, "" | "s" | "m" | "h" | "d"));
    // A bare number has no unit; humantime would refuse it too, but say why here.
    if !units_ok || !trimmed.ends_with(['s', 'm', 'h', 'd']) {
        return Err(usage());
    }
    let age = humantime::parse_duration(trimmed).map_err(|_| usage())?;
    if age.is_zero() {
        return Err("must be positive".into());
    }
    Ok(age)
}

/// `alert_to`: an `http://` or `https://` URL with a host. The refusal never echoes it: a
/// chat incoming-webhook URL is a secret.
pub(super) fn alert_url(text: &str) -> Result<AlertUrl, String> {
    let uri: Option<warp::http::Uri> = text.trim().parse().ok();
    let ok = uri.is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|host| !host.is_empty())
    });
    if ok {
        Ok(AlertUrl(text.trim().to_owned()))
    } else {
        Err("must be an http:// or https:// URL (the value is not shown)".into())
    }
}

/// Where alerts go. Its `Debug` hides its path and query (a chat webhook's token).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertUrl(pub String);

impl fmt::Debug for AlertUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlertUrl({})", super::sources::destination(&self.0))
    }
}
