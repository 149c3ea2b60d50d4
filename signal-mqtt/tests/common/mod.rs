//! Shared helpers of the signal-mqtt tests: a real Mosquitto started with the shipped
//! configuration and client id plugin (killed on drop), a transport wrapper that counts
//! connection attempts, `CallApi` devices over supervised MQTT transports that connect at once,
//! and supervisor seeds whose jitter is short where a test waits.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use callapi_core::call::{CallConfig, CallEvent, CallState, Notification, PrepareConfig};
use callapi_core::connection::schedule::{reconnect_attempt_at, RetrySchedule};
use callapi_core::connection::{
    ConnectError, Credentials, Identity, Supervisor, SupervisorConfig, TokenError, Transport,
};
use callapi_core::protocol::{DeviceId, UserId};
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::next_matching;
use callapi_signal_mock::{MockMedia, MockMediaBehavior, MockMediaControl};
use callapi_signal_mqtt::{MqttConfig, MqttTransport};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio::time::Instant;

pub mod nats;

/// Longest wait for anything expected (real time).
pub const WAIT: Duration = Duration::from_secs(10);

/// Logs to stderr when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

pub fn identity(u: &str, d: &str) -> Identity {
    Identity {
        user: user(u),
        device: device(d),
    }
}

// ---------------------------------------------------------------- Mosquitto

/// The shipped configuration folder (`signal-mqtt/mosquitto/`).
pub fn shipped_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mosquitto")
}

fn find_program(name: &str, fallbacks: &[&str]) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(fallbacks.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: these tests need Debian's `mosquitto` package \
                 (./scripts/test installs it; or run `apt-get install mosquitto`)"
            )
        })
}

/// The shipped client id plugin (`signal-mqtt/mosquitto/plugin/callapi_clientid.c`), compiled
/// with `cc` once per test process (the first call) into `CARGO_TARGET_TMPDIR`.
pub fn clientid_plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(build_clientid_plugin)
}

fn build_clientid_plugin() -> PathBuf {
    let source = shipped_config_dir()
        .join("plugin")
        .join("callapi_clientid.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mosquitto-plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("callapi_clientid.so");
    // Test processes run concurrently: each compiles to a name of its own and renames the
    // result into place, so a broker never loads a half-written file.
    let partial = dir.join(format!(
        "callapi_clientid.so.{}.partial",
        std::process::id()
    ));
    let needs = "these tests load the shipped Mosquitto plugin, which needs a C compiler (`cc`) \
                 and the Mosquitto plugin headers: Debian's `mosquitto-dev` and \
                 `libmosquitto-dev` (./scripts/test installs them; or run \
                 `apt-get install gcc mosquitto-dev libmosquitto-dev`)";
    let output = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&partial)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc ({e}): {needs}"));
    assert!(
        output.status.success(),
        "compiling {} failed: {needs}\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &plugin).unwrap();
    plugin
}

/// A free loopback port (bound and released; Mosquitto binds it right after).
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A free port on `addr` (a local address), bound and released.
pub fn free_port_on(addr: Ipv4Addr) -> u16 {
    TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto child process on a free loopback port, started with the shipped configuration,
/// ACL and client id plugin, a password file generated here with `mosquitto_passwd`, and
/// persistence in a temp dir. Killed on drop. Its log lines are collected.
pub struct Mosquitto {
    dir: tempfile::TempDir,
    addr: Ipv4Addr,
    port: u16,
    passwd: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    log: watch::Receiver<Vec<String>>,
    log_tx: watch::Sender<Vec<String>>,
}

impl Mosquitto {
    /// Starts a broker knowing `users` (`(user, password)`) and waits until it runs.
    pub async fn start(users: &[(&str, &str)]) -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST, users).await
    }

    /// Like [`start`](Self::start), listening on `addr` (a local address) instead of
    /// 127.0.0.1. Started from a thread in a network namespace (a `netns::Host`), the broker
    /// runs in that namespace.
    pub async fn start_on(addr: Ipv4Addr, users: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        for (i, (u, p)) in users.iter().enumerate() {
            run_mosquitto_passwd(&passwd, i == 0, u, p);
        }
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let (log_tx, log) = watch::channel(Vec::new());
        let mut broker = Self {
            dir,
            addr,
            port: 0,
            passwd: passwd.clone(),
            conf,
            child: None,
            log,
            log_tx,
        };
        // A port released by `free_port` can be taken again before Mosquitto binds it (by
        // another test's client socket, say): then try another one.
        for _ in 0..5 {
            broker.port = free_port_on(addr);
            broker.write_conf(&passwd, &data);
            if broker.spawn().await {
                return broker;
            }
            broker.kill();
        }
        panic!("mosquitto did not start: {:#?}", broker.log());
    }

    /// The per-instance main file of the recipe in `signal-mqtt/mosquitto/README.md` (with the
    /// `plugin` line of the client id plugin built by [`clientid_plugin`]), plus verbose logging
    /// to stderr (the tests read the log) and `user root` (when the tests run as root, Mosquitto
    /// would otherwise switch to the `mosquitto` user, who cannot read the temp dir).
    fn write_conf(&self, passwd: &Path, data: &Path) {
        let shipped = shipped_config_dir();
        std::fs::write(
            &self.conf,
            format!(
                "listener {port} {addr}\n\
                 plugin {plugin}\n\
                 password_file {passwd}\n\
                 acl_file {acl}\n\
                 persistence_location {data}/\n\
                 log_dest stderr\n\
                 log_type all\n\
                 user root\n\
                 include_dir {shipped}\n",
                port = self.port,
                addr = self.addr,
                plugin = clientid_plugin().display(),
                passwd = passwd.display(),
                acl = shipped.join("acl").display(),
                data = data.display(),
                shipped = shipped.display(),
            ),
        )
        .unwrap();
    }

    /// Starts the process; `true` once it runs, `false` if it reported an error first.
    async fn spawn(&mut self) -> bool {
        let from = self.log.borrow().len();
        let bin = find_program("mosquitto", &["/usr/sbin", "/usr/local/sbin"]);
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx = self.log_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tx.send_modify(|log| log.push(line));
            }
        });
        self.child = Some(child);
        self.wait_log("mosquitto running (or an error)", |log| {
            let new = &log[from.min(log.len())..];
            count(new, " running") > 0 || count(new, "Error") > 0
        })
        .await;
        let log = self.log();
        count(&log[from..], "Error") == 0
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A transport configuration for it.
    pub fn mqtt_config(&self) -> MqttConfig {
        MqttConfig::new(self.addr.to_string(), self.port)
    }

    /// Kills it (SIGKILL: no goodbye to clients, no final save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, configuration and persistence directory.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "mosquitto did not restart: {:#?}",
            self.log()
        );
    }

    /// Its log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        count(&self.log.borrow(), needle)
    }

    /// Waits until `n` lines contain `needle`, then checks that exactly `n` do. (The log reaches
    /// the test through a pipe and a thread, so a count read at once can lag behind what the
    /// test has already seen happen.)
    pub async fn assert_count(&self, needle: &str, n: usize) {
        self.wait_log(&format!("{n} lines with {needle:?}"), |log| {
            count(log, needle) >= n
        })
        .await;
        assert_eq!(self.count(needle), n, "{needle:?}: {:#?}", self.log());
    }

    /// Waits until `done(log)` holds.
    pub async fn wait_log(&self, what: &str, mut done: impl FnMut(&[String]) -> bool) {
        let mut rx = self.log.clone();
        let found = tokio::time::timeout(WAIT, rx.wait_for(|log| done(log))).await;
        assert!(
            matches!(found, Ok(Ok(_))),
            "mosquitto log: no {what} within {WAIT:?}: {:#?}",
            self.log()
        );
    }

    /// Where its files live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets `user`'s password in its password file (adding the user if new), as the recipe in
    /// `signal-mqtt/mosquitto/README.md` does; the running broker sees it after [`reload`].
    ///
    /// [`reload`]: Self::reload
    pub fn set_password(&self, user: &str, password: &str) {
        run_mosquitto_passwd(&self.passwd, false, user, password);
    }

    /// `kill -HUP`, as in the README's recipe: Mosquitto reloads its configuration and password
    /// file. Returns once the broker has logged the reload; Mosquitto reloads within one turn of
    /// its single-threaded loop, so every packet it reads after that line meets the reloaded
    /// configuration.
    pub async fn reload(&self) {
        let before = self.count("Reloading config.");
        let pid = self.child.as_ref().expect("mosquitto runs").id();
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -HUP {pid} failed");
        self.wait_log("the reload", |log| count(log, "Reloading config.") > before)
            .await;
    }
}

/// `mosquitto_passwd -b [-c] <file> <user> <password>`.
fn run_mosquitto_passwd(file: &Path, create: bool, user: &str, password: &str) {
    let mosquitto_passwd = find_program("mosquitto_passwd", &["/usr/bin", "/usr/local/bin"]);
    let mut cmd = Command::new(mosquitto_passwd);
    cmd.arg("-b");
    if create {
        cmd.arg("-c");
    }
    let status = cmd.arg(file).arg(user).arg(password).status().unwrap();
    assert!(status.success(), "mosquitto_passwd failed for {user}");
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many lines contain `needle`.
pub fn count(log: &[String], needle: &str) -> usize {
    log.iter().filter(|l| l.contains(needle)).count()
}

/// The broker's "client connected" line for a device (`... as callapi-{user}-{device} ...`).
pub fn connected_line(u: &str, d: &str) -> String {
    format!("as callapi-{u}-{d} ")
}

// ---------------------------------------------------------------- counting attempts

/// One connection attempt as the transport saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: Instant,
    pub result: Result<(), ConnectError>,
}

/// The attempts of a [`Counted`] transport (cheap to clone).
#[derive(Debug, Clone)]
pub struct Attempts {
    log: Arc<Mutex<Vec<Attempt>>>,
    tx: watch::Sender<usize>,
}

impl Attempts {
    fn new() -> Self {
        Self {
            log: Arc::new(Mutex::new(Vec::new())),
            tx: watch::channel(0).0,
        }
    }

    /// Every attempt that finished so far.
    pub fn all(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }

    /// How many attempts finished.
    pub fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits until at least `n` attempts finished; `false` if that takes longer than `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.tx.subscribe();
        let reached = tokio::time::timeout(within, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }
}

/// A transport that records every attempt of the one it wraps.
pub struct Counted<T> {
    inner: T,
    attempts: Attempts,
}

impl<T> Counted<T> {
    pub fn new(inner: T) -> (Self, Attempts) {
        let attempts = Attempts::new();
        (
            Self {
                inner,
                attempts: attempts.clone(),
            },
            attempts,
        )
    }
}

impl<T: Transport + Send> Transport for Counted<T>
where
    T: Sync,
{
    type Link = T::Link;

    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl std::future::Future<Output = Result<T::Link, ConnectError>> + Send + 'static {
        let at = Instant::now();
        let attempt = self.inner.connect(identity, token);
        let attempts = self.attempts.clone();
        async move {
            let result = attempt.await;
            let record = Attempt {
                at,
                result: result.as_ref().map(|_| ()).map_err(Clone::clone),
            };
            attempts.log.lock().unwrap().push(record);
            attempts.tx.send_modify(|c| *c += 1);
            result
        }
    }
}

// ---------------------------------------------------------------- supervisor seeds

/// The jitter draws (in ms) of a [`Device`]'s supervisor seeded with `seed`, in the order it
/// draws them. Its first connection attempt and its first token fetch try are not jittered
/// ([`RetrySchedule::immediate_first_attempt`]): draws 0 and 1 = the retries of the first
/// token fetch (at 1 and 4 s + jitter), then one per reconnect attempt, and three more
/// whenever it fetches a token again.
pub fn jitter_draws(seed: u64, n: usize) -> Vec<Duration> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| reconnect_attempt_at(0, &mut rng)).collect()
}

/// The first seed whose draws at `indices` all fall inside the given windows (ms).
pub fn seed_where(windows: &[(usize, u64, u64)]) -> u64 {
    let n = windows.iter().map(|w| w.0).max().unwrap_or(0) + 1;
    (1..2_000_000u64)
        .find(|seed| {
            let d = jitter_draws(*seed, n);
            windows.iter().all(|(i, lo, hi)| {
                let ms = d[*i].as_millis() as u64;
                ms >= *lo && ms < *hi
            })
        })
        .expect("a seed in range")
}

// ---------------------------------------------------------------- CallApi devices

/// A `CallApi` device over a supervised, counted MQTT transport, with `MockMedia` and its
/// notifications logged.
pub struct Device {
    pub api: CallApi,
    pub attempts: Attempts,
    pub media: MockMediaControl,
    pub user: UserId,
    pub device: DeviceId,
    stream: NotificationStream,
    pub log: Vec<Notification>,
}

/// Token credentials that always give `token`.
pub fn fixed_token(token: &str) -> Credentials {
    let token = token.to_owned();
    Credentials::token(move || {
        let t = token.clone();
        async move { Ok::<_, TokenError>(t) }
    })
}

impl Device {
    /// Starts a device and prepares it in `{user}-room` at once (before its link is up, so an
    /// invite waiting at the broker finds it ready). Its supervisor, seeded with `sup_seed`,
    /// connects at once ([`RetrySchedule::immediate_first_attempt`]) and reconnects on the
    /// default schedule.
    pub async fn start(config: MqttConfig, u: &str, d: &str, token: &str, sup_seed: u64) -> Self {
        Self::start_with(
            config,
            u,
            d,
            token,
            sup_seed,
            PrepareConfig::new(format!("{u}-room")),
        )
        .await
    }

    /// Like [`start`](Self::start) with a prepare configuration.
    pub async fn start_with(
        config: MqttConfig,
        u: &str,
        d: &str,
        token: &str,
        sup_seed: u64,
        prepare: PrepareConfig,
    ) -> Self {
        let call = CallConfig::new(user(u), device(d)).with_seed(sup_seed ^ 0x5eed);
        let schedule = RetrySchedule::immediate_first_attempt();
        Self::start_custom(config, call, token, sup_seed, schedule, prepare).await
    }

    /// Like [`start_with`](Self::start_with) with the device's own call settings (user and
    /// device from them) and reconnect schedule.
    pub async fn start_custom(
        config: MqttConfig,
        call: CallConfig,
        token: &str,
        sup_seed: u64,
        schedule: RetrySchedule,
        prepare: PrepareConfig,
    ) -> Self {
        let (u, d) = (call.user_id.clone(), call.device_id.clone());
        let (transport, attempts) = Counted::new(MqttTransport::new(config));
        let signal = Supervisor::start(
            transport,
            SupervisorConfig::new(
                Identity {
                    user: u.clone(),
                    device: d.clone(),
                },
                fixed_token(token),
            )
            .with_seed(sup_seed)
            .with_schedule(schedule),
        );
        let (media, control) = MockMedia::with_behavior(MockMediaBehavior {
            emit_signal: true,
            ..MockMediaBehavior::default()
        });
        let (api, stream) = CallApi::new_subscribed(call, signal, media);
        api.prepare(prepare).await.unwrap();
        Self {
            api,
            attempts,
            media: control,
            user: u,
            device: d,
            stream,
            log: Vec::new(),
        }
    }

    /// Waits for the first new notification matching `pred` (logging everything read).
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl FnMut(&Notification) -> bool,
    ) -> Notification {
        let (stream, log) = (&mut self.stream, &mut self.log);
        match next_matching(stream, WAIT, |n| log.push(n.clone()), pred).await {
            Ok(n) => n,
            Err(err) => panic!(
                "{}/{}: no {what}: {err}; log: {:#?}",
                self.user, self.device, self.log
            ),
        }
    }

    pub async fn wait_link(&mut self, state: LinkState) {
        let what = format!("link {state:?}");
        self.wait_for(&what, |n| matches!(n, Notification::Link(s) if *s == state))
            .await;
    }

    /// Waits for a link state matching `pred` and returns it.
    pub async fn wait_link_where(&mut self, pred: impl Fn(&LinkState) -> bool) -> LinkState {
        match self
            .wait_for(
                "link state",
                |n| matches!(n, Notification::Link(s) if pred(s)),
            )
            .await
        {
            Notification::Link(s) => s,
            _ => unreachable!(),
        }
    }

    pub async fn wait_state(&mut self, state: CallState) -> callapi_core::call::StateChange {
        let what = format!("state {state:?}");
        match self
            .wait_for(
                &what,
                |n| matches!(n, Notification::StateChanged(c) if c.state == state),
            )
            .await
        {
            Notification::StateChanged(c) => c,
            _ => unreachable!(),
        }
    }

    pub async fn wait_event(&mut self, event: CallEvent) {
        let what = format!("event {event:?}");
        self.wait_for(
            &what,
            |n| matches!(n, Notification::Event(e) if e.event == event),
        )
        .await;
    }

    /// Waits for an in-call message and returns its data.
    pub async fn wait_message(&mut self) -> String {
        match self
            .wait_for("a message", |n| {
                matches!(n, Notification::MessageReceived { .. })
            })
            .await
        {
            Notification::MessageReceived { data, .. } => data,
            _ => unreachable!(),
        }
    }

    /// Logs the notifications already waiting.
    pub fn drain(&mut self) {
        while let Some(n) = self.stream.try_recv() {
            self.log.push(n);
        }
    }

    /// The states logged so far.
    pub fn states(&self) -> Vec<CallState> {
        self.log
            .iter()
            .filter_map(|n| match n {
                Notification::StateChanged(c) => Some(c.state),
                _ => None,
            })
            .collect()
    }

    /// The events logged so far.
    pub fn events(&self) -> Vec<CallEvent> {
        self.log
            .iter()
            .filter_map(|n| match n {
                Notification::Event(e) => Some(e.event),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------- the full call

/// alice calls bob (video), bob accepts, both reach `Connected`, exchange a 60 KB message
/// (larger than rumqttc's default packet limit) and DTMF, and alice hangs up.
pub async fn full_call(alice: &mut Device, bob: &mut Device) {
    alice.wait_link(LinkState::Connected).await;
    bob.wait_link(LinkState::Connected).await;

    let call_id = alice
        .api
        .call("bob", callapi_core::protocol::CallType::Video)
        .await
        .unwrap();
    let ring = bob.wait_state(CallState::Calling).await;
    assert_eq!(ring.call.as_ref().unwrap().call_id, call_id);
    alice.wait_event(CallEvent::RemoteUserRecvCall).await;

    bob.api.accept().await.unwrap();
    let connected = alice.wait_state(CallState::Connected).await;
    assert!(connected.timings.is_some());
    bob.wait_state(CallState::Connected).await;

    let big = "x".repeat(60_000);
    alice.api.send_message(big.clone()).await.unwrap();
    assert_eq!(bob.wait_message().await.len(), big.len());
    bob.api.send_dtmf("42#").await.unwrap();
    alice
        .wait_for(
            "dtmf",
            |n| matches!(n, Notification::DtmfReceived { digits, .. } if digits == "42#"),
        )
        .await;

    alice.api.hangup(None).await.unwrap();
    let end = bob.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, callapi_core::call::StateReason::RemoteHangup);
    assert_eq!(alice.api.state(), CallState::Prepared);

    // The media engines' negotiation went through the broker too.
    let got_offer = bob.media.commands().iter().any(|c| {
        matches!(c, callapi_signal_mock::MediaCommandRecord::RemoteSignal { payload, .. }
            if payload["sdp"] == "mock-offer")
    });
    assert!(
        got_offer,
        "bob's media got no offer: {:?}",
        bob.media.commands()
    );
}

// ---------------------------------------------------------------- links and raw clients

/// An envelope from `from`/`from_device` to `to` (`to_device` if given).
pub fn envelope(
    from: &str,
    from_device: &str,
    to: &str,
    to_device: Option<&str>,
    body: callapi_core::protocol::Body,
) -> callapi_core::protocol::Envelope {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    callapi_core::protocol::Envelope {
        v: 1,
        id: callapi_core::protocol::MessageId::new_v4(),
        ts: now,
        from: user(from),
        from_device: device(from_device),
        to: user(to),
        to_device: to_device.map(device),
        call_id: callapi_core::protocol::CallId::new_v4(),
        lifetime_ms: 15_000,
        body,
    }
}

/// A `message` body.
pub fn message(data: &str) -> callapi_core::protocol::Body {
    callapi_core::protocol::Body::Message { data: data.into() }
}

/// One connection attempt of a bare `MqttTransport` (no supervisor).
pub async fn connect_link(
    config: MqttConfig,
    u: &str,
    d: &str,
    token: &str,
) -> callapi_signal_mqtt::MqttLink {
    let mut transport = MqttTransport::new(config);
    transport
        .connect(&identity(u, d), token)
        .await
        .unwrap_or_else(|e| panic!("{u}/{d} could not connect: {e}"))
}

/// The next event of a link, within [`WAIT`].
pub async fn next_link_event(
    link: &mut callapi_signal_mqtt::MqttLink,
) -> callapi_core::connection::LinkEvent {
    use callapi_core::connection::TransportLink;
    tokio::time::timeout(WAIT, link.next_event())
        .await
        .expect("a link event in time")
        .expect("the link is open")
}

/// A plain rumqttc client, its incoming packets forwarded to a channel; the poll task stops at
/// the first error.
pub struct RawClient {
    pub client: rumqttc::AsyncClient,
    pub packets: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    skipped: std::collections::VecDeque<rumqttc::Packet>,
}

impl RawClient {
    /// Connects as `user` with `password` (clean session), with the client id
    /// `callapi-{user}-raw` (escaped like a device's, so the broker's client id plugin lets it
    /// in); waits for the CONNACK.
    pub async fn connect(port: u16, user: &str, password: &str) -> Self {
        let id = callapi_signal_mqtt::client_id(&self::user(user), &device("raw"));
        Self::try_connect_as(port, &id, user, password, true)
            .await
            .unwrap_or_else(|code| panic!("raw client {id} ({user}) refused: {code:?}"))
    }

    /// Connects with any client id and clean session flag; waits for the CONNACK and returns
    /// its refusal code if the broker refused the connection.
    pub async fn try_connect_as(
        port: u16,
        client_id: &str,
        user: &str,
        password: &str,
        clean_session: bool,
    ) -> Result<Self, rumqttc::ConnectReturnCode> {
        let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_credentials(user, password)
            .set_clean_session(clean_session)
            .set_max_packet_size(128 * 1024, 128 * 1024);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
        let (tx, packets) = tokio::sync::mpsc::unbounded_channel();
        let (connack_tx, connack) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut connack_tx = Some(connack_tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if matches!(p, rumqttc::Packet::ConnAck(_)) {
                            if let Some(t) = connack_tx.take() {
                                let _ = t.send(Ok(()));
                            }
                        }
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if let Some(t) = connack_tx.take() {
                            let _ = t.send(Err(err));
                        }
                        return;
                    }
                }
            }
        });
        match tokio::time::timeout(WAIT, connack).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code)))) => return Err(code),
            Ok(Ok(Err(err))) => panic!("raw client {client_id}: connection failed: {err}"),
            Ok(Err(_)) => panic!("raw client {client_id}: the poll task ended without an answer"),
            Err(_) => panic!("raw client {client_id}: no CONNACK within {WAIT:?}"),
        }
        let mut raw = Self {
            client,
            packets,
            skipped: Default::default(),
        };
        raw.next_where("CONNACK", |p| matches!(p, rumqttc::Packet::ConnAck(_)))
            .await;
        Ok(raw)
    }

    /// The first incoming packet matching `pred`, within [`WAIT`]; the others stay queued, in
    /// order, for later calls.
    pub async fn next_where(
        &mut self,
        what: &str,
        pred: impl Fn(&rumqttc::Packet) -> bool,
    ) -> rumqttc::Packet {
        if let Some(i) = self.skipped.iter().position(&pred) {
            return self.skipped.remove(i).unwrap();
        }
        let (packets, skipped) = (&mut self.packets, &mut self.skipped);
        tokio::time::timeout(WAIT, async {
            loop {
                let p = packets.recv().await.expect("raw client open");
                if pred(&p) {
                    return p;
                }
                skipped.push_back(p);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("raw client: no {what} within {WAIT:?}"))
    }

    /// Subscribes at QoS 1 and returns the SUBACK's return codes.
    pub async fn subscribe(&mut self, filter: &str) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        match self
            .next_where("SUBACK", |p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await
        {
            rumqttc::Packet::SubAck(ack) => ack.return_codes,
            _ => unreachable!(),
        }
    }

    /// Publishes `payload` at QoS 1 (not retained) and waits for the broker's PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        self.next_where("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)))
            .await;
    }

    /// Publishes an envelope on `topic`.
    pub async fn publish_envelope(
        &mut self,
        topic: &str,
        envelope: &callapi_core::protocol::Envelope,
    ) {
        self.publish(topic, callapi_core::protocol::encode(envelope).unwrap())
            .await;
    }
}
