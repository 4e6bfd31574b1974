//! The `stratasync` binary, one test per command, on fresh SQLite files.

use std::path::PathBuf;
use std::process::Command;

use stratasync::{Registry, Store, SyncId};

const BINARY: &str = env!("CARGO_BIN_EXE_stratasync");

/// A fresh database file, removed at the end.
struct Db(PathBuf);

impl Db {
    fn new() -> Db {
        let dir =
            std::env::temp_dir().join(format!("stratasync-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Db(dir)
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.join("sync.sqlite3").display())
    }

    /// Runs the CLI with `args`; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(BINARY)
            .env("DATABASE_URL", self.url())
            .env_remove("REDIS_URL")
            .args(args)
            .output()
            .expect("run the CLI");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.run(args);
        assert!(success, "{args:?} failed: {stderr}");
        stdout
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url(), Registry::new())
            .await
            .expect("store")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn migrate_creates_the_sync_tables_and_may_run_again() {
    let db = Db::new();
    assert!(db.ok(&["migrate"]).contains("sync tables up to date"));
    assert!(db.0.join("sync.sqlite3").exists());
    assert!(db.ok(&["migrate"]).contains("sync tables up to date"));
    assert!(db.ok(&["stats"]).contains("log: 0 actions"));
}

#[tokio::test]
async fn members_add_and_remove_write_the_membership_and_the_g_action() {
    let db = Db::new();
    let added = db.ok(&["members", "add", "alice", "w1"]);
    assert!(added.starts_with("added alice to w1 (G action "), "{added}");
    let store = db.store().await;
    assert_eq!(store.member_groups("alice").await.expect("groups"), ["w1"]);
    let log = store
        .read_actions(SyncId::ZERO, 100, None)
        .await
        .expect("log");
    let g = log.last().expect("the G action");
    assert_eq!(g.action, "G");
    assert_eq!(g.group_id.as_deref(), Some("alice"));
    let data: serde_json::Value = serde_json::from_str(g.data.get()).expect("JSON");
    let groups = data.to_string();
    assert!(
        groups.contains("\"w1\"") && groups.contains("\"alice\""),
        "{data}"
    );

    assert!(
        db.ok(&["members", "add", "alice", "w1"])
            .contains("no change: alice is already in w1")
    );
    let removed = db.ok(&["members", "remove", "alice", "w1"]);
    assert!(
        removed.starts_with("removed alice from w1 (G action "),
        "{removed}"
    );
    assert!(
        store
            .member_groups("alice")
            .await
            .expect("groups")
            .is_empty()
    );
    let log = store
        .read_actions(SyncId::ZERO, 100, None)
        .await
        .expect("log");
    assert_eq!(log.len(), 2);
    assert!(
        !log[1].data.get().contains("\"w1\""),
        "{}",
        log[1].data.get()
    );
}

#[tokio::test]
async fn trim_deletes_below_an_id_or_an_age() {
    let db = Db::new();
    for user in ["alice", "bob", "carol"] {
        db.ok(&["members", "add", user, "w1"]);
    }
    assert_eq!(
        db.ok(&["trim", "--older-than", "1h"]).trim(),
        "trimmed 0 actions"
    );
    assert_eq!(
        db.ok(&["trim", "--before", "3"]).trim(),
        "trimmed 2 actions"
    );
    let bounds = db.store().await.log_bounds().await.expect("bounds");
    assert_eq!(bounds.oldest, Some(SyncId::new(3)));
    let (success, _, stderr) = db.run(&["trim"]);
    assert!(!success);
    assert!(
        stderr.contains("--older-than") && stderr.contains("--before"),
        "{stderr}"
    );
}

#[test]
fn stats_shows_the_log_per_group_the_watermarks_and_the_members() {
    let db = Db::new();
    db.ok(&["members", "add", "alice", "w1"]);
    db.ok(&["members", "add", "bob", "w1"]);
    db.ok(&["trim", "--before", "2"]);
    let stats = db.ok(&["stats"]);
    assert!(stats.contains("log: 1 actions"), "{stats}");
    assert!(stats.contains("group bob: 1 actions, ids 2..=2"), "{stats}");
    assert!(stats.contains("group alice: trimmed through 1"), "{stats}");
    assert!(stats.contains("group w1: 2 members"), "{stats}");
}

#[test]
fn a_database_password_is_not_printed() {
    let output = Command::new(BINARY)
        .args([
            "--database-url",
            "postgres://app:s3cret@127.0.0.1:1/app",
            "migrate",
        ])
        .output()
        .expect("run the CLI");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert!(stderr.contains("app:***@"), "{stderr}");
}
