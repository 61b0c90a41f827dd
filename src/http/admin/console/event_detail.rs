//! One event's page: its facts, payload, conversion, forwarding state with the retry
//! button, and the deliveries that reused its id with another payload.

use maud::{Markup, html};
use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::{forward_badge, retry_button, time_and_age};
use super::layout::{SignedIn, html_response, layout};
use crate::http::admin::detail::{self, EventDetail};
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::model::Source;
use crate::read::ConversionItem;

fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// `None` from the store (no such event) is a 404.
pub(super) async fn render(
    app: &App,
    view: &SignedIn<'_>,
    source: &str,
    event_id: &str,
) -> Result<Response, ApiError> {
    let Some(detail) = detail::load(app, source, event_id).await? else {
        return Err(ApiError::NotFound);
    };
    let EventDetail {
        item, conversion, ..
    } = &detail;
    let forwards =
        Source::parse(&item.source).is_some_and(|source| app.sources.forward_to(&source).is_some());
    let json = detail.json();
    let content = html! {
        div.card {
            dl.facts id="event-facts" {
                dt { "Source" } dd { (item.source) }
                dt { "Event id" } dd.mono { (item.event_id) }
                dt { "Type" } dd { (item.event_type.as_deref().unwrap_or("—")) }
                dt { "First seen" } dd { (time_and_age(&item.first_seen_at)) }
                dt { "Last seen" } dd { (time_and_age(&item.last_seen_at)) }
                dt { "Deliveries" } dd id="deliveries" { (item.delivery_count) @if item.delivery_count > 1 { " (the first, then " (item.delivery_count - 1) " more answered as duplicate or conflict)" } }
                dt { "Conflicts" } dd { (item.conflict_count) }
                dt { "Fingerprint" } dd.mono { (detail.fingerprint) }
            }
        }
        h2 { "Payload" }
        @if json.payload.is_null() {
            div.card.empty { "The payload was pruned; the event, its fingerprint and its counts stay." }
        } @else {
            pre id="payload" { (pretty_json(&json.payload)) }
        }
        h2 { "Conversion" }
        @match conversion {
            None => p.muted { "This event made no conversion." },
            Some(c) => (conversion_facts(c)),
        }
        h2 { "Forwarding" }
        @if forwards {
            (retry_button(view, &item.source, &item.event_id))
        }
        @match &item.forward {
            None => p.muted { "Not forwarded (no forward_to for this source)." },
            Some(f) => div.card { dl.facts {
                dt { "State" } dd { (forward_badge(Some(f))) }
                dt { "Attempts" } dd { (f.attempts) }
                dt { "Last answer" } dd { (f.last_status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) " " (f.last_error.as_deref().unwrap_or("")) }
                dt { "Next attempt" } dd { @if let Some(t) = &f.next_attempt_at { (time_and_age(t)) } @else { "—" } }
                dt { "Delivered" } dd { @if let Some(t) = &f.delivered_at { (time_and_age(t)) } @else { "—" } }
            } }
        }
        @if let Some(history) = item.forward.as_ref().and_then(|f| f.history.as_ref()).filter(|h| !h.is_empty()) {
            h3 { "Attempts, newest first" }
            div.scroll { table id="forward-history" {
                thead { tr { th { "At" } th { "Status" } th.num { "Time (ms)" } th { "Error" } th { "Answer (first 1 KiB)" } } }
                tbody { @for a in history { tr {
                    td { (time_and_age(&a.at)) }
                    td { (a.status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                    td.num { (a.duration_ms) }
                    td { (a.error.as_deref().unwrap_or("")) }
                    td.mono { (a.response.as_deref().unwrap_or("")) }
                } } }
            } }
        }
        h2 { "Conflicting deliveries" }
        @if json.conflicts.is_empty() {
            p.muted { "None: every delivery of this id carried the same event." }
        } @else {
            p.muted { (item.conflict_count) " deliveries reused this id with a different payload; the first ones are kept below, the original above stands." }
            @for (n, c) in json.conflicts.iter().enumerate() {
                div.card {
                    p { "#" (n + 1) " received " (time_and_age(&c.received_at)) }
                    p.mono.muted { "fingerprint " (c.fingerprint) }
                    @if c.payload.is_null() { p.muted { "payload pruned" } } @else { pre { (pretty_json(&c.payload)) } }
                }
            }
        }
    };
    let title = format!("{} / {}", item.source, item.event_id);
    Ok(html_response(
        StatusCode::OK,
        layout(view, "/admin/events", &title, content),
    ))
}

fn conversion_facts(c: &ConversionItem) -> Markup {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    html! {
        div.card { dl.facts id="conversion" {
            dt { "Conversion" } dd { "#" (c.conversion_id) }
            dt { "Status" } dd { (opt(&c.status)) }
            dt { "Order" } dd.mono { (opt(&c.order_id)) }
            dt { "Sale" } dd { (c.sale_amount) " " (opt(&c.currency)) }
            dt { "Commission" } dd { (c.commission_amount) " " (opt(&c.currency)) }
            dt { "Affiliate" } dd { (opt(&c.affiliate_code)) " " (opt(&c.affiliate_id)) }
            dt { "Tracking id" } dd { (opt(&c.tracking_id)) }
            dt { "Created" } dd { (time_and_age(&c.created_at)) }
            dt { "Updated" } dd { (time_and_age(&c.updated_at)) }
        } }
    }
}
