//! Topic layout and client ids (normative text: `docs/PROTOCOL.md`, "MQTT transport").
//!
//! * A device of user `me` subscribes to [`inbox_filter`] = `callapi/v1/inbox/{me}/+`.
//! * It sends an envelope to user `peer` by publishing to [`inbox_topic`] =
//!   `callapi/v1/inbox/{peer}/{me}`: the last level is the sender, so a broker ACL
//!   (`pattern write callapi/v1/inbox/+/%u`) stops anyone from writing as someone else, and the
//!   receiver checks the envelope's `from` against it.
//! * Presence: [`presence_topic`] = `callapi/v1/presence/{user}/{device}`, retained
//!   [`PRESENCE_ONLINE`] while connected and [`PRESENCE_OFFLINE`] (also the last will) after.
//!
//! Ids are used as topic levels verbatim, so ids that cannot be levels are refused
//! ([`check_level`]).

use callapi_core::protocol::{DeviceId, UserId};

use crate::error::{IdRole, TopicError};

/// The first two levels of every callapi topic.
pub const TOPIC_ROOT: &str = "callapi/v1";

/// Prefix of the inbox topics (`callapi/v1/inbox/`).
pub const INBOX_PREFIX: &str = "callapi/v1/inbox/";

/// Prefix of the presence topics (`callapi/v1/presence/`).
pub const PRESENCE_PREFIX: &str = "callapi/v1/presence/";

/// Retained presence payload while a device is connected.
pub const PRESENCE_ONLINE: &[u8] = b"online";

/// Retained presence payload once a device has left (published on a clean close, and as the
/// last will when the connection is lost).
pub const PRESENCE_OFFLINE: &[u8] = b"offline";

/// Checks that `id` can be an MQTT topic level: non-empty, without `/`, `+`, `#` or NUL.
///
/// ```
/// use callapi_signal_mqtt::{check_level, IdRole, TopicError};
/// assert!(check_level(IdRole::User, "alice").is_ok());
/// assert!(matches!(
///     check_level(IdRole::User, "a/b"),
///     Err(TopicError::Reserved { found: '/', .. })
/// ));
/// ```
pub fn check_level(role: IdRole, id: &str) -> Result<(), TopicError> {
    if id.is_empty() {
        return Err(TopicError::Empty { role });
    }
    if id.contains('\0') {
        return Err(TopicError::Nul { role });
    }
    if let Some(found) = id.chars().find(|c| matches!(c, '/' | '+' | '#')) {
        return Err(TopicError::Reserved {
            role,
            id: id.to_owned(),
            found,
        });
    }
    Ok(())
}

/// Which brokers' topic rules ids must follow, on top of MQTT's own ([`check_level`]).
///
/// MQTT itself only reserves `/`, `+`, `#` and NUL, so `alice.smith` is a fine user id on
/// Mosquitto, EMQX or VerneMQ. A NATS server maps every MQTT topic level to a NATS subject
/// token and refuses some ids that MQTT allows: choose [`TopicRules::Nats`] for it (see
/// [`check_level_for`]). It is an option, not the default, so that ids that work on every
/// other broker keep working there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TopicRules {
    /// MQTT 3.1.1's rules only ([`check_level`]).
    #[default]
    Mqtt,
    /// MQTT's rules, and those of NATS's MQTT support (nats-server 2.9): no `.` and no
    /// whitespace (NATS refuses such topics), no `*` or `>` (NATS wildcards inside a subject
    /// token would let the generated permissions match other users' subjects), no control
    /// characters.
    Nats,
}

/// Checks that `id` can be a topic level under `rules`: [`check_level`], and with
/// [`TopicRules::Nats`] none of `.`, `*`, `>`, whitespace or control characters.
///
/// ```
/// use callapi_signal_mqtt::{check_level_for, IdRole, TopicError, TopicRules};
/// assert!(check_level_for(TopicRules::Mqtt, IdRole::User, "alice.smith").is_ok());
/// assert!(matches!(
///     check_level_for(TopicRules::Nats, IdRole::User, "alice.smith"),
///     Err(TopicError::NotNatsSafe { found: '.', .. })
/// ));
/// assert!(check_level_for(TopicRules::Nats, IdRole::User, "alice_smith-2").is_ok());
/// ```
pub fn check_level_for(rules: TopicRules, role: IdRole, id: &str) -> Result<(), TopicError> {
    check_level(role, id)?;
    if rules == TopicRules::Nats {
        if let Some(found) = id
            .chars()
            .find(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
        {
            return Err(TopicError::NotNatsSafe {
                role,
                id: id.to_owned(),
                found,
            });
        }
    }
    Ok(())
}

/// The topic a device of `from` publishes to, to reach user `to`: `callapi/v1/inbox/{to}/{from}`.
pub fn inbox_topic(to: &UserId, from: &UserId) -> Result<String, TopicError> {
    check_level(IdRole::User, to.as_str())?;
    check_level(IdRole::User, from.as_str())?;
    Ok(format!("{INBOX_PREFIX}{to}/{from}"))
}

/// The filter every device of `me` subscribes to: `callapi/v1/inbox/{me}/+`.
pub fn inbox_filter(me: &UserId) -> Result<String, TopicError> {
    check_level(IdRole::User, me.as_str())?;
    Ok(format!("{INBOX_PREFIX}{me}/+"))
}

/// The presence topic of one device: `callapi/v1/presence/{user}/{device}`.
pub fn presence_topic(user: &UserId, device: &DeviceId) -> Result<String, TopicError> {
    check_level(IdRole::User, user.as_str())?;
    check_level(IdRole::Device, device.as_str())?;
    Ok(format!("{PRESENCE_PREFIX}{user}/{device}"))
}

/// The two user levels of an inbox topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxTopic<'a> {
    /// The addressee (the topic's fourth level).
    pub to: &'a str,
    /// The sender (the topic's last level).
    pub from: &'a str,
}

/// Splits `callapi/v1/inbox/{to}/{from}` into its user levels.
///
/// ```
/// use callapi_signal_mqtt::{parse_inbox_topic, InboxTopic};
/// assert_eq!(
///     parse_inbox_topic("callapi/v1/inbox/bob/alice"),
///     Ok(InboxTopic { to: "bob", from: "alice" })
/// );
/// assert!(parse_inbox_topic("callapi/v1/inbox/bob").is_err());
/// ```
pub fn parse_inbox_topic(topic: &str) -> Result<InboxTopic<'_>, TopicError> {
    let not_inbox = || TopicError::NotInbox(topic.to_owned());
    let rest = topic.strip_prefix(INBOX_PREFIX).ok_or_else(not_inbox)?;
    let (to, from) = rest.split_once('/').ok_or_else(not_inbox)?;
    if to.is_empty() || from.is_empty() || from.contains('/') {
        return Err(not_inbox());
    }
    Ok(InboxTopic { to, from })
}

/// The stable MQTT client id of a device: `callapi-{user}-{device}`, each id escaped so that
/// the result is plain ASCII and distinct devices never share an id. ASCII letters, digits and
/// `.` stay as they are; every other byte of the UTF-8 id (`-` and `_` included) becomes `_`
/// and two lowercase hex digits.
///
/// ```
/// use callapi_core::protocol::{DeviceId, UserId};
/// use callapi_signal_mqtt::client_id;
/// let id = |u: &str, d: &str| client_id(&UserId::new(u).unwrap(), &DeviceId::new(d).unwrap());
/// assert_eq!(id("alice", "a1"), "callapi-alice-a1");
/// assert_eq!(id("bob-x", "tab 2"), "callapi-bob_2dx-tab_202");
/// assert_ne!(id("a-b", "c"), id("a", "b-c"));
/// ```
///
/// The id is as long as the escaped ids (up to about 1.5 KB for 256-byte ids); brokers with a
/// client id limit (MQTT 3.1.1 only guarantees 23 characters) need short ids.
pub fn client_id(user: &UserId, device: &DeviceId) -> String {
    let mut out = String::from("callapi");
    for part in [user.as_str(), device.as_str()] {
        out.push('-');
        for b in part.bytes() {
            if b.is_ascii_alphanumeric() || b == b'.' {
                out.push(char::from(b));
            } else {
                out.push('_');
                out.push_str(&format!("{b:02x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn ids_that_cannot_be_levels_are_refused_with_a_clear_error() {
        for (id, found) in [("a/b", '/'), ("a+", '+'), ("#", '#')] {
            let err = check_level(IdRole::User, id).unwrap_err();
            assert_eq!(
                err,
                TopicError::Reserved {
                    role: IdRole::User,
                    id: id.into(),
                    found
                }
            );
            let text = err.to_string();
            assert!(text.contains("reserves") && text.contains(id), "{text}");
        }
        assert_eq!(
            check_level(IdRole::Device, ""),
            Err(TopicError::Empty {
                role: IdRole::Device
            })
        );
        assert_eq!(
            check_level(IdRole::User, "a\0b"),
            Err(TopicError::Nul { role: IdRole::User })
        );
        assert!(inbox_topic(&user("bob"), &user("a/b")).is_err());
        assert!(inbox_filter(&user("x+y")).is_err());
    }

    #[test]
    fn nats_rules_refuse_what_the_nats_mapping_cannot_carry() {
        for (id, found) in [
            ("alice.smith", '.'),
            ("alice smith", ' '),
            ("*", '*'),
            ("a>", '>'),
            ("tab\there", '\t'),
            ("nbsp\u{a0}", '\u{a0}'),
            ("bell\u{7}", '\u{7}'),
        ] {
            assert!(
                check_level_for(TopicRules::Mqtt, IdRole::User, id).is_ok(),
                "{id:?}"
            );
            let err = check_level_for(TopicRules::Nats, IdRole::Device, id).unwrap_err();
            assert_eq!(
                err,
                TopicError::NotNatsSafe {
                    role: IdRole::Device,
                    id: id.into(),
                    found
                }
            );
            let text = err.to_string();
            assert!(
                text.contains("NATS") && text.contains("letters, digits"),
                "{text}"
            );
        }
        // MQTT's own rules still apply first.
        assert!(matches!(
            check_level_for(TopicRules::Nats, IdRole::User, "a/b"),
            Err(TopicError::Reserved { found: '/', .. })
        ));
        for ok in [
            "alice",
            "bob-2",
            "u_1",
            "9f1c2d3e-aaaa-4bbb-8ccc-0123456789ab",
            "élise",
        ] {
            assert!(
                check_level_for(TopicRules::Nats, IdRole::User, ok).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn topics_follow_the_layout() {
        let (a, b) = (user("alice"), user("bob"));
        assert_eq!(inbox_topic(&b, &a).unwrap(), "callapi/v1/inbox/bob/alice");
        assert_eq!(inbox_filter(&b).unwrap(), "callapi/v1/inbox/bob/+");
        let d = DeviceId::new("b1").unwrap();
        assert_eq!(
            presence_topic(&b, &d).unwrap(),
            "callapi/v1/presence/bob/b1"
        );
        let t = inbox_topic(&b, &a).unwrap();
        assert_eq!(
            parse_inbox_topic(&t).unwrap(),
            InboxTopic {
                to: "bob",
                from: "alice"
            }
        );
        for bad in [
            "callapi/v1/inbox/bob/alice/x",
            "callapi/v1/inbox//alice",
            "callapi/v1/inbox/bob/",
            "callapi/v2/inbox/bob/alice",
        ] {
            assert!(parse_inbox_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_ids_are_ascii_and_injective() {
        let id = |u: &str, d: &str| client_id(&user(u), &DeviceId::new(d).unwrap());
        assert_eq!(id("alice", "a1"), "callapi-alice-a1");
        assert_eq!(id("é", "_"), "callapi-_c3_a9-_5f");
        assert_ne!(id("a_2d", "b"), id("a-", "b"));
        assert!(id("ünï cödé/+#", "x").is_ascii());
    }
}
