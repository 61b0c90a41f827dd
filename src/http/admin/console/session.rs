//! Signing in and out of the console, and the guards on every POST: the session cookie
//! (`HttpOnly`, `SameSite=Strict`, expiring, `Secure` behind TLS), the same-origin check
//! and the session's CSRF token.

use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::layout::{html_response, redirect};
use super::login;
use crate::http::admin::auth::{Admin, SESSION_TTL, Session, same_secret};
use crate::http::admin::check_token;
use crate::http::error::ApiError;

const COOKIE: &str = "hooklatch_session";

/// A TLS proxy in front says so; then the cookie is never sent over plain HTTP.
pub(super) fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The session value the browser's cookie holds, if it sent one.
pub(super) fn cookie_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// Opens a session for the right token; `secure` marks the cookie HTTPS-only.
pub(super) fn sign_in(
    admin: &Admin,
    client: std::net::IpAddr,
    body: &[u8],
    secure: bool,
) -> Result<Response, ApiError> {
    let token = form_field(body, "token").unwrap_or_default();
    match check_token(admin, client, Some(&token), "console") {
        Ok(()) => {}
        Err(ApiError::Unauthorized) => {
            return Ok(html_response(
                StatusCode::UNAUTHORIZED,
                login::render(Some("That is not the admin token.")),
            ));
        }
        Err(refused) => return Err(refused),
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

/// Closes the session `id` (its form proved the CSRF token) and clears the cookie.
pub(super) fn sign_out(
    admin: &Admin,
    id: &str,
    session: &Session,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_csrf(session, body)?;
    admin.close_session(id);
    let mut response = redirect("/admin/login");
    set_cookie(
        &mut response,
        &format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// Refuses a POST another site made the browser send.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
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

pub(super) fn check_csrf(session: &Session, body: &[u8]) -> Result<(), ApiError> {
    match form_field(body, "csrf") {
        Some(token) if same_secret(&token, &session.csrf) => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

pub(super) fn form_field(body: &[u8], name: &str) -> Option<String> {
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

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
