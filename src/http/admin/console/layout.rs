//! What frames every console answer: the HTML page and its headers, the signed-in
//! layout with its navigation, the stylesheet, redirects and the error page.

use maud::{DOCTYPE, Markup, html};
use warp::http::{HeaderName, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::http::error::ApiError;

const CSS: &str = include_str!("../../../../assets/console.css");

/// What every signed-in page needs to render its frame: the session's CSRF token, for
/// the sign-out form and every other form.
pub(super) struct SignedIn<'a> {
    pub(super) csrf: &'a str,
}

pub(super) fn redirect(to: &'static str) -> Response {
    redirect_to(to)
}

/// 303 to a console path (percent-encoded, so always a valid header value).
pub(super) fn redirect_to(to: &str) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let location = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/admin/"));
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// The stylesheet, compiled in; a browser may keep it for an hour.
pub(super) fn stylesheet() -> Response {
    with_headers(
        Response::new(CSS.into()),
        &[
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
    )
}

/// An HTML page with headers that keep it to itself: nothing loads from elsewhere, no
/// framing, no referrer to other sites, no caching of what a signed-in person saw.
/// (`same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null`
/// on form posts, and the same-origin check could not tell them apart.)
pub(super) fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(markup.into_string().into());
    *response.status_mut() = status;
    with_headers(
        response,
        &[
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
    )
}

fn with_headers(mut response: Response, headers: &[(HeaderName, &'static str)]) -> Response {
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
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
    let mut response = html_response(
        error.status(),
        html! {
            (DOCTYPE)
            html lang="en" {
                (head("hooklatch"))
                body { main { div.card { h1 { (error.status().as_u16()) } p { (message) } a href="/admin/" { "Back to the console" } } } }
            }
        },
    );
    if let Some(secs) = error.retry_after() {
        response.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from(secs),
        );
    }
    response
}

pub(super) fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · hooklatch" }
            link rel="stylesheet" href="/admin/assets/console.css";
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

pub(super) fn layout(view: &SignedIn<'_>, active: &str, title: &str, content: Markup) -> Markup {
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
