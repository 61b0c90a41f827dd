//! The brute-force limit on the admin token (SPEC §5.1): after 10 wrong tokens from one
//! client address within 10 minutes, console form and API bearer alike, that address is
//! refused with 429 and `Retry-After`, even with the right token, until the oldest of
//! those wrong tokens is 10 minutes old. A sliding window: an address can never try more
//! than 10 tokens in any 10 minutes.
//!
//! Kept in the process: each instance counts the attempts it sees, so behind a load
//! balancer spreading one client over N instances the bound is 10 × N per 10 minutes,
//! still far from what guessing a 16-character token needs.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Wrong tokens an address may send within [`WINDOW`].
pub const MAX_WRONG: usize = 10;
/// How far back wrong tokens count.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Addresses remembered at once, so a flood of addresses cannot grow memory without
/// bound; past it, the address whose last wrong token is oldest is forgotten first.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Default)]
pub struct SignInLimit {
    wrong: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl SignInLimit {
    /// How long `addr` must wait before its next try, or `None` if it may try now.
    pub fn refused(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let key = key(addr);
        let mut wrong = self.wrong.lock();
        let times = wrong.get_mut(&key)?;
        forget_old(times, now);
        if times.is_empty() {
            wrong.remove(&key);
            return None;
        }
        if times.len() < MAX_WRONG {
            return None;
        }
        let oldest = *times.front()?;
        Some((oldest + WINDOW).saturating_duration_since(now))
    }

    /// Counts a wrong token from `addr`.
    pub fn wrong(&self, addr: IpAddr, now: Instant) {
        let key = key(addr);
        let mut wrong = self.wrong.lock();
        if !wrong.contains_key(&key) && wrong.len() >= MAX_ADDRESSES {
            wrong.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
            if wrong.len() >= MAX_ADDRESSES
                && let Some(stalest) = wrong
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(addr, _)| *addr)
            {
                wrong.remove(&stalest);
            }
        }
        let times = wrong.entry(key).or_default();
        forget_old(times, now);
        times.push_back(now);
        // Only the newest MAX_WRONG decide anything.
        while times.len() > MAX_WRONG {
            times.pop_front();
        }
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// One IPv6 client usually holds a whole /64: counted as one address, or it could try
/// 10 tokens from each of 2^64 addresses.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

/// The seconds of a `Retry-After` for `wait`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn ten_wrong_tokens_refuse_the_address_until_the_oldest_is_ten_minutes_old() {
        let limit = SignInLimit::default();
        let start = Instant::now();
        let client = addr("192.0.2.7");
        for n in 0..MAX_WRONG as u64 {
            assert_eq!(limit.refused(client, start), None, "try {n}");
            limit.wrong(client, start + Duration::from_secs(n));
        }
        let now = start + Duration::from_secs(60);
        assert_eq!(limit.refused(client, now), Some(Duration::from_secs(540)));
        assert_eq!(
            limit.refused(addr("192.0.2.8"), now),
            None,
            "others may try"
        );
        let later = start + WINDOW - Duration::from_millis(1);
        assert!(limit.refused(client, later).is_some());
        // The oldest wrong token leaves the window: one more try, no more.
        let passed = start + WINDOW;
        assert_eq!(limit.refused(client, passed), None);
        limit.wrong(client, passed);
        assert!(limit.refused(client, passed).is_some());
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_prefix() {
        let limit = SignInLimit::default();
        let now = Instant::now();
        for n in 0..MAX_WRONG {
            limit.wrong(addr(&format!("2001:db8:1:2::{n:x}")), now);
        }
        assert!(limit.refused(addr("2001:db8:1:2:ffff::1"), now).is_some());
        assert_eq!(limit.refused(addr("2001:db8:1:3::1"), now), None);
        limit.wrong(addr("::ffff:192.0.2.9"), now);
        let v4 = addr("192.0.2.9");
        assert_eq!(limit.wrong.lock().get(&v4).map(VecDeque::len), Some(1));
    }

    #[test]
    fn memory_is_bounded_whatever_the_number_of_addresses() {
        let limit = SignInLimit::default();
        let now = Instant::now();
        for n in 0..(MAX_ADDRESSES as u32 + 50) {
            limit.wrong(IpAddr::V4(n.into()), now);
        }
        assert!(limit.wrong.lock().len() <= MAX_ADDRESSES);
    }
}
