//! A signaling backend of your own: implement `Transport` (one connection attempt and the link it
//! yields) and the core's `Supervisor` adds tokens, reconnection and link state. Here the "wire"
//! is an in-process switchboard of channels; a real one would be a socket.
//!
//! ```text
//! cargo run -p callapi-examples --example custom_transport
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use callapi_core::call::{CallConfig, CallState, PrepareConfig};
use callapi_core::connection::{ConnectError, Credentials, Identity, LinkEvent, Supervisor};
use callapi_core::connection::{SupervisorConfig, TokenError, Transport, TransportLink};
use callapi_core::protocol::{CallType, DeviceId, Envelope, UserId};
use callapi_core::signal::SignalError;
use callapi_core::{media::NoMedia, CallApi, CallApiError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Who is connected: each user's inbox. (One device per user, for brevity.)
type Board = Arc<Mutex<HashMap<UserId, UnboundedSender<Envelope>>>>;

/// What one connection attempt gives.
type Connected = Result<Line, ConnectError>;

/// The transport: dials the switchboard.
#[derive(Clone, Default)]
struct Switchboard(Board);

/// One live connection.
struct Line {
    board: Board,
    me: UserId,
    inbox: UnboundedReceiver<Envelope>,
}

impl Transport for Switchboard {
    type Link = Line;

    // The attempt owns what it needs: the supervisor polls it beside the call's work.
    fn connect(&mut self, id: &Identity, token: &str) -> impl Future<Output = Connected> + 'static {
        let (board, me, ok) = (self.0.clone(), id.user.clone(), token == "let-me-in");
        async move {
            if !ok {
                return Err(ConnectError::Unauthorized("wrong token".into()));
            }
            let (tx, inbox) = unbounded_channel();
            let mut lines = board
                .lock()
                .map_err(|_| ConnectError::Transient("poisoned".into()))?;
            lines.insert(me.clone(), tx);
            drop(lines);
            Ok(Line { board, me, inbox })
        }
    }
}

impl TransportLink for Line {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        let board = self.board.lock().map_err(|_| SignalError::Closed)?;
        // Best effort, like any backend: the core acknowledges and retransmits end to end.
        if let Some(peer) = board.get(&envelope.to) {
            let _ = peer.send(envelope);
        }
        Ok(())
    }

    async fn next_event(&mut self) -> Option<LinkEvent> {
        self.inbox.recv().await.map(LinkEvent::Message) // cancel-safe
    }

    async fn close(&mut self) {
        if let Ok(mut board) = self.board.lock() {
            board.remove(&self.me);
        }
    }
}

fn phone(board: &Switchboard, user: &str) -> Result<CallApi, Box<dyn std::error::Error>> {
    let (user, device) = (UserId::new(user)?, DeviceId::new("phone")?);
    let tokens = Credentials::token(|| async { Ok::<_, TokenError>("let-me-in".to_owned()) });
    let identity = Identity {
        user: user.clone(),
        device: device.clone(),
    };
    let signal = Supervisor::start(board.clone(), SupervisorConfig::new(identity, tokens));
    Ok(CallApi::new(CallConfig::new(user, device), signal, NoMedia))
}

async fn reach(api: &CallApi, state: CallState) -> Result<(), CallApiError> {
    let mut watch = api.state_watch();
    watch
        .wait_for(|s| *s == state)
        .await
        .map(|_| ())
        .map_err(|_| CallApiError::Shutdown)
}

// Tokio's paused clock skips the supervisor's start-up jitter: the example runs instantly.
/// Runs the example (public so that `tests/examples.rs` can run it too).
#[tokio::main(flavor = "current_thread", start_paused = true)]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let board = Switchboard::default();
    let (alice, bob) = (phone(&board, "alice")?, phone(&board, "bob")?);
    alice.prepare(PrepareConfig::new("alice-room")).await?;
    bob.prepare(PrepareConfig::new("bob-room")).await?;

    let id = alice.call("bob", CallType::Video).await?;
    reach(&bob, CallState::Calling).await?;
    println!("bob's phone rings for call {id}");
    bob.accept().await?;
    reach(&alice, CallState::Connected).await?;
    println!("connected over the custom transport");
    alice.hangup(None).await?;
    reach(&bob, CallState::Prepared).await?;
    println!("bob: call ended by alice");
    alice.shutdown().await?;
    bob.shutdown().await?;
    Ok(())
}
