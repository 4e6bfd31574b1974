//! `todo-example codegen`: the committed browser schema is generated from the
//! models, and `--check` catches a model change until the file is regenerated.
#![allow(clippy::unwrap_used)] // a test's unwrap is an assertion

// The example's own models and tables, so that the changed registry below
// differs from the example's by one model alone.
#[allow(dead_code)]
#[path = "../src/models.rs"]
mod models;
#[allow(dead_code)]
#[path = "../src/schema.rs"]
mod schema;

use std::path::{Path, PathBuf};
use std::process::Command;

use stratasync::Registry;
use stratasync::codegen::{self, CodegenError, Outcome};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_todo-example");

/// The generated module the browser demo imports, as committed.
fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web/src/schema.ts")
}

/// Runs `todo-example codegen <args>`; returns (success, stdout + stderr).
fn codegen_command(args: &[&str]) -> (bool, String) {
    let output = Command::new(BINARY)
        .arg("codegen")
        .args(args)
        .output()
        .expect("run the example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn args(path: &Path, check: bool) -> Vec<String> {
    let mut args = vec!["--typescript".to_owned(), path.display().to_string()];
    if check {
        args.push("--check".to_owned());
    }
    args
}

#[test]
fn committed_schema_matches_the_models() {
    let path = committed();
    let (ok, output) = codegen_command(&["--typescript", path.to_str().unwrap(), "--check"]);
    assert!(
        ok,
        "{output}\nregenerate with `cargo run -p todo-example -- codegen --typescript examples/todo/web/src/schema.ts`"
    );
    assert!(output.contains("is up to date"), "{output}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!(
        "export const SCHEMA_HASH = \"{}\";",
        models::registry().schema_hash()
    )));
}

/// The example's `Todo` with one field added: the model change a developer
/// makes before regenerating the client.
mod changed {
    use chrono::{DateTime, NaiveDate, Utc};
    use diesel::{Queryable, Selectable};
    use stratasync::SyncModel;
    use uuid::Uuid;

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        starred_todos (id) {
            id -> PortableUuid,
            title -> Text,
            notes -> Nullable<Text>,
            priority -> Integer,
            estimate -> Nullable<Double>,
            completed_at -> Nullable<Instant>,
            due_on -> Nullable<Date>,
            workspace_id -> Text,
            created_at -> Instant,
            archived_at -> Nullable<Instant>,
            starred -> Bool,
        }
    }

    #[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
    #[diesel(table_name = starred_todos)]
    #[sync(
        name = "Todo",
        group = "workspace_id",
        actions(insert, update, delete, archive, unarchive),
        insert(title, notes, priority, estimate, completed_at, due_on, workspace_id, created_at = now, starred = default),
        update(title, notes, priority, estimate, completed_at, due_on, starred),
        indexed(workspace_id)
    )]
    pub struct Todo {
        pub id: Uuid,
        pub title: String,
        pub notes: Option<String>,
        pub priority: i32,
        pub estimate: Option<f64>,
        pub completed_at: Option<DateTime<Utc>>,
        pub due_on: Option<NaiveDate>,
        pub workspace_id: String,
        pub created_at: DateTime<Utc>,
        pub archived_at: Option<DateTime<Utc>>,
        pub starred: bool,
    }
}

#[test]
fn check_fails_on_a_changed_model_until_regenerated() {
    let dir = std::env::temp_dir().join(format!("todo-codegen-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let scratch = dir.join("schema.ts");
    std::fs::copy(committed(), &scratch).unwrap();
    let changed = Registry::new()
        .model::<models::Label>()
        .model::<changed::Todo>()
        .model::<models::TodoLabel>();
    assert_ne!(changed.schema_hash(), models::registry().schema_hash());

    // The unchanged models accept the copy.
    let report = codegen::run(&models::registry(), args(&scratch, true)).unwrap();
    assert_eq!(report.outcome, Outcome::UpToDate);

    // The changed model does not, and names the file and the new hash.
    let error = codegen::run(&changed, args(&scratch, true)).unwrap_err();
    assert!(matches!(error, CodegenError::Stale { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&scratch.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&changed.schema_hash()), "{message}");

    // Regenerating fixes it: the field is in the schema and the row type.
    let report = codegen::run(&changed, args(&scratch, false)).unwrap();
    assert_eq!(report.outcome, Outcome::Written);
    let report = codegen::run(&changed, args(&scratch, true)).unwrap();
    assert_eq!(report.outcome, Outcome::UpToDate);
    let text = std::fs::read_to_string(&scratch).unwrap();
    assert!(
        text.contains("        starred: { type: \"boolean\" },"),
        "{text}"
    );
    assert!(text.contains("  starred: boolean;"), "{text}");

    // And the example's binary, whose models lack the field, now finds the
    // regenerated file stale.
    let (ok, output) = codegen_command(&["--typescript", scratch.to_str().unwrap(), "--check"]);
    assert!(!ok, "{output}");
    assert!(output.contains("is stale"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_mistakes_say_the_right_form() {
    let (ok, output) = codegen_command(&["--typescript"]);
    assert!(!ok);
    assert!(output.contains("--typescript needs a file"), "{output}");
    assert!(
        output.contains("usage: codegen --typescript <file> [--check]"),
        "{output}"
    );
    let (ok, output) = codegen_command(&["--javascript", "x.js"]);
    assert!(!ok);
    assert!(
        output.contains("unknown argument `--javascript`"),
        "{output}"
    );
}
