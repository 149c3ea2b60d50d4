//! Prints the nats-server `authorization` block for callapi users, with each user's MQTT
//! permissions (`callapi_signal_mqtt::nats`):
//!
//! ```sh
//! cargo run -q -p callapi-signal-mqtt --example nats_authorization -- alice:"$ALICE_TOKEN" bob:"$BOB_TOKEN" > callapi-users.conf
//! ```
//!
//! Each argument is `user:password` (split at the first `:`; a password that starts with `$2`
//! is read by nats-server as a bcrypt hash). `include callapi-users.conf` in every node's
//! configuration.

use std::process::ExitCode;

use callapi_core::protocol::UserId;
use callapi_signal_mqtt::nats::{nats_authorization, NatsUser};

fn main() -> ExitCode {
    let mut users = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some((user, password)) = arg.split_once(':') else {
            eprintln!("{arg:?}: expected user:password");
            return ExitCode::from(2);
        };
        match UserId::new(user) {
            Ok(user) => users.push(NatsUser::new(user, password)),
            Err(err) => {
                eprintln!("{user:?}: {err}");
                return ExitCode::from(2);
            }
        }
    }
    match nats_authorization(&users) {
        Ok(block) => {
            print!("{block}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}
