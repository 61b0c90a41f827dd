//! Pieces of markup more than one page uses: times, links to an event, badges, the
//! events table, form fields, the pager and the retry button.

use maud::{Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::layout::SignedIn;
use crate::read::{EventItem, ForwardInfo, InvalidFilter};

/// A button that queues one event's forward again (SPEC §6), CSRF-protected.
pub(super) fn retry_button(view: &SignedIn<'_>, source: &str, event_id: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("{}/forward", event_href(source, event_id))) {
            input type="hidden" name="csrf" value=(view.csrf);
            button type="submit" class="retry" { "Forward again" }
        }
    }
}

/// A stored time in UTC with how long ago it was.
pub(super) fn time_and_age(stamp: &str) -> Markup {
    html! {
        span.mono title=(stamp) { (stamp.get(..19).unwrap_or(stamp).replace('T', " ")) " UTC" }
        span.age { (age(stamp)) }
    }
}

/// How long ago `stamp` was, in the largest whole unit; empty when it is not a time.
pub(super) fn age(stamp: &str) -> String {
    let Ok(then) = OffsetDateTime::parse(stamp, &Rfc3339) else {
        return String::new();
    };
    let secs = (OffsetDateTime::now_utc() - then).whole_seconds();
    match secs {
        s if s < 0 => "in the future".into(),
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// The console path of one event, each part percent-encoded.
pub(super) fn event_href(source: &str, event_id: &str) -> String {
    format!(
        "/admin/events/{}/{}",
        utf8_percent_encode(source, NON_ALPHANUMERIC),
        utf8_percent_encode(event_id, NON_ALPHANUMERIC)
    )
}

pub(super) fn forward_badge(forward: Option<&ForwardInfo>) -> Markup {
    match forward {
        None => html! { span.muted { "—" } },
        Some(f) => {
            let class = match f.state.as_str() {
                "delivered" => "badge ok",
                "failed" => "badge bad",
                _ => "badge warn",
            };
            html! { span class=(class) { (f.state) } }
        }
    }
}

pub(super) fn events_table(events: &[EventItem]) -> Markup {
    html! {
        div.scroll {
            table id="events" {
                thead { tr {
                    th { "First seen" } th { "Source" } th { "Event id" } th.wide { "Type" }
                    th.num { "Deliveries" } th.num { "Conflicts" } th.wide { "Forward" }
                } }
                tbody {
                    @for e in events {
                        tr {
                            td { (time_and_age(&e.first_seen_at)) }
                            td { (e.source) }
                            td.mono { a href=(event_href(&e.source, &e.event_id)) { (e.event_id) } }
                            td.wide { (e.event_type.as_deref().unwrap_or("—")) }
                            td.num { (e.delivery_count) }
                            td.num { @if e.conflict_count > 0 { span.badge.bad { (e.conflict_count) } } @else { "0" } }
                            td.wide { (forward_badge(e.forward.as_ref())) }
                        }
                    }
                }
            }
        }
    }
}

/// A drop-down of `(value, text)` options, set to the value `query` holds for `name`.
pub(super) fn select_field(
    query: &str,
    name: &str,
    label: &str,
    options: &[(&str, &str)],
) -> Markup {
    let current = query_param(query, name);
    html! {
        label { (label)
            select name=(name) id=(name) {
                @for (value, text) in options {
                    option value=(value) selected[current.as_deref().unwrap_or("") == *value] { (text) }
                }
            }
        }
    }
}

fn text_field(name: &str, label: &str, value: Option<&str>, placeholder: &str) -> Markup {
    html! {
        label { (label) input type="text" name=(name) id=(name) value=[value] placeholder=(placeholder); }
    }
}

/// One text field per `(name, label, placeholder)`, each refilled from `query`.
pub(super) fn text_fields(query: &str, fields: &[(&str, &str, &str)]) -> Markup {
    html! {
        @for (name, label, placeholder) in fields {
            (text_field(name, label, query_param(query, name).as_deref(), placeholder))
        }
    }
}

/// The raw value of one query parameter, to refill a form as it was sent.
pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// The same query with `cursor` replaced (or removed when `None`).
fn with_cursor(query: &str, cursor: Option<&str>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "cursor" && !v.is_empty() {
            out.append_pair(&k, &v);
        }
    }
    if let Some(cursor) = cursor {
        out.append_pair("cursor", cursor);
    }
    out.finish()
}

/// Links to the first page (when not on it) and to the next (when there is one),
/// keeping the filters of `query`.
pub(super) fn pager(base: &str, query: &str, next: Option<&str>) -> Markup {
    html! {
        div.pager {
            @if query_param(query, "cursor").is_some() {
                a href=(format!("{base}?{}", with_cursor(query, None))) id="first-page" { "← First page" }
            }
            @if let Some(next) = next {
                a href=(format!("{base}?{}", with_cursor(query, Some(next)))) id="next-page" { "Next page →" }
            }
        }
    }
}

pub(super) fn filter_error(error: &InvalidFilter) -> Markup {
    html! { p.error id="filter-error" { "Filter " code { (error.parameter) } ": " (error.message) } }
}
