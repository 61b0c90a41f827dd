//! The forwarding page: each source's state with its pause / resume button and a replay
//! form, failed forwards with a retry button each, and the pending ones.

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::{event_href, events_table, query_param, retry_button, time_and_age};
use super::layout::{SignedIn, html_response, layout};
use crate::http::admin::forwarding;
use crate::http::admin::listing::one_page;
use crate::http::admin::query::PageQuery;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::read::{EventFilter, EventItem, ForwardStatus};

pub(super) async fn render(
    app: &App,
    view: &SignedIn<'_>,
    query: &str,
) -> Result<Response, ApiError> {
    let replayed = query_param(query, "replayed").and_then(|n| n.parse::<u64>().ok());
    let list = |state| PageQuery {
        filter: EventFilter {
            forward: Some(state),
            ..EventFilter::default()
        },
        limit: 50,
        cursor: None,
    };
    let failed = one_page::<EventItem>(app, list(ForwardStatus::Failed))
        .await?
        .items;
    let pending = one_page::<EventItem>(app, list(ForwardStatus::Pending))
        .await?
        .items;
    let sources = forwarding::list(app).await?;
    let content = html! {
        p.muted { "Events of sources with " code { "forward_to" } " are sent on to your application. To send every failed one again: " code { "hooklatch forward retry --failed" } "." }
        @if let Some(n) = replayed { p.notice id="replayed" { (n) " events queued again." } }
        h2 { "Sources" }
        @if sources.is_empty() { p.muted { "No source forwards." } } @else {
            div.scroll { table id="forwarding-sources" {
                thead { tr { th { "Source" } th { "Destination" } th { "State" } th.num { "Failures in a row" } th.num { "Pending" } th.num { "Failed" } th {} } }
                tbody { @for s in &sources { tr {
                    td { (s.source) }
                    td.mono { (s.destination.as_deref().unwrap_or("—")) }
                    td { (s.state) @if let Some(at) = &s.paused_at { " " (time_and_age(at)) } }
                    td.num { (s.consecutive_failures) }
                    td.num { (s.pending) }
                    td.num { (s.failed) }
                    td {
                        @let action = if s.paused_at.is_some() { "resume" } else { "pause" };
                        form.inline method="post" action=(format!("/admin/forwarding/{}/{action}", s.source)) {
                            input type="hidden" name="csrf" value=(view.csrf);
                            button type="submit" class=(action) { @if action == "resume" { "Resume" } @else { "Pause" } }
                        }
                    }
                } } }
            } }
            h3 { "Replay" }
            p.muted { "Send every recorded event of a source first seen in a window again, delivered ones included, with the same webhook-id." }
            form id="replay" method="post" action="/admin/forwarding/replay" {
                input type="hidden" name="csrf" value=(view.csrf);
                label { "Source " select name="source" { @for s in &sources { option value=(s.source) { (s.source) } } } }
                label { " Since " input type="text" name="since" placeholder="2026-11-30T14:00:00Z" required; }
                label { " Until " input type="text" name="until" placeholder="(now)"; }
                " " button type="submit" { "Replay" }
            }
        }
        h2 { "Failed" }
        @if failed.is_empty() { p.muted { "No failed forwards." } } @else {
            div.scroll { table id="failed-forwards" {
                thead { tr { th { "First seen" } th { "Source" } th { "Event id" } th.num { "Attempts" } th { "Last answer" } th {} } }
                tbody { @for e in &failed { tr {
                    td { (time_and_age(&e.first_seen_at)) } td { (e.source) }
                    td.mono { a href=(event_href(&e.source, &e.event_id)) { (e.event_id) } }
                    @if let Some(f) = &e.forward {
                        td.num { (f.attempts) }
                        td { (f.last_status.map(|s| s.to_string()).unwrap_or_default()) " " (f.last_error.as_deref().unwrap_or("")) }
                    } @else { td {} td {} }
                    td { (retry_button(view, &e.source, &e.event_id)) }
                } } }
            } }
        }
        h2 { "Pending" }
        @if pending.is_empty() { p.muted { "Nothing waiting." } } @else { (events_table(&pending)) }
    };
    Ok(html_response(
        StatusCode::OK,
        layout(view, "/admin/forwarding", "Forwarding", content),
    ))
}
