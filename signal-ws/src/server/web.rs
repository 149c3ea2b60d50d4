//! The web softphone page (`--web`): static files embedded in the binary, served at `/`; and the
//! development token endpoint (`--dev-tokens`): `POST /dev/token`.
//!
//! The files are `signal-ws/web/dist/`, built from `signal-ws/web/src` by `npm run build` and
//! committed, so building the server needs no node.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use callapi_core::protocol::{DeviceId, UserId};

use super::config::WebPage;
use crate::auth::{AuthError, Claims, TokenAuthority};

/// The development token endpoint (answers 404 unless `WebPage::dev_tokens` is set).
pub const DEV_TOKEN_PATH: &str = "/dev/token";

/// Largest `POST /dev/token` body accepted.
const MAX_TOKEN_REQUEST_BYTES: usize = 4096;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    path: "/index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../web/dist/index.html"),
};

const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        path: "/softphone.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/dist/softphone.js"),
    },
    Asset {
        path: "/softphone.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/dist/softphone.css"),
    },
];

type Body = Full<Bytes>;

/// Whether the request is for the dev token endpoint and it is on (it then needs its body read,
/// by [`dev_token`]).
pub(crate) fn wants_dev_token(req: &Request<Incoming>, web: &WebPage) -> bool {
    web.enabled && web.dev_tokens && req.uri().path() == DEV_TOKEN_PATH
}

/// The page's files: `Some` answer for `GET`/`HEAD` of one of them (`/` is `index.html`) when the
/// page is on, `None` for anything else (the caller answers it, usually 404).
pub(crate) fn asset(method: &Method, path: &str, web: &WebPage) -> Option<Response<Body>> {
    if !web.enabled || (method != Method::GET && method != Method::HEAD) {
        return None;
    }
    let asset = if path == "/" {
        &INDEX
    } else {
        ASSETS.iter().find(|a| a.path == path)?
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(asset.body)
    };
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}

/// The body of `POST /dev/token`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user: String,
    device: String,
}

/// Answers `POST /dev/token`: `{"user", "device"}` → a token for that user, limited to that
/// device, valid `web.dev_token_ttl`. Bad input gets a 400 that says what is wrong.
pub(crate) async fn dev_token(
    req: Request<Incoming>,
    authority: &TokenAuthority,
    web: &WebPage,
    read_timeout: Duration,
) -> Response<Body> {
    if req.method() != Method::POST {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST with a JSON body {\"user\": \"...\", \"device\": \"...\"}",
        );
    }
    let body = Limited::new(req.into_body(), MAX_TOKEN_REQUEST_BYTES);
    let bytes = match tokio::time::timeout(read_timeout, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return bad_request(&format!(
                "the body is unreadable or over {MAX_TOKEN_REQUEST_BYTES} bytes"
            ))
        }
        Err(_) => return bad_request("the body did not arrive in time"),
    };
    let parsed: TokenRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(&format!(
                "expected a JSON body {{\"user\": \"...\", \"device\": \"...\"}}: {e}"
            ))
        }
    };
    let user = match UserId::new(parsed.user) {
        Ok(u) => u,
        Err(e) => return bad_request(&format!("invalid user id: {e}")),
    };
    let device = match DeviceId::new(parsed.device) {
        Ok(d) => d,
        Err(e) => return bad_request(&format!("invalid device id: {e}")),
    };
    let claims = Claims::new(user.as_str(), web.dev_token_ttl).with_device(device.as_str());
    match authority.mint(&claims) {
        Ok(token) => {
            let body = serde_json::json!({
                "token": token,
                "user": user.as_str(),
                "device": device.as_str(),
                "exp": claims.exp,
            });
            let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => mint_failed(&e),
    }
}

fn mint_failed(e: &AuthError) -> Response<Body> {
    tracing::warn!(%e, "cannot mint a development token");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server could not sign a token; see its log",
    )
}

fn bad_request(message: &str) -> Response<Body> {
    json_error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"type": "error", "code": code, "message": message});
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
