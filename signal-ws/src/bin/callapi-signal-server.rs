//! `callapi-signal-server`: the callapi WebSocket signaling server.
//!
//! ```text
//! callapi-signal-server serve --listen 127.0.0.1:8765 --secret-file secret.txt
//! callapi-signal-server token --secret-file secret.txt --user alice --device a1 --ttl 1h
//! callapi-signal-server serve --listen 127.0.0.1:8765 --secret-file secret.txt --web --dev-tokens
//! ```
//!
//! `--web` serves the web softphone page at `/`; `--dev-tokens` (development only) lets that
//! page sign in as any user through `POST /dev/token`.
//!
//! Every flag can also be given as an environment variable (`CALLAPI_LISTEN`,
//! `CALLAPI_SECRET_FILE`, ...; see `--help`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use callapi_signal_ws::auth::{read_secret_file, Claims, TokenAuthority};
use callapi_signal_ws::server::{
    shutdown_signal, FleetConfig, ServerConfig, SignalServer, TlsSettings, WebhookNotifier,
    DEV_TOKEN_PATH,
};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "callapi-signal-server",
    version,
    about = "callapi WebSocket signaling server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server until SIGTERM or ctrl-c.
    Serve(Box<ServeArgs>),
    /// Prints a token for development (signed with the server's secret).
    Token(TokenArgs),
}

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, env = "CALLAPI_LISTEN", default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// File holding the HS256 token secret (a trailing newline is ignored).
    #[arg(long, env = "CALLAPI_SECRET_FILE")]
    secret_file: PathBuf,
    /// PEM certificate chain: serve wss:// (needs --tls-key).
    #[arg(long, env = "CALLAPI_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CALLAPI_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// POST a JSON push notification here for every invite to an offline user.
    #[arg(long, env = "CALLAPI_PUSH_WEBHOOK")]
    push_webhook: Option<String>,
    /// Bearer token sent with each webhook post.
    #[arg(long, env = "CALLAPI_PUSH_WEBHOOK_TOKEN", requires = "push_webhook")]
    push_webhook_token: Option<String>,
    /// Ping interval [default: 15s].
    #[arg(long, env = "CALLAPI_PING_INTERVAL", value_parser = duration)]
    ping_interval: Option<Duration>,
    /// A socket silent for this many ping intervals is dropped [default: 2].
    #[arg(long, env = "CALLAPI_MISSED_PONGS")]
    missed_pongs: Option<u32>,
    /// Warn clients this long before their token expires [default: 60s].
    #[arg(long, env = "CALLAPI_EXPIRY_WARNING", value_parser = duration)]
    expiry_warning: Option<Duration>,
    /// Accepted clock skew on token expiry [default: 0s].
    #[arg(long, env = "CALLAPI_TOKEN_LEEWAY", value_parser = duration)]
    token_leeway: Option<Duration>,
    /// Time a connection has for TLS and its request headers [default: 10s].
    #[arg(long, env = "CALLAPI_HANDSHAKE_TIMEOUT", value_parser = duration)]
    handshake_timeout: Option<Duration>,
    /// Time given to sockets to close on shutdown [default: 5s].
    #[arg(long, env = "CALLAPI_SHUTDOWN_GRACE", value_parser = duration)]
    shutdown_grace: Option<Duration>,
    /// Largest message from a client, in bytes [default: 65536].
    #[arg(long, env = "CALLAPI_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<usize>,
    /// Sustained messages per second per connection [default: 50].
    #[arg(long, env = "CALLAPI_RATE_PER_SEC")]
    rate_per_sec: Option<u32>,
    /// Message burst per connection [default: 100].
    #[arg(long, env = "CALLAPI_RATE_BURST")]
    rate_burst: Option<u32>,
    /// Rate-limited messages within 10 s that close the connection (4008) [default: 200].
    #[arg(long, env = "CALLAPI_RATE_CLOSE_AFTER")]
    rate_close_after: Option<u32>,
    /// Connections per user [default: 8].
    #[arg(long, env = "CALLAPI_MAX_CONNECTIONS_PER_USER")]
    max_connections_per_user: Option<usize>,
    /// TCP connections still in their handshake [default: 1024].
    #[arg(long, env = "CALLAPI_MAX_PENDING_HANDSHAKES")]
    max_pending_handshakes: Option<usize>,
    /// Envelopes kept per offline user [default: 64].
    #[arg(long, env = "CALLAPI_OFFLINE_QUEUE_PER_USER")]
    offline_queue_per_user: Option<usize>,
    /// Envelopes kept for offline users in total [default: 100000].
    #[arg(long, env = "CALLAPI_OFFLINE_QUEUE_TOTAL")]
    offline_queue_total: Option<usize>,
    /// Longest an envelope waits for an offline user [default: 10m].
    #[arg(long, env = "CALLAPI_MAX_OFFLINE_LIFETIME", value_parser = duration)]
    max_offline_lifetime: Option<Duration>,
    /// Most bytes read from a socket at a time, into a buffer shared by the worker thread (an
    /// idle connection holds no read buffer) [default: 16384].
    #[arg(long, env = "CALLAPI_READ_BUFFER_BYTES")]
    read_buffer_bytes: Option<usize>,
    /// Most bytes waiting to be written to one socket; a socket that goes over it is closed
    /// with 4010 (slow consumer) [default: 1048576].
    #[arg(long, env = "CALLAPI_MAX_WRITE_BUFFER_BYTES")]
    max_write_buffer_bytes: Option<usize>,
    /// Serve the web softphone page at / (embedded in the binary; off by default).
    #[arg(long, env = "CALLAPI_WEB")]
    web: bool,
    /// DEVELOPMENT ONLY: with --web, POST /dev/token hands a token for any user to anyone who
    /// asks (the page's sign-in uses it). Never on a reachable address.
    #[arg(long, env = "CALLAPI_DEV_TOKENS", requires = "web")]
    dev_tokens: bool,
    /// Lifetime of the tokens of --dev-tokens [default: 10m].
    #[arg(long, env = "CALLAPI_DEV_TOKEN_TTL", value_parser = duration, requires = "dev_tokens")]
    dev_token_ttl: Option<Duration>,
    /// Join a fleet of servers sharing routing through these NATS servers
    /// (`nats://h1:4222,nats://h2:4222`); the offline queue lives in JetStream.
    #[arg(long, env = "CALLAPI_NATS", value_delimiter = ',')]
    nats: Vec<String>,
    /// The servers' NATS user (the only one allowed on callapi.fleet.>).
    #[arg(
        long,
        env = "CALLAPI_NATS_USER",
        requires = "nats",
        requires = "nats_password"
    )]
    nats_user: Option<String>,
    /// That user's password.
    #[arg(long, env = "CALLAPI_NATS_PASSWORD", requires = "nats_user")]
    nats_password: Option<String>,
    /// This node's name, unique in the fleet [default: node-PID-NANOSECONDS].
    #[arg(long, env = "CALLAPI_NODE", requires = "nats")]
    node: Option<String>,
    /// Replicas of the JetStream offline queue (3 on a 3-node NATS cluster) [default: 1].
    #[arg(long, env = "CALLAPI_NATS_REPLICAS", requires = "nats",
          value_parser = clap::value_parser!(u8).range(1..=5))]
    nats_replicas: Option<u8>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// File holding the HS256 token secret.
    #[arg(long, env = "CALLAPI_SECRET_FILE")]
    secret_file: PathBuf,
    /// The user (`sub`).
    #[arg(long, env = "CALLAPI_TOKEN_USER")]
    user: String,
    /// Limit the token to this device (`dev`).
    #[arg(long, env = "CALLAPI_TOKEN_DEVICE")]
    device: Option<String>,
    /// Make it an access link for this room (`room`).
    #[arg(long, env = "CALLAPI_TOKEN_ROOM")]
    room: Option<String>,
    /// Lifetime (`1h`, `30m`, `90s`).
    #[arg(long, env = "CALLAPI_TOKEN_TTL", default_value = "1h", value_parser = duration)]
    ttl: Duration,
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn config(args: ServeArgs) -> Result<ServerConfig, String> {
    let secret = read_secret_file(&args.secret_file).map_err(|e| e.to_string())?;
    let mut c = ServerConfig::new(args.listen, secret);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        c.tls = Some(TlsSettings::from_pem_files(cert, key).map_err(|e| e.to_string())?);
    }
    if let Some(url) = &args.push_webhook {
        let mut hook = WebhookNotifier::new(url).map_err(|e| e.to_string())?;
        if let Some(t) = args.push_webhook_token {
            hook = hook.with_bearer(t);
        }
        c.push = Some(Arc::new(hook));
    }
    let t = &mut c.timers;
    set(&mut t.ping_interval, args.ping_interval);
    set(&mut t.missed_pongs, args.missed_pongs);
    set(&mut t.expiry_warning, args.expiry_warning);
    set(&mut t.token_leeway, args.token_leeway);
    set(&mut t.handshake_timeout, args.handshake_timeout);
    set(&mut t.shutdown_grace, args.shutdown_grace);
    let l = &mut c.limits;
    set(&mut l.max_frame_bytes, args.max_frame_bytes);
    set(&mut l.rate_per_sec, args.rate_per_sec);
    set(&mut l.rate_burst, args.rate_burst);
    set(&mut l.rate_close_after, args.rate_close_after);
    set(
        &mut l.max_connections_per_user,
        args.max_connections_per_user,
    );
    set(&mut l.max_pending_handshakes, args.max_pending_handshakes);
    set(&mut l.offline_queue_per_user, args.offline_queue_per_user);
    set(&mut l.offline_queue_total, args.offline_queue_total);
    set(&mut l.max_offline_lifetime, args.max_offline_lifetime);
    let b = &mut c.buffers;
    set(&mut b.read_buffer_bytes, args.read_buffer_bytes);
    set(&mut b.max_write_buffer_bytes, args.max_write_buffer_bytes);
    c.web.enabled = args.web;
    c.web.dev_tokens = args.dev_tokens;
    set(&mut c.web.dev_token_ttl, args.dev_token_ttl);
    if !args.nats.is_empty() {
        let urls: Vec<String> = args.nats.iter().map(|u| u.trim().to_owned()).collect();
        if let Some(bad) = urls.iter().find(|u| u.is_empty()) {
            return Err(format!(
                "--nats {bad:?}: give NATS URLs separated by commas, such as nats://127.0.0.1:4222"
            ));
        }
        let mut fleet = FleetConfig::new(urls);
        fleet.user = args.nats_user;
        fleet.password = args.nats_password;
        set(&mut fleet.node, args.node);
        set(&mut fleet.replicas, args.nats_replicas.map(usize::from));
        c.fleet = Some(fleet);
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = config(args)?;
    let web = config.web.clone();
    let server = SignalServer::start(config)
        .await
        .map_err(|e| e.to_string())?;
    if web.dev_tokens {
        eprintln!(
            "WARNING: --dev-tokens is on: POST {DEV_TOKEN_PATH} gives a token for ANY user to \
             anyone who can reach {}. Development only: never expose this server.",
            server.local_addr()
        );
    }
    // Scripts and tests read the bound address (useful with port 0) from this line.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", server.url());
    if web.enabled {
        let scheme = if server.url().starts_with("wss:") {
            "https"
        } else {
            "http"
        };
        let _ = writeln!(out, "web page on {scheme}://{}/", server.local_addr());
    }
    let _ = out.flush();
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

fn token(args: TokenArgs) -> Result<(), String> {
    let secret = read_secret_file(&args.secret_file).map_err(|e| e.to_string())?;
    let authority = TokenAuthority::new(secret).map_err(|e| e.to_string())?;
    let mut claims = Claims::new(args.user, args.ttl);
    if let Some(d) = args.device {
        claims = claims.with_device(d);
    }
    if let Some(r) = args.room {
        claims = claims.with_room(r);
    }
    let token = authority.mint(&claims).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            serve(*args).await
        }
        Command::Token(args) => token(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("callapi-signal-server: {err}");
            ExitCode::FAILURE
        }
    }
}
