//! Pace (SPEC §6.1): each source's `forward_rate` as a least spacing between the starts
//! of two attempts to its app from this instance, and an answer's `Retry-After`.
//!
//! Spacing, not a count per window: starts `1 / forward_rate` apart can never put more
//! than `forward_rate` of them in any second, and a backlog drains evenly instead of in
//! bursts at each second's start.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The next free start of each paced source.
#[derive(Default)]
pub struct Pacer {
    next: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// Reserves the next start for `source`, spaced `every` after the previous one, and
    /// returns how long to wait for it; `None` (nothing reserved) when that is longer
    /// than `longest`: the caller hands the entry back instead of holding it.
    pub fn reserve(&self, source: &str, every: Duration, longest: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let start = next.get(source).copied().unwrap_or(now).max(now);
        let wait = start - now;
        if wait > longest {
            return None;
        }
        next.insert(source.to_owned(), start + every);
        Some(wait)
    }

    /// How long until `source` may start again (zero when it may now).
    pub fn wait(&self, source: &str) -> Duration {
        let next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        next.get(source)
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Sources that may not start an attempt yet, and the soonest any of them may.
    pub fn held(&self) -> (Vec<String>, Option<Instant>) {
        let now = Instant::now();
        let next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let held: Vec<(&String, &Instant)> = next.iter().filter(|(_, at)| **at > now).collect();
        let soonest = held.iter().map(|(_, at)| **at).min();
        (held.into_iter().map(|(s, _)| s.clone()).collect(), soonest)
    }
}

/// The delay a `429` or `503` asks for with `Retry-After`: seconds, or an HTTP date (a
/// date in the past is no delay). `None` for other statuses or an unreadable value.
pub fn retry_after(status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, value.parse().unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_on_429_and_503_only() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            retry_after(429, &headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(503, &headers("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(503, &headers("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(500, &headers("120"), now), None);
        assert_eq!(retry_after(429, &headers("soon"), now), None);
        assert_eq!(retry_after(429, &HeaderMap::new(), now), None);
    }

    #[test]
    fn reservations_are_spaced_and_a_long_wait_reserves_nothing() {
        let pacer = Pacer::default();
        let every = Duration::from_millis(100);
        let long = Duration::from_secs(1);
        assert_eq!(pacer.reserve("a", every, long), Some(Duration::ZERO));
        let second = pacer.reserve("a", every, long).unwrap();
        assert!(
            second > Duration::from_millis(50) && second <= every,
            "{second:?}"
        );
        assert_eq!(pacer.reserve("b", every, long), Some(Duration::ZERO));
        assert_eq!(pacer.reserve("a", every, Duration::from_millis(10)), None);
        let (held, soonest) = pacer.held();
        assert!(held.contains(&"a".to_owned()) && soonest.is_some());
    }
}
