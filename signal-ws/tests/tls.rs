//! TLS: a call over `wss://` with a self-signed certificate made in the test (`rcgen`); a
//! client that does not trust the certificate, or speaks plain `ws://`, cannot connect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallState, StateReason};
use callapi_core::connection::{ConnectError, Transport};
use callapi_signal_ws::client::WsTransport;
use callapi_signal_ws::tls::TlsSettings;
use common::*;

struct Cert {
    cert_pem: String,
    key_pem: String,
}

fn self_signed() -> Cert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    Cert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_wss_with_a_self_signed_certificate() {
    let cert = self_signed();
    // The files `--tls-cert` / `--tls-key` would name.
    let dir = std::env::temp_dir().join(format!("callapi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let mut c = config();
    c.tls = Some(TlsSettings::from_pem_files(&cert_path, &key_path).unwrap());
    let server = start(c).await;
    let _ = std::fs::remove_dir_all(&dir);
    let url = server.url();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let transport = || {
        WsTransport::new(&url)
            .unwrap()
            .with_root_certificates_pem(cert.cert_pem.as_bytes())
            .unwrap()
            .with_options(client_options())
    };
    let mut alice = Device::start_with(transport(), "alice", "a1", 1, credentials("alice"));
    let mut bob = Device::start_with(transport(), "bob", "b1", 2, credentials("bob"));
    alice.ready().await;
    bob.ready().await;
    connected_call(&mut alice, &mut bob).await;
    bob.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    assert!(server_metric(&server, "callapi_signal_envelopes_relayed_total") > 0.0);
}

#[tokio::test]
async fn untrusted_certificates_and_plain_websocket_are_refused() {
    let cert = self_signed();
    let mut c = config();
    c.tls = Some(TlsSettings::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap());
    let server = start(c).await;
    let id = identity("alice", "a1");

    // Trusting only the public roots: the handshake fails (transient: maybe a captive portal).
    let err = WsTransport::new(&server.url())
        .unwrap()
        .connect(&id, &token("alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Transient(_)), "{err:?}");

    // Plain ws:// to the TLS port.
    let plain = server.url().replacen("wss://", "ws://", 1);
    let err = WsTransport::new(&plain)
        .unwrap()
        .connect(&id, &token("alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Transient(_)), "{err:?}");
    assert_eq!(server.stats().connections, 0);

    // Trusting the certificate: connected.
    WsTransport::new(&server.url())
        .unwrap()
        .with_root_certificates_pem(cert.cert_pem.as_bytes())
        .unwrap()
        .connect(&id, &token("alice"))
        .await
        .unwrap();
}
