//! A real Mosquitto for the examples' tests: a child process on a free loopback port, started the
//! way the signal-mqtt tests start it (`signal-mqtt/tests/common/mod.rs`): the shipped policy and
//! ACL (`signal-mqtt/mosquitto/`), the shipped client id plugin compiled with `cc`, a password
//! file made with `mosquitto_passwd`, persistence in a temp dir. Killed on drop.
//!
//! It needs Debian's `mosquitto`, `mosquitto-dev`, `libmosquitto-dev` and a C compiler
//! (`./scripts/test` installs them). Without them [`Mosquitto::start`] fails the test when `CI`
//! is set (to anything but `false` or `0`), and otherwise prints why and answers `None`, so that
//! the test can skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Longest wait for the broker to start.
const START_WAIT: Duration = Duration::from_secs(10);

const NEEDS: &str = "this test needs Mosquitto, its plugin headers and a C compiler: Debian's \
                     `mosquitto`, `mosquitto-dev`, `libmosquitto-dev` and `gcc` (./scripts/test \
                     installs them; or run `apt-get install mosquitto mosquitto-dev \
                     libmosquitto-dev gcc`)";

/// Whether the tests run in CI, where a missing broker is a failure, not a skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Fails the test in CI; elsewhere prints that `test` is skipped and why.
fn missing(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: {why}: {NEEDS} (CI is set: not skipping)");
    eprintln!("SKIPPED {test}: {why}: {NEEDS}");
    println!("SKIPPED {test}: {why}");
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(fallbacks.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The shipped configuration folder (`signal-mqtt/mosquitto/`).
fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signal-mqtt/mosquitto")
}

/// The shipped client id plugin, compiled once per test process into `CARGO_TARGET_TMPDIR`;
/// `Err` with the compiler's complaint when it cannot be built.
fn clientid_plugin() -> Result<&'static Path, String> {
    static PLUGIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PLUGIN
        .get_or_init(build_clientid_plugin)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

fn build_clientid_plugin() -> Result<PathBuf, String> {
    let source = shipped_dir().join("plugin").join("callapi_clientid.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples-mosquitto-plugin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plugin = dir.join("callapi_clientid.so");
    // Test processes run concurrently: each compiles to a name of its own and renames the
    // result into place, so a broker never loads a half-written file.
    let partial = dir.join(format!(
        "callapi_clientid.so.{}.partial",
        std::process::id()
    ));
    let output = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&partial)
        .arg(&source)
        .output()
        .map_err(|e| format!("cannot run cc ({e})"))?;
    if !output.status.success() {
        return Err(format!(
            "compiling {} failed: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::rename(&partial, &plugin).map_err(|e| format!("{}: {e}", plugin.display()))?;
    Ok(plugin)
}

/// A free loopback port (bound and released; Mosquitto binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Mosquitto, killed on drop.
pub struct Mosquitto {
    dir: tempfile::TempDir,
    port: u16,
    _child: Child,
}

impl Mosquitto {
    /// Starts a broker knowing `users` (`(user, password)`) and waits until it runs; `None`
    /// (outside CI, with the reason printed) when this machine has no Mosquitto. `test` names
    /// the test in that message.
    pub async fn start(test: &str, users: &[(&str, &str)]) -> Option<Self> {
        let Some(bin) = find_program("mosquitto", &["/usr/sbin", "/usr/local/sbin"]) else {
            missing(test, "no mosquitto binary");
            return None;
        };
        let Some(passwd_bin) = find_program("mosquitto_passwd", &["/usr/bin", "/usr/local/bin"])
        else {
            missing(test, "no mosquitto_passwd");
            return None;
        };
        let plugin = match clientid_plugin() {
            Ok(plugin) => plugin,
            Err(why) => {
                missing(
                    test,
                    &format!("the client id plugin cannot be built: {why}"),
                );
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        for (i, (user, password)) in users.iter().enumerate() {
            let mut cmd = std::process::Command::new(&passwd_bin);
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            let status = cmd.arg(&passwd).arg(user).arg(password).status().unwrap();
            assert!(status.success(), "mosquitto_passwd failed for {user}");
        }
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let mut log = Vec::new();
        // A port released by `free_port` can be taken again before Mosquitto binds it: then
        // try another one.
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\n\
                     plugin {plugin}\n\
                     password_file {passwd}\n\
                     acl_file {acl}\n\
                     persistence_location {data}/\n\
                     log_dest stderr\n\
                     log_type error\n\
                     log_type warning\n\
                     log_type notice\n\
                     log_type information\n\
                     user root\n\
                     include_dir {shipped}\n",
                    plugin = plugin.display(),
                    passwd = passwd.display(),
                    acl = shipped_dir().join("acl").display(),
                    data = data.display(),
                    shipped = shipped_dir().display(),
                ),
            )
            .unwrap();
            let (child, running) = spawn(&bin, &conf, &mut log).await;
            if running {
                return Some(Self {
                    dir,
                    port,
                    _child: child,
                });
            }
        }
        panic!("mosquitto did not start:\n{}", log.join("\n"));
    }

    /// Its address for `--broker`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Its temp dir (for password files of the test's own).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Starts Mosquitto with `conf`; the child, and whether it runs (`false`: it logged an error
/// first, or ended). Its log goes to `log` until it runs; after that it is drained (and
/// dropped) so that the broker never blocks on a full pipe.
async fn spawn(bin: &Path, conf: &Path, log: &mut Vec<String>) -> (Child, bool) {
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    let started = async {
        while let Some(line) = rx.recv().await {
            let running = line.contains(" running");
            let error = line.contains("Error");
            log.push(line);
            if running || error {
                return running;
            }
        }
        false
    };
    let running = tokio::time::timeout(START_WAIT, started)
        .await
        .unwrap_or(false);
    (child, running)
}
