//! The events page: the filter form, one page of events and the pager.

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::{events_table, filter_error, pager, select_field, text_fields};
use super::layout::{SignedIn, html_response, layout};
use crate::http::admin::listing::{Page, one_page};
use crate::http::admin::query;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::read::EventItem;

pub(super) async fn render(
    app: &App,
    view: &SignedIn<'_>,
    query_text: &str,
) -> Result<Response, ApiError> {
    let yes_no = [("", "any"), ("true", "yes"), ("false", "no")];
    let form = html! {
        form.filters.card method="get" action="/admin/events" id="event-filters" {
            // Same shape as the conversions form, other data: each lists its own filters.
            (text_fields(query_text, &[
                ("source", "Source", "shopify"),
                ("event_type", "Event type", "orders/create"),
                ("event_id", "Event id (exact)", ""),
                ("since", "First seen since (UTC)", "2026-11-30T00:00:00Z"),
                ("until", "First seen before (UTC)", ""),
            ]))
            (select_field(query_text, "duplicated", "Retried", &yes_no))
            (select_field(query_text, "conflicted", "Conflicts", &yes_no))
            (select_field(query_text, "forward", "Forwarding", &[("", "any"), ("pending", "pending"), ("delivered", "delivered"), ("failed", "failed")]))
            (select_field(query_text, "limit", "Per page", &[("50", "50"), ("10", "10"), ("100", "100"), ("500", "500")]))
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
