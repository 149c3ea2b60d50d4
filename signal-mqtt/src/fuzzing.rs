//! Entry points for the fuzz targets in the repository's `fuzz/` directory: the receive rules
//! for an incoming PUBLISH, which are private otherwise. Hidden from the docs and not a stable
//! API; nothing here opens a connection.

use callapi_core::connection::{Identity, LinkEvent};
use rumqttc::{Publish, QoS};

use crate::link::Inbound;

/// What device `me` makes of a PUBLISH on `topic` (retained or not) carrying `payload`:
/// `None` when it is dropped silently, else the event its link reports.
pub fn classify(me: &Identity, topic: &str, retain: bool, payload: &[u8]) -> Option<LinkEvent> {
    let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
    publish.retain = retain;
    Inbound::new(me.clone()).classify(&publish)
}
