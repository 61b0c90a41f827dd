//! The events page: the filter form, one page of events and the pager.

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::{events_table, filter_error, pager, query_param, select_field, text_field};
use super::layout::{SignedIn, html_response, layout};
use crate::http::App;
use crate::http::admin::listing::{Page, one_page};
use crate::http::admin::query;
use crate::http::error::ApiError;
use crate::read::EventItem;

pub(super) async fn render(
    app: &App,
    view: &SignedIn<'_>,
    query_text: &str,
) -> Result<Response, ApiError> {
    let p = |name| query_param(query_text, name);
    let yes_no = [("", "any"), ("true", "yes"), ("false", "no")];
    let form = html! {
        form.filters.card method="get" action="/admin/events" id="event-filters" {
            (text_field("source", "Source", p("source").as_deref(), "shopify"))
            (text_field("event_type", "Event type", p("event_type").as_deref(), "orders/create"))
            (text_field("event_id", "Event id (exact)", p("event_id").as_deref(), ""))
            (text_field("since", "First seen since (UTC)", p("since").as_deref(), "2026-11-30T00:00:00Z"))
            (text_field("until", "First seen before (UTC)", p("until").as_deref(), ""))
            (select_field("duplicated", "Retried", p("duplicated").as_deref(), &yes_no))
            (select_field("conflicted", "Conflicts", p("conflicted").as_deref(), &yes_no))
            (select_field("forward", "Forwarding", p("forward").as_deref(), &[("", "any"), ("pending", "pending"), ("delivered", "delivered"), ("failed", "failed")]))
            (select_field("limit", "Per page", p("limit").as_deref(), &[("50", "50"), ("10", "10"), ("100", "100"), ("500", "500")]))
            button type="submit" id="apply-filters" { "Filter" }
        }
    };
    let (status, body) = match query::events(query_text) {
        Err(e) => (StatusCode::BAD_REQUEST, filter_error(&e)),
        Ok(q) => {
            let Page { items, next_cursor } = one_page::<EventItem>(app, q).await?;
            let body = html! {
                @if items.is_empty() {
                    div.card.empty id="no-match" { "No events match these filters. " a href="/admin/events" { "Clear the filters" } }
                } @else {
                    (events_table(&items))
                }
                (pager("/admin/events", query_text, next_cursor.as_deref()))
            };
            (StatusCode::OK, body)
        }
    };
    Ok(html_response(
        status,
        layout(view, "/admin/events", "Events", html! { (form) (body) }),
    ))
}
