//! One alert per incident (SPEC §6.1): `forwarding.paused` when a source's forwarding
//! pauses, `forwarding.resumed` when it resumes, POSTed to `alert_to` as JSON with a
//! human `text` (a chat incoming-webhook URL shows it as is), signed like forwards.
//!
//! Who sends: the one caller whose store call changed the source's state (the store
//! says so, once per change across every instance), so an incident alerts once, never
//! once per failed attempt. Sending runs on a task of its own with a few retries, so it
//! never delays a forward, a webhook or an admin answer.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ForwardConfig, request};
use crate::metrics;
use crate::model::clock::{now_text, unix_now};
use crate::model::outbox::SourceChange;

/// Attempts per alert, and the wait before the second (doubling).
const TRIES: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Sends alerts to `alert_to`, when set.
#[derive(Clone)]
pub struct Alerter {
    to: Option<String>,
    key: Option<Vec<u8>>,
    client: reqwest::Client,
    first_retry: Duration,
}

impl Alerter {
    pub fn new(options: &ForwardConfig) -> Alerter {
        let client = reqwest::Client::builder()
            .user_agent(concat!("hooklatch/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .build()
            .unwrap_or_default();
        Alerter {
            to: options.alert_to.clone(),
            key: options.secret.clone(),
            client,
            first_retry: FIRST_RETRY.min(options.retry_initial),
        }
    }

    /// The `forwarding.paused` alert, on a task of its own.
    pub fn paused(&self, change: &SourceChange) {
        self.spawn(paused_alert(change));
    }

    /// The `forwarding.resumed` alert, on a task of its own.
    pub fn resumed(&self, source: &str) {
        self.spawn(resumed_alert(source));
    }

    fn spawn(&self, alert: Value) {
        if self.to.is_none() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.send(alert).await });
    }

    /// Sends one alert, retrying a few times; true once the receiver answered 2xx (or
    /// when there is nowhere to send).
    pub async fn send(&self, alert: Value) -> bool {
        let Some(to) = &self.to else {
            return true;
        };
        let kind = alert["type"].as_str().unwrap_or("alert").to_owned();
        let body = alert.to_string().into_bytes();
        // One id for every try, so a receiver that got a try twice can dedupe.
        let id = format!("hla_{:016x}", fastrand::u64(..));
        let mut wait = self.first_retry;
        for attempt in 1..=TRIES {
            let headers = request::alert_headers(&id, &body, unix_now(), self.key.as_deref());
            let sent = self
                .client
                .post(to)
                .headers(headers)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    metrics::alert(&kind, "sent");
                    tracing::info!(alert = %kind, "alert sent");
                    return true;
                }
                Ok(answer) => {
                    tracing::warn!(alert = %kind, attempt, status = %answer.status(), "alert refused")
                }
                Err(e) => {
                    tracing::warn!(alert = %kind, attempt, error = %crate::error::chain(&e.without_url()), "alert not sent")
                }
            }
            if attempt < TRIES {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        metrics::alert(&kind, "failed");
        false
    }
}

/// `{"type":"forwarding.paused","source","consecutive_failures","last_error","at","text"}`.
pub fn paused_alert(change: &SourceChange) -> Value {
    let why = match &change.last_error {
        Some(error) => format!(" (last: {error})"),
        None => String::new(),
    };
    let text = if change.consecutive_failures > 0 {
        format!(
            "hooklatch paused forwarding for {} after {} failed attempts in a row{why}; events are kept and will be sent after `hooklatch forward resume {}`.",
            change.source, change.consecutive_failures, change.source
        )
    } else {
        format!(
            "hooklatch forwarding for {} was paused by hand; events are kept and will be sent after `hooklatch forward resume {}`.",
            change.source, change.source
        )
    };
    json!({
        "type": "forwarding.paused",
        "source": change.source,
        "consecutive_failures": change.consecutive_failures,
        "last_error": change.last_error,
        "at": now_text(),
        "text": text,
    })
}

/// `{"type":"forwarding.resumed","source","at","text"}`.
pub fn resumed_alert(source: &str) -> Value {
    json!({
        "type": "forwarding.resumed",
        "source": source,
        "at": now_text(),
        "text": format!("hooklatch resumed forwarding for {source}; the events kept meanwhile are being sent."),
    })
}
