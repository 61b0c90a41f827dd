//! The forwarding page: failed forwards with a retry button each, and the pending ones.

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::{event_href, events_table, retry_button, time_and_age};
use super::layout::{SignedIn, html_response, layout};
use crate::http::admin::listing::one_page;
use crate::http::admin::query::PageQuery;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::read::{EventFilter, EventItem, ForwardStatus};

pub(super) async fn render(app: &App, view: &SignedIn<'_>) -> Result<Response, ApiError> {
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
    let content = html! {
        p.muted { "Events of sources with " code { "forward_to" } " are sent on to your application. To send every failed one again: " code { "hooklatch forward retry --failed" } "." }
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
