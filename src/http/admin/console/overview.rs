//! The overview page: per-source counts, the latest events and recent refusals, or, before
//! the first delivery, the URL to register with a provider.

use maud::html;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::Response;

use super::fragments::{age, events_table};
use super::layout::{SignedIn, html_response, layout};
use crate::http::admin::listing::one_page;
use crate::http::admin::query::PageQuery;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::read::{EventFilter, EventItem};

/// The host the person reached the console by, for the URL to register.
fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("YOUR-HOST")
        .to_owned()
}

pub(super) async fn render(
    app: &App,
    view: &SignedIn<'_>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let host = host(headers);
    let stats = app.store_call(|store| store.source_stats()).await?;
    let latest = one_page::<EventItem>(
        app,
        PageQuery {
            filter: EventFilter::default(),
            limit: 10,
            cursor: None,
        },
    )
    .await?
    .items;
    let refused = app.rejections.recent();
    let content = html! {
        @if stats.is_empty() {
            div.card.empty id="no-events" {
                p { strong { "No deliveries yet." } }
                p { "Register this URL with your provider (use its name as the source, e.g. shopify, stripe, refersion):" }
                p { code { "https://" (host) "/webhooks/<source>" } }
                p.muted { "Deliveries show up here as soon as they arrive; refused ones appear under Rejections." }
            }
        } @else {
            div.stats id="sources" {
                @for s in &stats {
                    div.card.stat {
                        div.muted { (s.source) }
                        div.n { (s.events) }
                        div { "events · " (s.deliveries) " deliveries" }
                        div.muted { (s.duplicates) " duplicates · " (s.conflicts) " conflicts" }
                        div.muted { "last " (age(&s.last_seen_at)) }
                    }
                }
            }
            h2 { "Latest events" }
            (events_table(&latest))
            p { a href="/admin/events" { "All events →" } }
        }
        @if !refused.is_empty() {
            h2 { "Recently refused" }
            p { (refused.len()) " refused deliveries since start; the newest was " (refused[0].error) " from " (refused[0].source) ". " a href="/admin/rejections" { "See why →" } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout(view, "/admin/", "Overview", content),
    ))
}
