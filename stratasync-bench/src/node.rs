//! A server node under test: the `todo-example` binary run as a child
//! process on a loopback port, so its memory can be read from /proc.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running server process.
#[derive(Debug)]
pub struct Node {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Node {
    /// Starts `bin` on a free loopback port against `database_url` (with
    /// `redis` for fan-out between nodes) and waits until it answers.
    pub async fn start(
        bin: &Path,
        database_url: &str,
        redis: Option<&str>,
    ) -> Result<Node, String> {
        Node::start_with(bin, database_url, redis, &[]).await
    }

    /// [`Node::start`] with more environment variables (`STRATASYNC_*`).
    pub async fn start_with(
        bin: &Path,
        database_url: &str,
        redis: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Node, String> {
        let port = free_port()?;
        let mut command = Command::new(bin);
        command
            .env("DATABASE_URL", database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("TODO_SEED", "0")
            .env("RUST_LOG", "warn")
            // The fan-out subscribes thousands of sockets as one user.
            .env("STRATASYNC_SOCKETS_PER_USER", "1000000")
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(redis) = redis {
            command.env("REDIS_URL", redis);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().map_err(|e| {
            format!(
                "cannot start {}: {e} (build it with `cargo build --release -p todo-example`)",
                bin.display()
            )
        })?;
        let pid = child.id().ok_or("the server exited at once")?;
        let node = Node {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
        };
        node.wait_ready().await?;
        Ok(node)
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = client
                .get(format!("{}/sync/deltas?limit=1", self.base))
                .bearer_auth("user:probe")
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server at {} did not answer within 60 s",
                    self.base
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The base URL with `ws://`.
    pub fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory since the last [`Node::reset_peak`], in KiB (`VmHWM`).
    pub fn peak_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Resets the peak (`VmHWM`) to the current RSS.
    pub fn reset_peak(&self) {
        // Writing 5 to clear_refs resets the peak RSS of the process.
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }

    fn status_kib(&self, key: &str) -> u64 {
        status_kib(self.pid, key)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A `/proc/<pid>/status` line's figure in KiB (`VmRSS:`, `VmHWM:`); 0 when
/// unreadable.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time the process has used, user and system (`utime + stime` of
/// `/proc/<pid>/stat`), in seconds; 0 when unreadable.
pub fn cpu_secs(pid: u32) -> f64 {
    // The kernel reports these in USER_HZ ticks, 100 per second on Linux
    // whatever the kernel's own tick rate.
    const TICKS_PER_SEC: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; fields count from after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. the 12th and 13th after
    // the command name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / TICKS_PER_SEC
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
