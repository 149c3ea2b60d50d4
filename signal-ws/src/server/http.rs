//! The HTTP side: one TCP (or TLS) connection served by hyper; routes `/healthz`, `/metrics`
//! and `GET /v1/signal`, which checks the token and upgrades to WebSocket (and, when enabled,
//! the web page's files and `POST /dev/token`, in `web`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use callapi_core::protocol::DeviceId;

use super::connection::Session;
use super::ws::WsSocket;
use super::Shared;
use crate::auth::AuthError;
use crate::frames::WWW_AUTHENTICATE_EXPIRED;

/// The WebSocket endpoint.
pub const SIGNAL_PATH: &str = "/v1/signal";

type Body = Full<Bytes>;

/// A request that was answered with 101 and now waits for hyper to hand over the socket.
struct PendingUpgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    session: Session,
}

/// The WebSocket of an upgraded connection (whatever it runs over: hyper's `Upgraded` hides
/// whether it is TLS).
pub(crate) type Upgraded = WsSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// Serves HTTP on one accepted connection until it closes or is upgraded to a WebSocket, which
/// it returns with who the token says is on it. `permit` counts the connection as a pending
/// handshake until its first request has arrived.
pub(crate) async fn upgrade<I>(
    io: I,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) -> Option<(Upgraded, Session)>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let PendingUpgrade {
        on_upgrade,
        session,
    } = http_phase(io, shared.clone(), permit).await?;
    match on_upgrade.await {
        Ok(upgraded) => {
            let ws = WsSocket::new(
                TokioIo::new(upgraded),
                shared.config.limits.max_frame_bytes,
                shared.config.buffers.read_buffer_bytes,
            );
            Some((ws, session))
        }
        Err(err) => {
            tracing::debug!(%err, "upgrade failed");
            None
        }
    }
}

/// Serves HTTP requests until the connection closes or is upgraded; returns the upgrade.
async fn http_phase<I>(
    io: I,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) -> Option<PendingUpgrade>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let permit = Arc::new(Mutex::new(Some(permit)));
    let pending: Arc<Mutex<Option<PendingUpgrade>>> = Arc::new(Mutex::new(None));
    let svc = {
        let shared = shared.clone();
        let pending = pending.clone();
        service_fn(move |req: Request<Incoming>| {
            lock(&permit).take();
            let shared = shared.clone();
            let pending = pending.clone();
            async move {
                let resp = if super::web::wants_dev_token(&req, &shared.config.web) {
                    super::web::dev_token(
                        req,
                        &shared.authority,
                        &shared.config.web,
                        shared.config.timers.handshake_timeout,
                    )
                    .await
                } else {
                    route(req, &shared, &pending)
                };
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.timers.handshake_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%err, "HTTP connection ended with an error");
            }
        }
        () = super::wait_shutdown(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(shared.config.timers.close_timeout, conn.as_mut()).await;
        }
    }
    let upgrade = lock(&pending).take();
    upgrade
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"type": "error", "code": code, "message": message});
    response(status, "application/json", body.to_string())
}

fn route(
    req: Request<Incoming>,
    shared: &Shared,
    pending: &Mutex<Option<PendingUpgrade>>,
) -> Response<Body> {
    let path = req.uri().path();
    let get = req.method() == Method::GET;
    match path {
        "/healthz" if get => {
            if shared.is_shutting_down() {
                response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "shutting down\n",
                )
            } else {
                response(StatusCode::OK, "text/plain", "ok\n")
            }
        }
        "/metrics" if get => response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics_text(),
        ),
        SIGNAL_PATH if get => signal(req, shared, pending),
        "/healthz" | "/metrics" | SIGNAL_PATH => json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET",
        ),
        _ => super::web::asset(req.method(), path, &shared.config.web)
            .unwrap_or_else(|| json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")),
    }
}

fn unauthorized(shared: &Shared, err: &AuthError) -> Response<Body> {
    shared.metrics.auth_failure(err.label());
    match err {
        AuthError::Missing => refusal_401(
            "missing_token",
            "Bearer realm=\"callapi\"",
            &err.to_string(),
        ),
        AuthError::Expired => {
            refusal_401("token_expired", WWW_AUTHENTICATE_EXPIRED, &err.to_string())
        }
        other => bad_token(other.label(), &err.to_string()),
    }
}

/// A 401 `bad_token` answer whose `WWW-Authenticate` names `label` (`bad_signature`, ...).
fn bad_token(label: &str, message: &str) -> Response<Body> {
    let www = format!(
        "Bearer realm=\"callapi\", error=\"invalid_token\", error_description=\"{}\"",
        label.replace('_', " ")
    );
    refusal_401("bad_token", &www, message)
}

/// A 401 with body `code` and the `WWW-Authenticate` header `www`.
fn refusal_401(code: &str, www: &str, message: &str) -> Response<Body> {
    let mut resp = json_error(StatusCode::UNAUTHORIZED, code, message);
    if let Ok(v) = HeaderValue::from_str(www) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

fn header_has_token(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn signal(
    mut req: Request<Incoming>,
    shared: &Shared,
    pending: &Mutex<Option<PendingUpgrade>>,
) -> Response<Body> {
    if shared.is_shutting_down() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; connect again",
        );
    }
    let mut query_token = None;
    let mut query_device = None;
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "token" => query_token = Some(v.into_owned()),
                "device" => query_device = Some(v.into_owned()),
                _ => {}
            }
        }
    }
    let header_token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
    let Some(token) = header_token.or(query_token) else {
        return unauthorized(shared, &AuthError::Missing);
    };
    let verified = match shared.authority.verify(&token) {
        Ok(v) => v,
        Err(err) => return unauthorized(shared, &err),
    };
    let device =
        match (verified.device, query_device) {
            (Some(d), Some(q)) if d.as_str() != q => {
                shared.metrics.auth_failure("device_mismatch");
                return bad_token(
                    "device_mismatch",
                    &format!("this token is for device {:?}, not {q:?}", d.as_str()),
                );
            }
            (Some(d), _) => d,
            (None, Some(q)) => match DeviceId::new(q) {
                Ok(d) => d,
                Err(e) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        &format!("invalid device id: {e}"),
                    )
                }
            },
            (None, None) => return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "name the device in the `device` query parameter (or in the token's `dev` claim)",
            ),
        };
    // A WebSocket upgrade request (RFC 6455 §4.2.1)?
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let version_ok = req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !header_has_token(&req, UPGRADE, "websocket")
        || !header_has_token(&req, CONNECTION, "upgrade")
        || key.is_none()
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "this endpoint only takes WebSocket upgrade requests",
        );
    }
    if !version_ok {
        let mut resp = json_error(
            StatusCode::UPGRADE_REQUIRED,
            "bad_request",
            "only WebSocket version 13 is supported",
        );
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    }
    let accept = derive_accept_key(key.as_ref().map(HeaderValue::as_bytes).unwrap_or_default());
    let session = Session {
        user: verified.user,
        device,
        room: verified.room,
        exp: verified.exp,
    };
    *lock(pending) = Some(PendingUpgrade {
        on_upgrade: hyper::upgrade::on(&mut req),
        session,
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
