//! nats-server configuration for callapi's MQTT topics: per-user permissions generated from the
//! user list.
//!
//! A NATS server (2.9 or later, with JetStream on) serves MQTT 3.1.1 and maps every topic to a
//! subject: `/` becomes `.`, so `callapi/v1/inbox/bob/alice` is the subject
//! `callapi.v1.inbox.bob.alice`. Its permissions are per subject, and config-file users cannot
//! use templates (no `%u`, as in Mosquitto's ACL, for users of an `authorization` block), so
//! each user gets a permission set of its own, the Mosquitto ACL spelled out:
//!
//! | | subjects |
//! |---|---|
//! | publish | `callapi.v1.inbox.*.{me}` (write to anyone's inbox, as itself), `callapi.v1.presence.{me}.*` |
//! | subscribe | `callapi.v1.inbox.{me}.*` (its own inbox), `callapi.v1.presence` and `callapi.v1.presence.>` (everyone's presence: an MQTT filter `.../#` also matches its parent level, so NATS subscribes to both), `$MQTT.sub.>` |
//!
//! `$MQTT.sub.>` is internal to NATS's MQTT support: the server delivers QoS 1 messages from
//! the JetStream consumer of each subscription on a `$MQTT.sub.<id>` subject, subscribed in
//! the client's name, so the client needs that permission; MQTT clients cannot subscribe to
//! those subjects themselves (the server refuses MQTT filters under `$MQTT.sub.`). A plain
//! NATS client with it could read every QoS 1 delivery, so every generated user may only
//! connect over MQTT (`allowed_connection_types: ["MQTT"]`).
//!
//! ```
//! use callapi_core::protocol::UserId;
//! use callapi_signal_mqtt::nats::{nats_authorization, NatsUser};
//!
//! let users = [
//!     NatsUser::new(UserId::new("alice")?, "alice-secret"),
//!     NatsUser::new(UserId::new("bob")?, "bob-secret"),
//! ];
//! let block = nats_authorization(&users)?;
//! assert!(block.starts_with("authorization {"));
//! assert!(block.contains(r#""callapi.v1.inbox.*.alice""#));
//! // Paste it into every node's configuration (or `include` a file holding it).
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;

use callapi_core::protocol::UserId;

use crate::error::{IdRole, NatsConfigError};
use crate::topics::{check_level_for, TopicRules};

/// The subject NATS delivers QoS 1 messages of MQTT subscriptions on (`$MQTT.sub.<id>`); every
/// MQTT client needs subscribe permission on it.
pub const MQTT_DELIVERY_SUBJECTS: &str = "$MQTT.sub.>";

/// The NATS subject of an MQTT topic, as NATS maps it: each `/` becomes `.`. Only for topics
/// whose levels pass [`TopicRules::Nats`] (no `.` or whitespace inside a level).
///
/// ```
/// use callapi_signal_mqtt::nats::nats_subject;
/// assert_eq!(nats_subject("callapi/v1/inbox/bob/+"), "callapi.v1.inbox.bob.*");
/// assert_eq!(nats_subject("callapi/v1/presence/#"), "callapi.v1.presence.>");
/// ```
pub fn nats_subject(topic: &str) -> String {
    topic
        .split('/')
        .map(|level| match level {
            "+" => "*",
            "#" => ">",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The permissions of one user ([`nats_permissions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsPermissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
}

/// The permissions of `user` (see the [module docs](self)). Refuses ids that NATS cannot carry
/// as a subject token ([`TopicRules::Nats`]): a `*` or `>` in an id would widen them to other
/// users' subjects.
///
/// ```
/// use callapi_core::protocol::UserId;
/// use callapi_signal_mqtt::nats::nats_permissions;
/// let p = nats_permissions(&UserId::new("bob")?)?;
/// assert_eq!(p.publish, ["callapi.v1.inbox.*.bob", "callapi.v1.presence.bob.*"]);
/// assert_eq!(
///     p.subscribe,
///     ["callapi.v1.inbox.bob.*", "callapi.v1.presence", "callapi.v1.presence.>", "$MQTT.sub.>"]
/// );
/// assert!(nats_permissions(&UserId::new("bob.smith")?).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn nats_permissions(user: &UserId) -> Result<NatsPermissions, NatsConfigError> {
    check_level_for(TopicRules::Nats, IdRole::User, user.as_str())?;
    Ok(NatsPermissions {
        publish: vec![
            format!("callapi.v1.inbox.*.{user}"),
            format!("callapi.v1.presence.{user}.*"),
        ],
        subscribe: vec![
            format!("callapi.v1.inbox.{user}.*"),
            // MQTT's `callapi/v1/presence/#` also matches its parent level: NATS subscribes
            // to both subjects.
            "callapi.v1.presence".to_owned(),
            "callapi.v1.presence.>".to_owned(),
            MQTT_DELIVERY_SUBJECTS.to_owned(),
        ],
    })
}

/// A user of the generated `authorization` block: the callapi user id (the MQTT user name) and
/// its password (the token its app's `TokenProvider` returns).
///
/// nats-server reads a password that starts with `$2` as a bcrypt hash (`nats server passwd`
/// makes one): pass the hash to keep tokens out of the configuration file.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUser {
    /// The user id.
    pub user: UserId,
    /// The password, or its bcrypt hash.
    pub password: String,
}

impl NatsUser {
    /// A user with its password.
    pub fn new(user: UserId, password: impl Into<String>) -> Self {
        Self {
            user,
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for NatsUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsUser")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One entry of an `authorization { users = [...] }` list: the user, its password, MQTT
/// connections only, and its [`nats_permissions`]. Use it to add callapi users to a list of
/// your own; [`nats_authorization`] wraps a whole list.
///
/// ```
/// use callapi_core::protocol::UserId;
/// use callapi_signal_mqtt::nats::{nats_user_entry, NatsUser};
/// let entry = nats_user_entry(&NatsUser::new(UserId::new("bob")?, "s3cret"))?;
/// assert!(entry.starts_with(r#"{ user: "bob", password: "s3cret", allowed_connection_types: ["MQTT"]"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn nats_user_entry(user: &NatsUser) -> Result<String, NatsConfigError> {
    if user.password.is_empty() {
        return Err(NatsConfigError::EmptyPassword {
            user: user.user.as_str().to_owned(),
        });
    }
    let permissions = nats_permissions(&user.user)?;
    let list = |subjects: &[String]| {
        subjects
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "{{ user: {user}, password: {password}, allowed_connection_types: [\"MQTT\"], \
         permissions: {{ publish: {{ allow: [{publish}] }}, subscribe: {{ allow: [{subscribe}] }} }} }}",
        user = quote(user.user.as_str()),
        password = quote(&user.password),
        publish = list(&permissions.publish),
        subscribe = list(&permissions.subscribe),
    ))
}

/// The `authorization { users = [...] }` block for `users`, one [`nats_user_entry`] per line.
/// Every node of the cluster needs the same block (an `include` file does it). Refuses an
/// empty list, a user listed twice, an empty password and ids NATS cannot carry.
pub fn nats_authorization(users: &[NatsUser]) -> Result<String, NatsConfigError> {
    if users.is_empty() {
        return Err(NatsConfigError::NoUsers);
    }
    let mut seen = HashSet::new();
    let mut out = String::from("authorization {\n  users = [\n");
    for user in users {
        if !seen.insert(user.user.as_str()) {
            return Err(NatsConfigError::DuplicateUser {
                user: user.user.as_str().to_owned(),
            });
        }
        out.push_str("    ");
        out.push_str(&nats_user_entry(user)?);
        out.push('\n');
    }
    out.push_str("  ]\n}\n");
    Ok(out)
}

/// A double-quoted string of the NATS configuration format: `\` and `"` escaped, control
/// characters as `\xXX`; nothing inside is read as a `$variable`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::TopicError;
    use crate::topics::{inbox_filter, inbox_topic, presence_topic};
    use callapi_core::protocol::DeviceId;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    /// A NATS subject pattern matches a subject (token-wise `*` and trailing `>`).
    fn matches(pattern: &str, subject: &str) -> bool {
        let (p, s): (Vec<&str>, Vec<&str>) =
            (pattern.split('.').collect(), subject.split('.').collect());
        for (i, token) in p.iter().enumerate() {
            match *token {
                ">" => return s.len() > i,
                "*" if i < s.len() => {}
                t if s.get(i) == Some(&t) => {}
                _ => return false,
            }
        }
        p.len() == s.len()
    }

    #[test]
    fn permissions_cover_exactly_the_users_own_topics() {
        let (alice, bob) = (user("alice"), user("bob"));
        let p = nats_permissions(&alice).unwrap();
        let may_publish = |subject: &str| p.publish.iter().any(|a| matches(a, subject));
        let may_subscribe = |subject: &str| p.subscribe.iter().any(|a| matches(a, subject));
        // What alice's transport does.
        assert!(may_publish(&nats_subject(
            &inbox_topic(&bob, &alice).unwrap()
        )));
        assert!(may_publish(&nats_subject(
            &inbox_topic(&alice, &alice).unwrap()
        )));
        let phone = DeviceId::new("phone").unwrap();
        assert!(may_publish(&nats_subject(
            &presence_topic(&alice, &phone).unwrap()
        )));
        assert!(may_subscribe(&nats_subject(&inbox_filter(&alice).unwrap())));
        assert!(may_subscribe("callapi.v1.presence.bob.b1"));
        assert!(may_subscribe(&nats_subject("callapi/v1/presence/#")));
        assert!(may_subscribe("callapi.v1.presence"));
        assert!(may_subscribe("$MQTT.sub.Xy12"));
        // What it must not do.
        assert!(!may_publish(&nats_subject(
            &inbox_topic(&alice, &bob).unwrap()
        )));
        assert!(!may_publish("callapi.v1.inbox.bob.mallory"));
        assert!(!may_publish(&nats_subject(
            &presence_topic(&bob, &phone).unwrap()
        )));
        assert!(!may_publish("callapi.v1.inbox.bob"));
        assert!(!may_subscribe(&nats_subject(&inbox_filter(&bob).unwrap())));
        assert!(!may_subscribe("callapi.v1.inbox.bob.alice"));
        assert!(!may_subscribe("callapi.v1.>"));
        assert!(!may_subscribe("$JS.API.STREAM.LIST"));
    }

    #[test]
    fn the_block_lists_every_user_and_is_quoted() {
        let users = [
            NatsUser::new(user("alice"), "pa"),
            NatsUser::new(user("élise"), "quote\" back\\slash $HOME\ttab"),
        ];
        let block = nats_authorization(&users).unwrap();
        assert_eq!(block.lines().count(), 6, "{block}");
        assert!(block.starts_with("authorization {\n  users = [\n"));
        assert!(block.ends_with("  ]\n}\n"));
        assert!(block.contains(r#"user: "élise""#));
        assert!(block.contains(r#"password: "quote\" back\\slash $HOME\x09tab""#));
        assert!(block.contains(r#""$MQTT.sub.>""#));
        assert_eq!(
            block
                .matches(r#"allowed_connection_types: ["MQTT"]"#)
                .count(),
            2
        );
    }

    #[test]
    fn bad_inputs_are_refused_with_the_reason() {
        assert_eq!(nats_authorization(&[]), Err(NatsConfigError::NoUsers));
        let twice = [
            NatsUser::new(user("bob"), "a"),
            NatsUser::new(user("bob"), "b"),
        ];
        assert_eq!(
            nats_authorization(&twice),
            Err(NatsConfigError::DuplicateUser { user: "bob".into() })
        );
        let empty = [NatsUser::new(user("bob"), "")];
        assert_eq!(
            nats_authorization(&empty),
            Err(NatsConfigError::EmptyPassword { user: "bob".into() })
        );
        for id in ["bob.smith", "bob smith", "*", "a>"] {
            let err = nats_authorization(&[NatsUser::new(user(id), "p")]).unwrap_err();
            assert!(
                matches!(err, NatsConfigError::Id(TopicError::NotNatsSafe { .. })),
                "{id}: {err:?}"
            );
        }
        let err = nats_authorization(&[NatsUser::new(user("a/b"), "p")]).unwrap_err();
        assert!(matches!(
            err,
            NatsConfigError::Id(TopicError::Reserved { found: '/', .. })
        ));
        // The password never shows in debug output.
        let u = NatsUser::new(user("bob"), "s3cret");
        assert!(!format!("{u:?}").contains("s3cret"));
    }

    #[test]
    fn subjects_map_levels_and_wildcards() {
        assert_eq!(
            nats_subject("callapi/v1/inbox/bob/alice"),
            "callapi.v1.inbox.bob.alice"
        );
        assert_eq!(nats_subject("a/+/#"), "a.*.>");
    }
}
