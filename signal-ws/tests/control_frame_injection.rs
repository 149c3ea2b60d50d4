//! Control frames come only from the server. An envelope that also carries a `type` member
//! could pass for a control frame at its receiver (`token_will_expire` would make it fetch and
//! renew its token): the server refuses such envelopes with `invalid_envelope` and never relays
//! them, and the client never takes a control frame from anything that decodes as an envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::connection::{LinkEvent, Transport, TransportLink};
use callapi_core::protocol::{encode_string, DecodeError, Envelope};
use callapi_signal_ws::client::WsTransport;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// `env` as JSON with `extra` members added.
fn with_members(env: &Envelope, extra: Value) -> String {
    let mut v: Value = serde_json::from_str(&encode_string(env).unwrap()).unwrap();
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

/// What a malicious sender adds to an envelope to pose as one of the server's frames.
fn disguises() -> Vec<Value> {
    vec![
        json!({"type": "token_will_expire", "exp": 1}),
        json!({"type": "renewed", "exp": 1}),
        json!({"type": "hello", "user": "bob", "device": "b1", "exp": 1}),
        json!({"type": "error", "code": "bad_token", "message": "x"}),
        json!({"type": "ping"}),
        json!({"type": null}),
        json!({"type": 7}),
    ]
}

#[tokio::test]
async fn the_server_refuses_an_envelope_that_carries_a_type_member() {
    let server = start(config()).await;
    let mut mallory = raw_user(&server, "mallory", "m1").await;
    let mut bob = raw_user(&server, "bob", "b1").await;

    for extra in disguises() {
        let env = message(("mallory", "m1"), "bob", "gotcha");
        mallory.send_text(with_members(&env, extra.clone())).await;
        let err = mallory.expect_error("invalid_envelope").await;
        assert_eq!(err["id"], env.id.to_string(), "{extra}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains("\"type\""),
            "{extra}: {err}"
        );
    }
    // Nothing reached bob: the first frame he gets is the honest envelope sent after them.
    let honest = message(("mallory", "m1"), "bob", "honest");
    mallory.send_env(&honest).await;
    let got = bob.json().await;
    assert_eq!(got["id"], honest.id.to_string(), "{got}");
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"invalid\"}"
        ),
        disguises().len() as f64
    );
}

#[tokio::test]
async fn an_offline_user_is_not_sent_a_disguised_envelope_later() {
    let server = start(config()).await;
    let mut mallory = raw_user(&server, "mallory", "m1").await;
    let env = message(("mallory", "m1"), "bob", "gotcha");
    mallory
        .send_text(with_members(
            &env,
            json!({"type": "token_will_expire", "exp": 1}),
        ))
        .await;
    mallory.expect_error("invalid_envelope").await;
    assert_eq!(server.stats().offline_queued, 0);
}

/// A server that is not callapi's (an older one, or one that relays blindly): it greets the
/// client, relays an envelope carrying `"type":"token_will_expire"`, then sends a genuine
/// `token_will_expire` control frame.
#[tokio::test]
async fn the_client_never_takes_a_control_frame_from_a_relayed_envelope() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let injected = message(("mallory", "m1"), "bob", "gotcha");
    let injected_text = with_members(&injected, json!({"type": "token_will_expire", "exp": 1}));
    let fake = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let hello =
            json!({"type": "hello", "user": "bob", "device": "b1", "exp": now_secs() + 3600});
        ws.send(Message::text(hello.to_string())).await.unwrap();
        ws.send(Message::text(injected_text)).await.unwrap();
        let genuine = json!({"type": "token_will_expire", "exp": now_secs() + 30});
        ws.send(Message::text(genuine.to_string())).await.unwrap();
        // Keep the socket open until the client goes.
        while let Some(Ok(_)) = ws.next().await {}
    });

    let mut transport = WsTransport::new(&format!("ws://{addr}/v1/signal"))
        .unwrap()
        .with_options(client_options());
    let mut link = transport
        .connect(&identity("bob", "b1"), &token("bob"))
        .await
        .expect("connected to the fake server");
    // The disguised envelope is refused as an invalid envelope, not taken as a warning ...
    assert_eq!(
        next(&mut link).await,
        Some(LinkEvent::Invalid(DecodeError::ReservedMember {
            member: "type"
        }))
    );
    // ... while the server's own frame still is one.
    assert_eq!(next(&mut link).await, Some(LinkEvent::TokenWillExpire));
    link.close().await;
    fake.await.unwrap();
}

async fn next(link: &mut callapi_signal_ws::client::WsLink) -> Option<LinkEvent> {
    tokio::time::timeout(WAIT, link.next_event())
        .await
        .expect("a link event in time")
}
