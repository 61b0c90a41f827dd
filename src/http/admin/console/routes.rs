//! Which handler answers a console request: the sign-in pages and the stylesheet for
//! anyone, every other page only for a signed-in person, every POST only from the
//! console itself.

use bytes::Bytes;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::fragments::event_href;
use super::layout::{SignedIn, html_response, redirect, redirect_to, stylesheet};
use super::session::{check_csrf, same_origin};
use super::{conversions, event_detail, events, forwarding, login, overview, rejections, session};
use crate::http::admin::auth::Admin;
use crate::http::admin::forwarding as forwarding_api;
use crate::http::admin::query::decode_segment;
use crate::http::admin::requeue;
use crate::http::app::App;
use crate::http::error::ApiError;

/// Largest form body the console reads.
pub const MAX_FORM_BYTES: u64 = 16 * 1024;

/// What a console request needs besides the app.
pub struct Request<'a> {
    /// The client's address, for the sign-in limit.
    pub client: std::net::IpAddr,
    pub method: &'a Method,
    /// After `/admin/`, still percent-encoded.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

pub async fn dispatch(app: &App, admin: &Admin, req: Request<'_>) -> Result<Response, ApiError> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let session_id = session::cookie_id(req.headers);
    let session = session_id.as_deref().and_then(|id| admin.session(id));
    match (req.method, segments.as_slice()) {
        (&Method::GET, ["assets", "console.css"]) => Ok(stylesheet()),
        (&Method::GET, ["login"]) => Ok(match session {
            Some(_) => redirect("/admin/"),
            None => html_response(StatusCode::OK, login::render(None)),
        }),
        (&Method::POST, ["login"]) => {
            same_origin(req.headers)?;
            session::sign_in(
                admin,
                req.client,
                &req.body,
                app.https || session::behind_tls(req.headers),
            )
        }
        (&Method::POST, ["logout"]) => {
            same_origin(req.headers)?;
            let (Some(id), Some(session)) = (session_id, session) else {
                return Ok(redirect("/admin/login"));
            };
            session::sign_out(admin, &id, &session, &req.body)
        }
        (&Method::POST, ["events", source, event_id, "forward"]) => {
            same_origin(req.headers)?;
            let Some(session) = session else {
                return Ok(redirect("/admin/login"));
            };
            check_csrf(&session, &req.body)?;
            requeue::requeue(app, source, event_id).await?;
            let (source, event_id) = (decode_segment(source)?, decode_segment(event_id)?);
            Ok(redirect_to(&event_href(&source, &event_id)))
        }
        (&Method::POST, ["forwarding", rest @ ..]) => {
            same_origin(req.headers)?;
            let Some(session) = session else {
                return Ok(redirect("/admin/login"));
            };
            check_csrf(&session, &req.body)?;
            match rest {
                [source, action @ ("pause" | "resume")] => {
                    let source = forwarding_api::source_in_path(source)?;
                    forwarding_api::set_paused(app, &source, *action == "pause").await?;
                    Ok(redirect("/admin/forwarding"))
                }
                ["replay"] => {
                    let field = |name| session::form_field(&req.body, name);
                    let source = field("source").unwrap_or_default();
                    let source = forwarding_api::source_in_path(&source)?;
                    let (since, until) = forwarding_api::replay_window(
                        field("since").as_deref(),
                        field("until").as_deref(),
                    )?;
                    let queued = forwarding_api::replay(app, &source, since, until).await?;
                    Ok(redirect_to(&format!("/admin/forwarding?replayed={queued}")))
                }
                _ => Err(ApiError::NotFound),
            }
        }
        (&Method::GET, _) => {
            let Some(session) = session else {
                return Ok(redirect("/admin/login"));
            };
            let view = SignedIn {
                csrf: &session.csrf,
            };
            match segments.as_slice() {
                [] => overview::render(app, &view, req.headers).await,
                ["events"] => events::render(app, &view, req.query).await,
                ["events", source, event_id] => {
                    let (source, event_id) = (decode_segment(source)?, decode_segment(event_id)?);
                    event_detail::render(app, &view, &source, &event_id).await
                }
                ["conversions"] => conversions::render(app, &view, req.query).await,
                ["rejections"] => Ok(rejections::render(app, &view)),
                ["forwarding"] => forwarding::render(app, &view, req.query).await,
                _ => Err(ApiError::NotFound),
            }
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}
