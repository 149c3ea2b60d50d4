//! Child processes for the examples' tests: spawn a binary with piped stdio, read its output line
//! by line until an expected line (bounded), write commands to its stdin; killed on drop.
//!
//! [`softphone`] has the softphone tests' helpers (a signaling server in-process, phones, their
//! printed lines), [`mosquitto`] a real Mosquitto broker as a child process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod mosquitto;
pub mod softphone;

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

/// Longest wait for one expected line.
pub const LINE_WAIT: Duration = Duration::from_secs(15);

/// What the programs under test would read from the environment instead of their flags.
const ENV_FLAGS: &[&str] = &[
    "CALLAPI_SECRET",
    "CALLAPI_SECRET_FILE",
    "CALLAPI_SERVER",
    "CALLAPI_BACKEND",
    "CALLAPI_BROKER",
    "CALLAPI_TOKEN",
    "CALLAPI_MQTT_PASSWORD",
    "CALLAPI_MQTT_PASSWORD_FILE",
];

/// A running child process.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every stdout line read so far.
    pub log: Vec<String>,
    unmatched: Vec<String>,
}

impl Proc {
    /// Starts `bin` with `args`; stdin, stdout and stderr piped; killed when dropped.
    pub fn spawn(name: &str, bin: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(bin);
        for var in ENV_FLAGS {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {bin}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: BufReader::new(stdout).lines(),
            stderr: rx,
            log: Vec::new(),
            unmatched: Vec::new(),
        }
    }

    /// What stderr said so far.
    pub fn stderr_so_far(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.stderr.try_recv() {
            v.push(l);
        }
        v
    }

    fn fail(&mut self, why: &str) -> ! {
        let err = self.stderr_so_far();
        panic!(
            "{}: {why}\n--- stdout so far ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.log.join("\n"),
            err.join("\n")
        );
    }

    /// The first line satisfying `pred` (returned): among the lines read before but not yet
    /// matched by an `expect` first (lines printed concurrently, such as a command's `ok` and
    /// the notification it caused, may come in either order), else read on. Each line matches
    /// at most once. Panics with the output so far if the output ends or nothing matches
    /// within [`LINE_WAIT`].
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.unmatched.iter().position(|l| pred(l)) {
            return self.unmatched.remove(i);
        }
        let read = async {
            loop {
                match self.lines.next_line().await {
                    Ok(Some(line)) => {
                        self.log.push(line.clone());
                        if pred(&line) {
                            return Some(line);
                        }
                        self.unmatched.push(line);
                    }
                    Ok(None) | Err(_) => return None,
                }
            }
        };
        match tokio::time::timeout(LINE_WAIT, read).await {
            Ok(Some(line)) => line,
            Ok(None) => self.fail(&format!("output ended before {what}")),
            Err(_) => self.fail(&format!("no {what} within {LINE_WAIT:?}")),
        }
    }

    /// Reads until a line starting with `prefix`.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let what = format!("line starting with {prefix:?}");
        let p = prefix.to_owned();
        self.expect(&what, move |l| l.starts_with(&p)).await
    }

    /// Writes one line to stdin.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{}: writing {line:?}: {e}", self.name));
        stdin.flush().await.unwrap();
    }

    /// Closes stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads the rest of stdout and waits for the exit (bounded).
    pub async fn finish(&mut self, within: Duration) -> ExitStatus {
        let rest = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                self.log.push(line);
            }
            self.child.wait().await
        };
        match tokio::time::timeout(within, rest).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => self.fail(&format!("wait: {e}")),
            Err(_) => self.fail(&format!("did not exit within {within:?}")),
        }
    }

    /// All stdout lines read so far, joined.
    pub fn output(&self) -> String {
        self.log.join("\n")
    }
}

/// Runs `bin` with `args` to completion (bounded by `within`): exit status, stdout, stderr.
pub async fn run(bin: &str, args: &[&str], within: Duration) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(bin);
    for var in ENV_FLAGS {
        cmd.env_remove(var);
    }
    let child = cmd
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{bin} {args:?} did not finish within {within:?}"))
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
