//! The last refused deliveries, kept in memory for the admin API and console: how a
//! merchant finds a wrong signing secret, since a refused delivery stores nothing.
//! Only what the server decided is kept (status, error code, reason), never a body, a
//! header value or a secret.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::Serialize;

/// How many refusals are kept; older ones fall off.
pub const KEPT: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub at: String,
    pub source: String,
    pub status: u16,
    pub error: &'static str,
    pub reason: Option<String>,
    pub event_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct Rejections(Mutex<VecDeque<Refusal>>);

impl Rejections {
    /// Keeps `refusal`, its reason bounded to 200 characters on one line (SPEC §7).
    pub fn record(&self, mut refusal: Refusal) {
        refusal.reason = refusal.reason.as_deref().map(crate::error::bounded);
        let mut kept = self.0.lock();
        if kept.len() == KEPT {
            kept.pop_back();
        }
        kept.push_front(refusal);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Refusal> {
        self.0.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_hundred_newest_first() {
        let rejections = Rejections::default();
        for n in 0..150 {
            rejections.record(Refusal {
                at: n.to_string(),
                source: "acme".into(),
                status: 401,
                error: "invalid_signature",
                reason: None,
                event_id: None,
            });
        }
        let recent = rejections.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].at, "149");
        assert_eq!(recent[99].at, "50");
    }

    #[test]
    fn a_reason_is_kept_on_one_line_and_at_most_200_characters() {
        let rejections = Rejections::default();
        rejections.record(Refusal {
            at: "now".into(),
            source: "acme".into(),
            status: 400,
            error: "invalid_payload",
            reason: Some(format!("field: {}\nmore", "é".repeat(1000))),
            event_id: None,
        });
        let reason = rejections.recent()[0].reason.clone().unwrap();
        assert_eq!(reason.chars().count(), 200, "{reason}");
        assert!(reason.ends_with('…') && !reason.contains('\n'));
    }
}
