//! README's "TypeScript client" section shows the module generated for the
//! README's own model: it must be what `Registry::typescript` renders.
#![allow(clippy::unwrap_used)] // a test's unwrap is an assertion
#![allow(missing_docs)] // the README's model, written as the README writes it

use stratasync::Registry;

/// README's model.
mod readme {
    use chrono::{DateTime, Utc};
    use diesel::{Queryable, Selectable};
    use stratasync::SyncModel;
    use uuid::Uuid;

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        tasks (id) {
            id -> PortableUuid,
            title -> Text,
            workspace_id -> Text,
            created_at -> Instant,
        }
    }

    /// README's `Task`, attribute for attribute.
    #[derive(Queryable, Selectable, SyncModel)]
    #[diesel(table_name = tasks)]
    #[sync(
        group = "workspace_id",
        actions(insert, update, delete),
        insert(title, workspace_id, created_at = now),
        update(title)
    )]
    pub struct Task {
        pub id: Uuid,
        pub title: String,
        pub workspace_id: String,
        pub created_at: DateTime<Utc>,
    }
}

#[test]
fn readme_shows_the_generated_module() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## TypeScript client").unwrap()..];
    let start = section.find("```ts\n").unwrap() + "```ts\n".len();
    let shown = &section[start..start + section[start..].find("```").unwrap()];
    let generated = Registry::new().model::<readme::Task>().typescript();
    assert_eq!(
        shown, generated,
        "update README's TypeScript client section to:\n{generated}"
    );
}
