//! The conversions page: sums by status and currency, the filter form and one page of
//! conversions.

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::fragments::{event_href, filter_error, pager, text_fields, time_and_age};
use super::layout::{SignedIn, html_response, layout};
use crate::http::admin::listing::{Page, one_page};
use crate::http::admin::query;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::read::ConversionItem;

pub(super) async fn render(
    app: &App,
    view: &SignedIn<'_>,
    query_text: &str,
) -> Result<Response, ApiError> {
    let summary = app.store_call(|store| store.conversion_summary()).await?;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let summary_markup = html! {
        h2 { "Summary by status and currency" }
        @if summary.is_empty() {
            div.card.empty { "No conversions yet. Affiliate sales delivered to " code { "/webhooks/refersion" } " appear here." }
        } @else {
            div.scroll { table id="summary" {
                thead { tr { th { "Status" } th { "Currency" } th.num { "Count" } th.num { "Sales" } th.num { "Commission" } } }
                tbody { @for g in &summary { tr {
                    td { (dash(&g.status)) } td { (dash(&g.currency)) } td.num { (g.count) }
                    td.num { (g.sale_amount) } td.num { (g.commission_amount) }
                } } }
            } }
        }
    };
    let form = html! {
        h2 { "Conversions" }
        form.filters.card method="get" action="/admin/conversions" id="conversion-filters" {
            (text_fields(query_text, &[
                ("status", "Status", "APPROVED"),
                ("currency", "Currency", "USD"),
                ("order_id", "Order id", ""),
                ("since", "Created since (UTC)", "2026-11-01T00:00:00Z"),
                ("until", "Created before (UTC)", ""),
            ]))
            button type="submit" { "Filter" }
        }
    };
    let (status, list) = match query::conversions(query_text) {
        Err(e) => (StatusCode::BAD_REQUEST, filter_error(&e)),
        Ok(q) => {
            let Page { items, next_cursor } = one_page::<ConversionItem>(app, q).await?;
            (
                StatusCode::OK,
                html! {
                    @if items.is_empty() { div.card.empty { "No conversions match." } } @else {
                        div.scroll { table id="conversions" {
                            thead { tr { th { "Created" } th { "Status" } th { "Order" } th.num { "Sale" } th.num { "Commission" } th { "Currency" } th.wide { "Event" } } }
                            tbody { @for c in &items { tr {
                                td { (time_and_age(&c.created_at)) } td { (dash(&c.status)) } td.mono { (dash(&c.order_id)) }
                                td.num { (c.sale_amount) } td.num { (c.commission_amount) } td { (dash(&c.currency)) }
                                td.wide.mono { a href=(event_href(&c.source, &c.event_id)) { (c.event_id) } }
                            } } }
                        } }
                    }
                    (pager("/admin/conversions", query_text, next_cursor.as_deref()))
                },
            )
        }
    };
    Ok(html_response(
        status,
        layout(
            view,
            "/admin/conversions",
            "Conversions",
            html! { (summary_markup) (form) (list) },
        ),
    ))
}
