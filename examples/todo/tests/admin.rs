//! The example's admin routes authenticate with the sync auth (`Caller`)
//! and require a member of the admin group.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_todo-example");

/// Kills the child and removes its directory when the test ends.
struct Running {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the example on SQLite with the admin routes; returns it and its URL.
fn start_with_admin_routes() -> (Running, String) {
    let dir = std::env::temp_dir().join(format!("todo-admin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let child = Command::new(BINARY)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("BIND", "127.0.0.1:0")
        .env("TODO_ADMIN", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    let mut running = Running { child, dir };
    let stdout = running.child.stdout.take().expect("stdout");
    let mut stdout = BufReader::new(stdout);
    let mut banner = String::new();
    stdout.read_line(&mut banner).expect("read the banner");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the URL in the banner")
        .to_owned();
    (running, url)
}

/// `POST {url}/admin/memberships` adding carol to the demo workspace, with
/// `token` when given; returns (status, JSON body).
async fn add_carol(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/admin/memberships"))
        .json(&json!({ "userId": "carol", "groupId": "demo" }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[test]
fn admin_routes_require_a_caller_of_the_admin_group() {
    let (_running, url) = start_with_admin_routes();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (status, body) = add_carol(&url, None).await;
        assert_eq!(
            (status, body),
            (401, json!({ "error": "Authorization header required" }))
        );
        let (status, body) = add_carol(&url, Some("nonsense")).await;
        assert_eq!((status, body), (401, json!({ "error": "Invalid token" })));
        // A user named like the admin group does not hold it.
        let (status, body) = add_carol(&url, Some("user:admins")).await;
        assert_eq!((status, body), (401, json!({ "error": "Invalid token" })));

        let (status, body) = add_carol(&url, Some("user:alice")).await;
        assert_eq!(status, 403, "{body}");

        let (status, body) = add_carol(&url, Some("user:admin")).await;
        assert_eq!((status, body), (200, json!({ "changed": true })));

        // Carol now reads the workspace.
        let bootstrap = reqwest::Client::new()
            .get(format!("{url}/sync/bootstrap"))
            .bearer_auth("user:carol")
            .send()
            .await
            .expect("bootstrap")
            .text()
            .await
            .expect("bootstrap body");
        let meta: Value =
            serde_json::from_str(bootstrap.lines().next().expect("a first line")).expect("JSON");
        assert_eq!(meta["subscribedSyncGroups"], json!(["demo", "carol"]));
    });
}
