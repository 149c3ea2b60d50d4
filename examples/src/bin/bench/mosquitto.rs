//! A Mosquitto child process on a free loopback port with the shipped configuration and ACL
//! (`signal-mqtt/mosquitto/`), a generated password file and a temp persistence dir; killed on
//! drop. Needs Debian's `mosquitto` package (`scripts/test` installs it).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Res;

/// A running Mosquitto.
pub struct Mosquitto {
    _dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

fn find(name: &str, dirs: &[&str]) -> Res<PathBuf> {
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path.into_iter()
        .chain(dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found: apt-get install mosquitto").into())
}

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signal-mqtt/mosquitto")
}

impl Mosquitto {
    /// Starts a broker knowing `users` (`(user, password)`) and waits until it runs.
    pub fn start(users: &[(&str, &str)]) -> Res<Self> {
        let dir = tempfile::tempdir()?;
        let passwd = dir.path().join("passwd");
        let mosquitto_passwd = find("mosquitto_passwd", &["/usr/bin", "/usr/local/bin"])?;
        for (i, (u, p)) in users.iter().enumerate() {
            let mut cmd = Command::new(&mosquitto_passwd);
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            if !cmd.arg(&passwd).arg(u).arg(p).status()?.success() {
                return Err(format!("mosquitto_passwd failed for {u}").into());
            }
        }
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let bin = find("mosquitto", &["/usr/sbin", "/usr/local/sbin"])?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\npassword_file {}\nacl_file {}\n\
                     persistence_location {}/\nlog_dest stderr\nlog_type error\nlog_type warning\n\
                     log_type notice\nlog_type information\nset_tcp_nodelay true\nuser root\ninclude_dir {}\n",
                    passwd.display(),
                    shipped_dir().join("acl").display(),
                    data.display(),
                    shipped_dir().display()
                ),
            )?;
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            let stderr = child.stderr.take().ok_or("no stderr")?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        // Keep draining so the broker never blocks on a full pipe.
                        continue;
                    }
                }
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut running = false;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(line) if line.contains(" running") => {
                        running = true;
                        break;
                    }
                    Ok(line) if line.contains("Error") => {
                        last = line;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if running {
                return Ok(Self {
                    _dir: dir,
                    port,
                    child,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(format!("mosquitto did not start: {last}").into())
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
