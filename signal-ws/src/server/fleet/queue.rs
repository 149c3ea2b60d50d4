//! The fleet's offline queue: a JetStream stream, one subject per user.
//!
//! A nats-server 2.9 has no per-message time to live, so each kept envelope carries its own
//! expiry (`Callapi-Expires`, Unix milliseconds, from the ingress node's clock: `ts +
//! lifetime_ms`, at most `max_offline_lifetime` from now) and a replay skips and deletes expired
//! ones; the stream's `max_age` (= `max_offline_lifetime`) is the upper bound the server
//! enforces itself. `max_messages_per_subject` (= `offline_queue_per_user`) bounds one user's
//! queue (the oldest goes first). `Nats-Msg-Id` (`from`, `from_device`, `id`) makes a
//! retransmission of a kept envelope a duplicate JetStream keeps once, across the whole fleet,
//! which is what lets a push fire once per invite.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;

use super::subject::{escape, queue_subject, QUEUE_WILDCARD};
use super::FleetError;
use crate::server::config::Limits;

/// Header: when a kept envelope stops being worth delivering (Unix milliseconds).
pub(crate) const EXPIRES: &str = "Callapi-Expires";

/// Whether JetStream took a kept envelope as new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Stored for the first time.
    New,
    /// A retransmission of an envelope already kept (within the stream's duplicate window).
    Duplicate,
}

/// One kept envelope read back from the stream.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The stream sequence (what [`OfflineQueue::remove`] takes).
    pub(crate) seq: u64,
    /// Unix milliseconds after which it is never delivered.
    pub(crate) expires_ms: u64,
    /// The envelope's text as the sender wrote it.
    pub(crate) payload: Bytes,
}

/// The stream's settings for `limits` (pure, so the bounds are unit-tested).
pub(crate) fn stream_config(name: &str, replicas: usize, limits: &Limits) -> stream::Config {
    let max_age = limits.max_offline_lifetime.max(Duration::from_secs(1));
    stream::Config {
        name: name.to_owned(),
        description: Some("callapi fleet: envelopes kept for users no node holds".to_owned()),
        subjects: vec![QUEUE_WILDCARD.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        max_age,
        max_messages_per_subject: i64::try_from(limits.offline_queue_per_user.max(1))
            .unwrap_or(i64::MAX),
        max_messages: i64::try_from(limits.offline_queue_total.max(1)).unwrap_or(i64::MAX),
        max_message_size: i32::try_from(limits.max_frame_bytes).unwrap_or(i32::MAX),
        discard: stream::DiscardPolicy::Old,
        // The whole lifetime: a retransmission is a duplicate for as long as the first is kept.
        duplicate_window: max_age,
        ..Default::default()
    }
}

/// The `Nats-Msg-Id` of a kept envelope: its sender and id, each escaped.
pub(crate) fn msg_id(from: &str, from_device: &str, id: &str) -> String {
    format!("{}.{}.{}", escape(from), escape(from_device), escape(id))
}

/// When a kept envelope expires: its own remaining lifetime, at most `max` from now.
pub(crate) fn expires_ms(now_ms: u64, remaining_ms: u64, max: Duration) -> u64 {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_add(remaining_ms.min(max_ms))
}

/// Reads `Callapi-Expires`; an entry without a readable one counts as expired (never
/// delivered).
pub(crate) fn expiry_of(headers: Option<&HeaderMap>) -> u64 {
    headers
        .and_then(|h| h.get(EXPIRES))
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0)
}

/// The JetStream side of the fleet's offline queue.
#[derive(Debug, Clone)]
pub(crate) struct OfflineQueue {
    js: jetstream::Context,
    stream: stream::Stream,
    max_per_user: usize,
}

impl OfflineQueue {
    /// Creates the stream (or binds to it when another node created it first).
    pub(crate) async fn open(
        client: async_nats::Client,
        name: &str,
        replicas: usize,
        limits: &Limits,
    ) -> Result<Self, FleetError> {
        let js = jetstream::new(client);
        let config = stream_config(name, replicas, limits);
        let stream = js
            .get_or_create_stream(config)
            .await
            .map_err(|e| FleetError::Queue(format!("cannot create or bind stream {name}: {e}")))?;
        Ok(Self {
            js,
            stream,
            max_per_user: limits.offline_queue_per_user.max(1),
        })
    }

    /// Keeps `payload` for `user` until `expires_ms`; `msg_id` makes retransmissions duplicates.
    pub(crate) async fn keep(
        &self,
        user: &str,
        msg_id: &str,
        expires_ms: u64,
        payload: Bytes,
    ) -> Result<Kept, FleetError> {
        let mut headers = HeaderMap::new();
        headers.insert(EXPIRES, expires_ms.to_string().as_str());
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        let ack = self
            .js
            .publish_with_headers(queue_subject(user), headers, payload)
            .await
            .map_err(|e| FleetError::Queue(format!("cannot keep an envelope: {e}")))?
            .await
            .map_err(|e| FleetError::Queue(format!("JetStream did not take an envelope: {e}")))?;
        Ok(if ack.duplicate {
            Kept::Duplicate
        } else {
            Kept::New
        })
    }

    /// Reads every envelope kept for `user`, oldest first (expired ones included: the caller
    /// skips and removes them).
    pub(crate) async fn entries(&self, user: &str) -> Result<Vec<Entry>, FleetError> {
        let config = consumer::pull::Config {
            filter_subject: queue_subject(user),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        };
        let consumer = self
            .stream
            .create_consumer(config)
            .await
            .map_err(|e| FleetError::Queue(format!("cannot read the offline queue: {e}")))?;
        let mut messages = consumer
            .fetch()
            .max_messages(self.max_per_user)
            .messages()
            .await
            .map_err(|e| FleetError::Queue(format!("cannot read the offline queue: {e}")))?;
        let mut out = Vec::new();
        while let Some(msg) = messages.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(%e, "offline queue read ended");
                    break;
                }
            };
            let Ok(info) = msg.info() else { continue };
            out.push(Entry {
                seq: info.stream_sequence,
                expires_ms: expiry_of(msg.headers.as_ref()),
                payload: msg.payload.clone(),
            });
        }
        let name = consumer.cached_info().name.clone();
        let _ = self.stream.delete_consumer(&name).await;
        Ok(out)
    }

    /// Deletes one kept envelope (delivered, or expired).
    pub(crate) async fn remove(&self, seq: u64) {
        if let Err(e) = self.stream.delete_message(seq).await {
            tracing::debug!(seq, %e, "could not delete a kept envelope (already gone?)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_bounded_by_the_offline_limits() {
        let limits = Limits {
            offline_queue_per_user: 5,
            max_offline_lifetime: Duration::from_secs(30),
            ..Limits::default()
        };
        let c = stream_config("Q", 3, &limits);
        assert_eq!(c.subjects, vec!["callapi.fleet.queue.>".to_owned()]);
        assert_eq!(c.max_messages_per_subject, 5);
        assert_eq!(c.max_age, Duration::from_secs(30));
        assert_eq!(c.duplicate_window, Duration::from_secs(30));
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.discard, stream::DiscardPolicy::Old);
        assert_eq!(c.storage, stream::StorageType::File);
    }

    #[test]
    fn expiry_is_the_lifetime_capped_by_the_server_bound() {
        assert_eq!(expires_ms(1_000, 500, Duration::from_secs(10)), 1_500);
        assert_eq!(expires_ms(1_000, 60_000, Duration::from_secs(10)), 11_000);
    }

    #[test]
    fn an_entry_without_expiry_is_expired() {
        assert_eq!(expiry_of(None), 0);
        let mut h = HeaderMap::new();
        h.insert(EXPIRES, "garbage");
        assert_eq!(expiry_of(Some(&h)), 0);
        let mut h = HeaderMap::new();
        h.insert(EXPIRES, "1234");
        assert_eq!(expiry_of(Some(&h)), 1234);
    }

    #[test]
    fn message_ids_keep_senders_apart() {
        assert_eq!(msg_id("alice", "a1", "x"), "alice.a1.x");
        assert_ne!(msg_id("a.b", "c", "x"), msg_id("a", "b.c", "x"));
    }
}
