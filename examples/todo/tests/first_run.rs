//! The example as a newcomer meets it: the binary, run with nothing but
//! environment variables.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_todo-example");

/// Runs the binary to completion with `env`; returns (exit code, stderr).
fn run_failing(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempdir();
    let output = Command::new(BINARY)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run the example");
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("todo-example-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn assert_one_line_error(stderr: &str, mentions: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(mentions),
        "the error should mention {mentions}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unsupported_database_url_is_a_one_line_error() {
    let (code, stderr) = run_failing(&[
        ("DATABASE_URL", "mysql://localhost/app"),
        ("BIND", "127.0.0.1:0"),
    ]);
    assert_eq!(code, Some(1));
    assert_one_line_error(&stderr, "DATABASE_URL");
}

#[test]
fn unreachable_database_is_a_one_line_error() {
    let (code, stderr) = run_failing(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/app"),
        ("BIND", "127.0.0.1:0"),
    ]);
    assert_eq!(code, Some(1));
    assert_one_line_error(&stderr, "DATABASE_URL");
}

#[test]
fn a_password_in_database_url_never_reaches_the_terminal() {
    for url in [
        "postgres://app:s3cret-pw@127.0.0.1:1/app",
        "postgres://app:s3cret-pw@127.0.0.1:1/app?sslmode=require",
        "mysql://app:s3cret-pw@localhost/app",
    ] {
        let (code, stderr) = run_failing(&[("DATABASE_URL", url), ("BIND", "127.0.0.1:0")]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(!stderr.contains("s3cret-pw"), "{stderr}");
        assert!(stderr.contains("app:***@"), "{stderr}");
    }
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let (code, stderr) = run_failing(&[("BIND", &addr)]);
    assert_eq!(code, Some(1));
    assert_one_line_error(&stderr, "BIND");
}

/// Kills the child when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn first_run_serves_seeded_rows_on_sqlite() {
    let dir = tempdir();
    let mut child = Running(
        Command::new(BINARY)
            .current_dir(&dir)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the example"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut stdout = BufReader::new(stdout);
    let mut banner = String::new();
    stdout.read_line(&mut banner).expect("read the banner");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    assert!(banner.contains("sqlite"), "{banner}");
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the URL")
        .to_owned();
    assert!(
        dir.join("todo.sqlite3").exists(),
        "the SQLite file is created on first run"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bootstrap = |user: &str| {
        let body = runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{url}/sync/bootstrap"))
                .bearer_auth(format!("user:{user}"))
                .send()
                .await
                .expect("bootstrap")
                .text()
                .await
                .expect("body")
        });
        body.lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON line"))
            .collect::<Vec<serde_json::Value>>()
    };
    let lines = bootstrap("alice");
    assert_eq!(
        lines[0]["subscribedSyncGroups"],
        serde_json::json!(["demo", "alice"])
    );
    // alice's private todo is hers alone.
    assert_eq!(
        lines[0]["returnedModelsCount"],
        serde_json::json!({"Label": 2, "Todo": 4, "TodoLabel": 1})
    );
    assert_eq!(lines.len(), 1 + 2 + 4 + 1);
    assert!(lines[1..].iter().all(|row| row["workspaceId"] == "demo"));
    assert!(
        lines
            .iter()
            .any(|row| row["private"] == true && row["owner"] == "alice")
    );
    let lines = bootstrap("bob");
    assert_eq!(
        lines[0]["returnedModelsCount"],
        serde_json::json!({"Label": 2, "Todo": 3, "TodoLabel": 1})
    );
    assert!(lines[1..].iter().all(|row| row["private"] != true));
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
