//! [`MqttLink`]: a live MQTT connection. A spawned task polls the rumqttc event loop (publishing
//! happens from the caller's task: rumqttc deadlocks when one task does both) and stops at the
//! first error.

use std::time::Duration;

use callapi_core::connection::{Identity, LinkEvent, TransportLink};
use callapi_core::protocol::{self, DecodeError, Envelope, UserId};
use callapi_core::signal::SignalError;
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::topics;

/// How long [`MqttLink::close`] waits for the offline presence and the DISCONNECT to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Decides what an incoming PUBLISH means for this device. Pure, so it is tested on its own.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    me: Identity,
}

impl Inbound {
    pub(crate) fn new(me: Identity) -> Self {
        Self { me }
    }

    /// `None`: dropped silently (not for this device). `Some(Invalid)`: dropped and reported.
    pub(crate) fn classify(&self, publish: &Publish) -> Option<LinkEvent> {
        if publish.retain {
            // Envelopes are never retained; a retained one would replay to every new session.
            tracing::warn!(topic = %publish.topic, "dropping a retained message on the inbox");
            return None;
        }
        let Ok(topic) = topics::parse_inbox_topic(&publish.topic) else {
            tracing::warn!(topic = %publish.topic, "dropping a message outside the inbox layout");
            return None;
        };
        if topic.to != self.me.user.as_str() {
            tracing::warn!(topic = %publish.topic, "dropping a message for another user's inbox");
            return None;
        }
        let envelope = match protocol::decode(&publish.payload) {
            Ok(envelope) => envelope,
            Err(err) => return Some(LinkEvent::Invalid(err)),
        };
        if envelope.from.as_str() != topic.from {
            tracing::warn!(
                topic = %publish.topic,
                from = %envelope.from,
                id = %envelope.id,
                "dropping an envelope whose sender differs from its topic (forged)"
            );
            return Some(LinkEvent::Invalid(DecodeError::Malformed(format!(
                "forged sender: envelope {} claims to be from {:?} but was published by {:?} \
                 (topic {}); dropped",
                envelope.id,
                envelope.from.as_str(),
                topic.from,
                publish.topic
            ))));
        }
        if envelope
            .to_device
            .as_ref()
            .is_some_and(|d| d != &self.me.device)
        {
            // Every device of a user shares the inbox; this one is for a sibling device.
            tracing::trace!(id = %envelope.id, "envelope for another device of this user");
            return None;
        }
        Some(LinkEvent::Message(envelope))
    }
}

/// A live MQTT connection made by [`MqttTransport`](crate::MqttTransport).
///
/// Dropping it without [`close`](TransportLink::close) cuts the connection at once (no
/// DISCONNECT), so the broker publishes the device's last will.
#[derive(Debug)]
pub struct MqttLink {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    task: JoinHandle<()>,
    me: UserId,
    presence: Option<String>,
}

impl MqttLink {
    pub(crate) fn start(
        client: AsyncClient,
        eventloop: EventLoop,
        inbound: Inbound,
        early: Vec<Publish>,
        identity: &Identity,
        presence: Option<String>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        for publish in &early {
            if let Some(event) = inbound.classify(publish) {
                let _ = tx.send(event);
            }
        }
        let task = tokio::spawn(pump(eventloop, inbound, tx));
        Self {
            client,
            events: rx,
            task,
            me: identity.user.clone(),
            presence,
        }
    }
}

/// Polls the event loop until the connection fails or closes. Never polls after an error: a
/// failed rumqttc event loop reconnects at once when polled again, and reconnecting is the
/// supervisor's job.
async fn pump(
    mut eventloop: EventLoop,
    inbound: Inbound,
    events: mpsc::UnboundedSender<LinkEvent>,
) {
    let mut closing = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some(event) = inbound.classify(&publish) {
                    if events.send(event).is_err() {
                        return; // the link is gone
                    }
                }
            }
            // Our DISCONNECT is out. Keep reading until the broker closes the connection:
            // closing the socket with acks still unread would reset it, and the broker could
            // lose the DISCONNECT and publish the last will.
            Ok(Event::Outgoing(Outgoing::Disconnect)) => closing = true,
            Ok(_) => {}
            Err(err) if closing => {
                tracing::trace!(%err, "MQTT connection closed after DISCONNECT");
                return;
            }
            Err(err) => {
                tracing::info!(%err, "MQTT connection lost");
                let _ = events.send(LinkEvent::Closed { error: None });
                return;
            }
        }
    }
}

impl TransportLink for MqttLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        if self.task.is_finished() {
            return Err(SignalError::NotConnected);
        }
        if envelope.from != self.me {
            return Err(SignalError::Rejected(format!(
                "envelope from {:?} cannot be sent on {:?}'s connection",
                envelope.from.as_str(),
                self.me.as_str()
            )));
        }
        let topic = topics::inbox_topic(&envelope.to, &self.me)
            .map_err(|e| SignalError::Rejected(e.to_string()))?;
        let payload =
            protocol::encode(&envelope).map_err(|e| SignalError::Rejected(e.to_string()))?;
        // Never waits: a full queue is a lost envelope, which the reliable layer retransmits.
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .map_err(|e| SignalError::Transport(format!("MQTT publish not queued: {e}")))
    }

    async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    // `renew` is the default: MQTT 3.1.1 authenticates only in CONNECT, so the live
    // connection stays as it is and the supervisor uses the new token for the next one.

    async fn close(&mut self) {
        if !self.task.is_finished() {
            if let Some(topic) = &self.presence {
                let _ = self.client.try_publish(
                    topic.clone(),
                    QoS::AtLeastOnce,
                    true,
                    topics::PRESENCE_OFFLINE,
                );
            }
            let _ = self.client.try_disconnect();
            if tokio::time::timeout(CLOSE_GRACE, &mut self.task)
                .await
                .is_err()
            {
                tracing::debug!("MQTT close timed out; cutting the connection");
            }
        }
        self.task.abort();
        self.events.close();
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use callapi_core::protocol::{Body, CallId, DeviceId, MessageId};

    fn me() -> Inbound {
        Inbound::new(Identity {
            user: UserId::new("bob").unwrap(),
            device: DeviceId::new("b1").unwrap(),
        })
    }

    fn envelope(from: &str, to_device: Option<&str>) -> Envelope {
        Envelope {
            v: 1,
            id: MessageId::new_v4(),
            ts: 1,
            from: UserId::new(from).unwrap(),
            from_device: DeviceId::new("x1").unwrap(),
            to: UserId::new("bob").unwrap(),
            to_device: to_device.map(|d| DeviceId::new(d).unwrap()),
            call_id: CallId::new_v4(),
            lifetime_ms: 1000,
            body: Body::Ringing {
                group: false,
                seq: None,
            },
        }
    }

    fn publish(topic: &str, env: &Envelope) -> Publish {
        Publish::new(topic, QoS::AtLeastOnce, protocol::encode(env).unwrap())
    }

    #[test]
    fn an_envelope_from_the_topic_sender_is_delivered() {
        let env = envelope("alice", None);
        let got = me().classify(&publish("callapi/v1/inbox/bob/alice", &env));
        assert_eq!(got, Some(LinkEvent::Message(env)));
    }

    #[test]
    fn a_forged_sender_is_dropped_and_reported() {
        let env = envelope("alice", None);
        let got = me().classify(&publish("callapi/v1/inbox/bob/mallory", &env));
        let Some(LinkEvent::Invalid(DecodeError::Malformed(text))) = got else {
            panic!("expected a report, got {got:?}");
        };
        assert!(text.contains("forged sender"), "{text}");
    }

    #[test]
    fn an_envelope_for_a_sibling_device_is_dropped_silently() {
        let env = envelope("alice", Some("b2"));
        assert_eq!(
            me().classify(&publish("callapi/v1/inbox/bob/alice", &env)),
            None
        );
        let env = envelope("alice", Some("b1"));
        assert!(matches!(
            me().classify(&publish("callapi/v1/inbox/bob/alice", &env)),
            Some(LinkEvent::Message(_))
        ));
    }

    #[test]
    fn garbage_is_reported_and_retained_or_foreign_topics_are_dropped() {
        let p = Publish::new(
            "callapi/v1/inbox/bob/alice",
            QoS::AtLeastOnce,
            b"{".to_vec(),
        );
        assert!(matches!(me().classify(&p), Some(LinkEvent::Invalid(_))));
        let env = envelope("alice", None);
        let mut retained = publish("callapi/v1/inbox/bob/alice", &env);
        retained.retain = true;
        assert_eq!(me().classify(&retained), None);
        assert_eq!(
            me().classify(&publish("callapi/v1/inbox/carol/alice", &env)),
            None
        );
        assert_eq!(me().classify(&publish("elsewhere/bob/alice", &env)), None);
    }
}
