//! The console: server-rendered pages for a person (maud), with the stylesheet compiled
//! into the binary, so it works on a server without outside network and loads nothing
//! from anywhere else (the Content-Security-Policy says so to the browser too).
//!
//! Sign-in: a form takes the admin token once (never in a URL) and opens a session; the
//! cookie is `HttpOnly`, `SameSite=Strict` and expires. Every POST must come from the
//! console itself: `Origin` (when sent) must be this host, `Sec-Fetch-Site` must not be
//! cross-site, and forms of a signed-in person carry the session's CSRF token.

use bytes::Bytes;
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::api::{list_conversions, list_events};
use super::auth::{Admin, SESSION_TTL, Session, same_secret};
use super::decode_segment;
use super::detail::{self, EventDetail};
use super::query::{self, PageQuery};
use crate::http::App;
use crate::http::error::ApiError;
use crate::read::{
    ConversionItem, EventFilter, EventItem, ForwardInfo, ForwardStatus, InvalidFilter,
};

const COOKIE: &str = "hooklatch_session";
const CSS: &str = include_str!("../../../assets/console.css");

/// Largest form body the console reads.
pub const MAX_FORM_BYTES: u64 = 16 * 1024;

/// What a console request needs besides the app.
pub struct Request<'a> {
    pub method: &'a Method,
    /// After `/admin/`, still percent-encoded.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

pub async fn handle(app: &App, admin: &Admin, req: Request<'_>) -> Result<Response, ApiError> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let session_id = cookie(req.headers, COOKIE);
    let session = session_id.as_deref().and_then(|id| admin.session(id));
    match (req.method, segments.as_slice()) {
        (&Method::GET, ["assets", "console.css"]) => Ok(css()),
        (&Method::GET, ["login"]) => Ok(match session {
            Some(_) => redirect("/admin/"),
            None => page(StatusCode::OK, login_page(None)),
        }),
        (&Method::POST, ["login"]) => {
            same_origin(req.headers)?;
            login(admin, &req.body, behind_tls(req.headers))
        }
        (&Method::POST, ["logout"]) => {
            same_origin(req.headers)?;
            let (Some(id), Some(session)) = (session_id, session) else {
                return Ok(redirect("/admin/login"));
            };
            check_csrf(&session, &req.body)?;
            admin.close_session(&id);
            let mut response = redirect("/admin/login");
            set_cookie(
                &mut response,
                &format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"),
            );
            Ok(response)
        }
        (&Method::POST, ["events", source, event_id, "forward"]) => {
            same_origin(req.headers)?;
            let Some(session) = session else {
                return Ok(redirect("/admin/login"));
            };
            check_csrf(&session, &req.body)?;
            crate::http::forward::queue(app, source, event_id).await?;
            let (source, event_id) = (decode_segment(source)?, decode_segment(event_id)?);
            Ok(redirect_to(&event_href(&source, &event_id)))
        }
        (&Method::GET, _) => {
            let Some(session) = session else {
                return Ok(redirect("/admin/login"));
            };
            let host = host(req.headers);
            let view = View {
                csrf: &session.csrf,
            };
            match segments.as_slice() {
                [] => overview(app, &view, &host).await,
                ["events"] => events(app, &view, req.query).await,
                ["events", source, event_id] => {
                    let (source, event_id) = (decode_segment(source)?, decode_segment(event_id)?);
                    event(app, &view, &source, &event_id).await
                }
                ["conversions"] => conversions(app, &view, req.query).await,
                ["rejections"] => Ok(rejections(app, &view)),
                ["forwarding"] => forwarding(app, &view).await,
                _ => Err(ApiError::NotFound),
            }
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// What every signed-in page needs to render its frame.
struct View<'a> {
    csrf: &'a str,
}

/// A TLS proxy in front says so; then the cookie is never sent over plain HTTP.
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn login(admin: &Admin, body: &[u8], secure: bool) -> Result<Response, ApiError> {
    let token = form_field(body, "token").unwrap_or_default();
    if !admin.accepts(&token) {
        return Ok(page(
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not the admin token.")),
        ));
    }
    let Some((id, _)) = admin.open_session() else {
        return Err(ApiError::Store(crate::store::StoreError::Internal(
            "no randomness for a session id".into(),
        )));
    };
    let mut response = redirect("/admin/");
    set_cookie(
        &mut response,
        &format!(
            "{COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
            SESSION_TTL.as_secs(),
            if secure { "; Secure" } else { "" }
        ),
    );
    Ok(response)
}

/// Refuses a POST another site made the browser send.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|site| site == "cross-site" || site == "same-site") {
        return Err(ApiError::Forbidden);
    }
    if let Some(origin) = text("origin") {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        // Behind a proxy that rewrites Host, the original arrives as X-Forwarded-Host.
        let host = text("x-forwarded-host").or(text("host"));
        if authority.is_none() || authority != host {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(())
}

fn check_csrf(session: &Session, body: &[u8]) -> Result<(), ApiError> {
    match form_field(body, "csrf") {
        Some(token) if same_secret(&token, &session.csrf) => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("YOUR-HOST")
        .to_owned()
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn redirect(to: &'static str) -> Response {
    redirect_to(to)
}

/// 303 to a console path (percent-encoded, so always a valid header value).
fn redirect_to(to: &str) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let location = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/admin/"));
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// A button that queues one event's forward again (SPEC §6), CSRF-protected.
fn retry_button(view: &View<'_>, source: &str, event_id: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("{}/forward", event_href(source, event_id))) {
            input type="hidden" name="csrf" value=(view.csrf);
            button type="submit" class="retry" { "Forward again" }
        }
    }
}

fn css() -> Response {
    let mut response = Response::new(CSS.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    response
}

/// An HTML page with headers that keep it to itself: nothing loads from elsewhere, no
/// framing, no referrer to other sites, no caching of what a signed-in person saw.
/// (`same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null`
/// on form posts, and the same-origin check below could not tell them apart.)
pub fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(markup.into_string().into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An error as a console page (a person reads it, not a script).
pub fn error_page(error: &ApiError) -> Response {
    let message = match error {
        ApiError::NotFound => "Nothing here. The event or page does not exist.".to_owned(),
        ApiError::Forbidden => {
            "This form did not come from the console. Reload the page and try again.".to_owned()
        }
        ApiError::Store(_) => {
            "The event store is unavailable right now. Try again shortly.".to_owned()
        }
        other => other.to_string(),
    };
    page(
        error.status(),
        html! {
            (DOCTYPE)
            html lang="en" {
                (head("hooklatch"))
                body { main { div.card { h1 { (error.status().as_u16()) } p { (message) } a href="/admin/" { "Back to the console" } } } }
            }
        },
    )
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · hooklatch" }
            link rel="stylesheet" href="/admin/assets/console.css";
        }
    }
}

fn login_page(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.login {
                    div.card {
                        h1 { "hooklatch console" }
                        p.muted { "Enter the admin token (" code { "admin_token" } " or " code { "HOOKLATCH_ADMIN_TOKEN" } ")." }
                        @if let Some(error) = error { p.error id="login-error" { (error) } }
                        form method="post" action="/admin/login" {
                            label { "Admin token" input type="password" name="token" id="token" autocomplete="current-password" required autofocus; }
                            button type="submit" id="sign-in" { "Sign in" }
                        }
                    }
                }
            }
        }
    }
}

const NAV: [(&str, &str); 5] = [
    ("/admin/", "Overview"),
    ("/admin/events", "Events"),
    ("/admin/conversions", "Conversions"),
    ("/admin/rejections", "Rejections"),
    ("/admin/forwarding", "Forwarding"),
];

fn layout(view: &View<'_>, active: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    a.brand href="/admin/" { "hooklatch" }
                    @for (href, label) in NAV {
                        a href=(href) class=[(href == active).then_some("on")] { (label) }
                    }
                    form method="post" action="/admin/logout" {
                        input type="hidden" name="csrf" value=(view.csrf);
                        button.plain type="submit" id="sign-out" { "Sign out" }
                    }
                }
                main { h1 { (title) } (content) }
            }
        }
    }
}

/// A stored time in UTC with how long ago it was.
fn when(stamp: &str) -> Markup {
    html! {
        span.mono title=(stamp) { (stamp.get(..19).unwrap_or(stamp).replace('T', " ")) " UTC" }
        span.age { (age(stamp)) }
    }
}

fn age(stamp: &str) -> String {
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

fn event_href(source: &str, event_id: &str) -> String {
    format!(
        "/admin/events/{}/{}",
        utf8_percent_encode(source, NON_ALPHANUMERIC),
        utf8_percent_encode(event_id, NON_ALPHANUMERIC)
    )
}

fn forward_badge(forward: Option<&ForwardInfo>) -> Markup {
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

fn events_table(events: &[EventItem]) -> Markup {
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
                            td { (when(&e.first_seen_at)) }
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

async fn overview(app: &App, view: &View<'_>, host: &str) -> Result<Response, ApiError> {
    let stats = app.store_call(|store| store.source_stats()).await?;
    let (latest, _) = list_events(
        app,
        PageQuery {
            filter: EventFilter::default(),
            limit: 10,
            cursor: None,
        },
    )
    .await?;
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
    Ok(page(
        StatusCode::OK,
        layout(view, "/admin/", "Overview", content),
    ))
}

fn select(name: &str, label: &str, current: Option<&str>, options: &[(&str, &str)]) -> Markup {
    html! {
        label { (label)
            select name=(name) id=(name) {
                @for (value, text) in options {
                    option value=(value) selected[current.unwrap_or("") == *value] { (text) }
                }
            }
        }
    }
}

fn text_input(name: &str, label: &str, value: Option<&str>, placeholder: &str) -> Markup {
    html! {
        label { (label) input type="text" name=(name) id=(name) value=[value] placeholder=(placeholder); }
    }
}

/// The raw value of one query parameter, to refill a form as it was sent.
fn param(query: &str, name: &str) -> Option<String> {
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

fn pager(base: &str, query: &str, next: Option<&str>) -> Markup {
    html! {
        div.pager {
            @if param(query, "cursor").is_some() {
                a href=(format!("{base}?{}", with_cursor(query, None))) id="first-page" { "← First page" }
            }
            @if let Some(next) = next {
                a href=(format!("{base}?{}", with_cursor(query, Some(next)))) id="next-page" { "Next page →" }
            }
        }
    }
}

fn filter_error(error: &InvalidFilter) -> Markup {
    html! { p.error id="filter-error" { "Filter " code { (error.parameter) } ": " (error.message) } }
}

async fn events(app: &App, view: &View<'_>, query_text: &str) -> Result<Response, ApiError> {
    let p = |name| param(query_text, name);
    let yes_no = [("", "any"), ("true", "yes"), ("false", "no")];
    let form = html! {
        form.filters.card method="get" action="/admin/events" id="event-filters" {
            (text_input("source", "Source", p("source").as_deref(), "shopify"))
            (text_input("event_type", "Event type", p("event_type").as_deref(), "orders/create"))
            (text_input("event_id", "Event id (exact)", p("event_id").as_deref(), ""))
            (text_input("since", "First seen since (UTC)", p("since").as_deref(), "2026-11-30T00:00:00Z"))
            (text_input("until", "First seen before (UTC)", p("until").as_deref(), ""))
            (select("duplicated", "Retried", p("duplicated").as_deref(), &yes_no))
            (select("conflicted", "Conflicts", p("conflicted").as_deref(), &yes_no))
            (select("forward", "Forwarding", p("forward").as_deref(), &[("", "any"), ("pending", "pending"), ("delivered", "delivered"), ("failed", "failed")]))
            (select("limit", "Per page", p("limit").as_deref(), &[("50", "50"), ("10", "10"), ("100", "100"), ("500", "500")]))
            button type="submit" id="apply-filters" { "Filter" }
        }
    };
    let (status, body) = match query::events(query_text) {
        Err(e) => (StatusCode::BAD_REQUEST, filter_error(&e)),
        Ok(q) => {
            let (items, next) = list_events(app, q).await?;
            let body = html! {
                @if items.is_empty() {
                    div.card.empty id="no-match" { "No events match these filters. " a href="/admin/events" { "Clear the filters" } }
                } @else {
                    (events_table(&items))
                }
                (pager("/admin/events", query_text, next.as_deref()))
            };
            (StatusCode::OK, body)
        }
    };
    Ok(page(
        status,
        layout(view, "/admin/events", "Events", html! { (form) (body) }),
    ))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

async fn event(
    app: &App,
    view: &View<'_>,
    source: &str,
    event_id: &str,
) -> Result<Response, ApiError> {
    let Some(detail) = detail::load(app, source, event_id).await? else {
        return Err(ApiError::NotFound);
    };
    let EventDetail {
        item, conversion, ..
    } = &detail;
    let forwards = crate::model::Source::parse(&item.source)
        .is_some_and(|source| app.sources.forward_to(&source).is_some());
    let json = detail.json();
    let content = html! {
        div.card {
            dl.facts id="event-facts" {
                dt { "Source" } dd { (item.source) }
                dt { "Event id" } dd.mono { (item.event_id) }
                dt { "Type" } dd { (item.event_type.as_deref().unwrap_or("—")) }
                dt { "First seen" } dd { (when(&item.first_seen_at)) }
                dt { "Last seen" } dd { (when(&item.last_seen_at)) }
                dt { "Deliveries" } dd id="deliveries" { (item.delivery_count) @if item.delivery_count > 1 { " (the first, then " (item.delivery_count - 1) " more answered as duplicate or conflict)" } }
                dt { "Conflicts" } dd { (item.conflict_count) }
                dt { "Fingerprint" } dd.mono { (detail.fingerprint) }
            }
        }
        h2 { "Payload" }
        @if json.payload.is_null() {
            div.card.empty { "The payload was pruned; the event, its fingerprint and its counts stay." }
        } @else {
            pre id="payload" { (pretty(&json.payload)) }
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
                dt { "Next attempt" } dd { @if let Some(t) = &f.next_attempt_at { (when(t)) } @else { "—" } }
                dt { "Delivered" } dd { @if let Some(t) = &f.delivered_at { (when(t)) } @else { "—" } }
            } }
        }
        h2 { "Conflicting deliveries" }
        @if json.conflicts.is_empty() {
            p.muted { "None: every delivery of this id carried the same event." }
        } @else {
            p.muted { (item.conflict_count) " deliveries reused this id with a different payload; the first ones are kept below, the original above stands." }
            @for (n, c) in json.conflicts.iter().enumerate() {
                div.card {
                    p { "#" (n + 1) " received " (when(&c.received_at)) }
                    p.mono.muted { "fingerprint " (c.fingerprint) }
                    @if c.payload.is_null() { p.muted { "payload pruned" } } @else { pre { (pretty(&c.payload)) } }
                }
            }
        }
    };
    let title = format!("{} / {}", item.source, item.event_id);
    Ok(page(
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
            dt { "Created" } dd { (when(&c.created_at)) }
            dt { "Updated" } dd { (when(&c.updated_at)) }
        } }
    }
}

async fn conversions(app: &App, view: &View<'_>, query_text: &str) -> Result<Response, ApiError> {
    let summary = app.store_call(|store| store.conversion_summary()).await?;
    let p = |name| param(query_text, name);
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
            (text_input("status", "Status", p("status").as_deref(), "APPROVED"))
            (text_input("currency", "Currency", p("currency").as_deref(), "USD"))
            (text_input("order_id", "Order id", p("order_id").as_deref(), ""))
            (text_input("since", "Created since (UTC)", p("since").as_deref(), "2026-11-01T00:00:00Z"))
            (text_input("until", "Created before (UTC)", p("until").as_deref(), ""))
            button type="submit" { "Filter" }
        }
    };
    let (status, list) = match query::conversions(query_text) {
        Err(e) => (StatusCode::BAD_REQUEST, filter_error(&e)),
        Ok(q) => {
            let (items, next) = list_conversions(app, q).await?;
            (
                StatusCode::OK,
                html! {
                    @if items.is_empty() { div.card.empty { "No conversions match." } } @else {
                        div.scroll { table id="conversions" {
                            thead { tr { th { "Created" } th { "Status" } th { "Order" } th.num { "Sale" } th.num { "Commission" } th { "Currency" } th.wide { "Event" } } }
                            tbody { @for c in &items { tr {
                                td { (when(&c.created_at)) } td { (dash(&c.status)) } td.mono { (dash(&c.order_id)) }
                                td.num { (c.sale_amount) } td.num { (c.commission_amount) } td { (dash(&c.currency)) }
                                td.wide.mono { a href=(event_href(&c.source, &c.event_id)) { (c.event_id) } }
                            } } }
                        } }
                    }
                    (pager("/admin/conversions", query_text, next.as_deref()))
                },
            )
        }
    };
    Ok(page(
        status,
        layout(
            view,
            "/admin/conversions",
            "Conversions",
            html! { (summary_markup) (form) (list) },
        ),
    ))
}

fn rejections(app: &App, view: &View<'_>) -> Response {
    let items = app.rejections.recent();
    let content = html! {
        p.muted { "The last 100 deliveries hooklatch refused since it started, newest first. Nothing of a refused delivery is stored; a wrong signing secret shows up here as invalid_signature." }
        @if items.is_empty() {
            div.card.empty id="no-rejections" { "No refused deliveries since start. " }
        } @else {
            div.scroll { table id="rejections" {
                thead { tr { th { "At" } th { "Source" } th.num { "Status" } th { "Error" } th { "Reason" } } }
                tbody { @for r in &items { tr {
                    td { (when(&r.at)) } td { (r.source) } td.num { (r.status) }
                    td { span.badge.bad { (r.error) } } td { (r.reason.as_deref().unwrap_or("—")) }
                } } }
            } }
        }
    };
    page(
        StatusCode::OK,
        layout(view, "/admin/rejections", "Rejections", content),
    )
}

async fn forwarding(app: &App, view: &View<'_>) -> Result<Response, ApiError> {
    let list = |state| PageQuery {
        filter: EventFilter {
            forward: Some(state),
            ..EventFilter::default()
        },
        limit: 50,
        cursor: None,
    };
    let (failed, _) = list_events(app, list(ForwardStatus::Failed)).await?;
    let (pending, _) = list_events(app, list(ForwardStatus::Pending)).await?;
    let content = html! {
        p.muted { "Events of sources with " code { "forward_to" } " are sent on to your application. To send every failed one again: " code { "hooklatch forward retry --failed" } "." }
        h2 { "Failed" }
        @if failed.is_empty() { p.muted { "No failed forwards." } } @else {
            div.scroll { table id="failed-forwards" {
                thead { tr { th { "First seen" } th { "Source" } th { "Event id" } th.num { "Attempts" } th { "Last answer" } th {} } }
                tbody { @for e in &failed { tr {
                    td { (when(&e.first_seen_at)) } td { (e.source) }
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
    Ok(page(
        StatusCode::OK,
        layout(view, "/admin/forwarding", "Forwarding", content),
    ))
}
