//! The rejections page: the last refused deliveries, kept in memory since start.

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::time_and_age;
use super::layout::{SignedIn, html_response, layout};
use crate::http::app::App;

pub(super) fn render(app: &App, view: &SignedIn<'_>) -> Response {
    let items = app.rejections.recent();
    let content = html! {
        p.muted { "The last 100 deliveries hooklatch refused since it started, newest first. Nothing of a refused delivery is stored; a wrong signing secret shows up here as invalid_signature." }
        @if items.is_empty() {
            div.card.empty id="no-rejections" { "No refused deliveries since start. " }
        } @else {
            div.scroll { table id="rejections" {
                thead { tr { th { "At" } th { "Source" } th.num { "Status" } th { "Error" } th { "Reason" } } }
                tbody { @for r in &items { tr {
                    td { (time_and_age(&r.at)) } td { (r.source) } td.num { (r.status) }
                    td { span.badge.bad { (r.error) } } td { (r.reason.as_deref().unwrap_or("—")) }
                } } }
            } }
        }
    };
    html_response(
        StatusCode::OK,
        layout(view, "/admin/rejections", "Rejections", content),
    )
}
