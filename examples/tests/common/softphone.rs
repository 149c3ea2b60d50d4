//! Helpers of the softphone tests: a `callapi-signal-server` started in this test process, phones
//! spawned against it (or against a broker), and reading their greppable lines.
//!
//! The server is `callapi-signal-ws`'s `SignalServer` (the code the `callapi-signal-server` binary
//! runs) on 127.0.0.1 port 0: Cargo builds only this package's binaries for its tests, so
//! starting the library is the robust way to get the same server here.

use callapi_signal_ws::server::{ServerConfig, ServerHandle, SignalServer};

use super::Proc;

/// The softphone binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_softphone");
/// The token secret of the in-process server; phones get it with `--secret`.
pub const SECRET: &str = "softphone-test-secret-0123456789";

/// A signaling server on a free loopback port.
pub async fn server() -> ServerHandle {
    SignalServer::start(ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes().to_vec(),
    ))
    .await
    .expect("server starts")
}

/// A softphone with `args` (named `name` in failure messages).
pub fn spawn(name: &str, args: &[&str]) -> Proc {
    Proc::spawn(name, BIN, args)
}

/// A softphone of `user` on `device` for the server at `url`, minting its tokens with
/// [`SECRET`], plus `extra` flags.
pub fn phone(url: &str, user: &str, device: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--server", url, "--user", user, "--device", device, "--secret", SECRET,
    ];
    args.extend_from_slice(extra);
    spawn(user, &args)
}

/// The value of `key=` in a line.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!(" {key}=");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + pat.len();
    line[start..].split(' ').next().unwrap_or_default()
}

/// Waits for the phone to be reachable: connected and prepared (in either order). Returns its
/// `ready ...` line.
pub async fn online(p: &mut Proc) -> String {
    let ready = p.expect_prefix("ready user=").await;
    let (mut linked, mut prepared) = (false, false);
    while !(linked && prepared) {
        let line = p
            .expect("link connected and state Prepared", |l| {
                l == "link connected" || l.starts_with("state Prepared reason=None prev=Idle")
            })
            .await;
        linked |= line == "link connected";
        prepared |= line.starts_with("state Prepared");
    }
    ready
}

/// Waits for a `member ...` line of `user` changing to `to` (a `MemberState` name such as
/// `Accepted`), from any state, and returns it. A phone may print such a line more than once
/// (a member can come back): [`member_from`] names the change exactly.
pub async fn member(p: &mut Proc, user: &str, to: &str) -> String {
    let (u, t) = (format!(" user={user} "), format!(" to={to} "));
    let what = format!("member line of {user} to {to}");
    p.expect(&what, move |l| {
        l.starts_with("member ") && l.contains(&u) && format!("{l} ").contains(&t)
    })
    .await
}

/// Waits for the `member ...` line of `user` changing from `from` (`-`: unknown before) to
/// `to`, and returns it.
pub async fn member_from(p: &mut Proc, user: &str, from: &str, to: &str) -> String {
    let prefix = format!("member user={user} from={from} to={to} ");
    let what = format!("member line of {user} from {from} to {to}");
    p.expect(&what, move |l| format!("{l} ").starts_with(&prefix))
        .await
}

/// Runs `members` and returns the `members user=...` lines, in roster (user) order, once its
/// `ok members` line arrived; checks that the count matches.
pub async fn members(p: &mut Proc) -> Vec<String> {
    p.send("members").await;
    let ok = p.expect_prefix("ok members ").await;
    let count: usize = field(&ok, "count").parse().unwrap();
    let mut lines = Vec::with_capacity(count);
    for _ in 0..count {
        lines.push(p.expect_prefix("members user=").await);
    }
    lines
}

/// Sends `quit`, waits for `bye` and a successful exit, and checks that the phone printed no
/// `error` line.
pub async fn quit(p: &mut Proc) {
    p.send("quit").await;
    p.expect_prefix("bye").await;
    let status = p.finish(std::time::Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}\n{}", p.output());
    assert!(
        !p.log.iter().any(|l| l.starts_with("error")),
        "{}",
        p.output()
    );
}
