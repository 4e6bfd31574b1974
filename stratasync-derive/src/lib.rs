//! `#[derive(SyncModel)]`: turns a diesel row struct into a synced model of
//! stratasync. Use it through the `stratasync` crate (`stratasync::SyncModel`).
//!
//! The derive is a small compiler: `attr` parses `#[sync(...)]` into typed
//! structs, `ast` builds a typed model of the struct, `valid` applies the
//! rules that relate attributes and fields (reporting every error of one
//! struct together, through `ctxt`), and only then `expand` generates code.
//! When the input has errors, `fallback` emits them with stub impls, so the
//! user sees the attribute errors and nothing else.
//!
//! # Example
//!
//! ```ignore
//! use chrono::{DateTime, NaiveDate, Utc};
//! use diesel::{Queryable, Selectable};
//! use stratasync::SyncModel;
//! use uuid::Uuid;
//!
//! #[derive(Queryable, Selectable, SyncModel)]
//! #[diesel(table_name = tasks)]
//! #[sync(group = "workspace_id",
//!        actions(insert, update, delete, archive, unarchive),
//!        insert(title, completed_at, due_on, priority, workspace_id, created_at = now),
//!        update(title, completed_at, due_on, priority),
//!        indexed(workspace_id))]
//! pub struct Task {
//!     pub id: Uuid,
//!     pub title: String,
//!     pub completed_at: Option<DateTime<Utc>>,
//!     pub due_on: Option<NaiveDate>,
//!     pub priority: i32,
//!     pub workspace_id: String,
//!     pub created_at: DateTime<Utc>,
//!     pub archived_at: Option<DateTime<Utc>>,
//! }
//! ```
//!
//! (The examples here are compiled by the `tests/ui/pass` suite of the
//! repository, where the diesel `table!`s they name exist.)
//!
//! The struct also derives diesel's `Queryable` and `Selectable` and names
//! its table with `#[diesel(table_name = ...)]`, which the derive reads. A
//! field's column is its name, or its `#[diesel(column_name = ...)]`.
//!
//! # What is generated
//!
//! - `impl stratasync::SyncModel`: the model's metadata (wire name, fields in
//!   declaration order, group, actions, indexed keys), keys and cursors, the
//!   model id (the composite id of PROTOCOL §3 for join tables), the
//!   bootstrap line of a row, decoding of insert and update payloads (a value
//!   of the wrong JSON type fails with an error naming the wire field).
//! - `impl stratasync::DieselModel<Conn>` for every database backend the
//!   `stratasync` crate is built with: scoped and paged loads, counts, group
//!   lookups, insert, update, delete and archive queries.
//!
//! Field codecs follow the Rust type: `String`, `Uuid`, `bool`, `i16`, `i32`,
//! `i64`, `f32`, `f64`, `DateTime<Utc>` (an instant, epoch milliseconds on
//! the wire), `NaiveDate` (date-only, the epoch milliseconds of its UTC
//! midnight), `serde_json::Value` (as is), and `Option` of any of these
//! (`null`). Any other type is a compile error at the field.
//!
//! # Attributes
//!
//! ## Container attributes: `#[sync(...)]` on the struct
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `name = "Task"` | the model's wire name | the struct name |
//! | `group = "workspace_id"` | this column holds the row's sync group | required: one of the three group forms |
//! | `group = self` | the row's own id is its group (users, workspaces) | |
//! | `global` | no group: every user sees every row | |
//! | `move_between_groups` | `update(...)` may list the group column | the group column is not updatable |
//! | `cursor = "created_at"` | bootstrap order (standard models) | `"id"` |
//! | `composite(task_id, label_id)` | a join table identified by these columns | a standard model with an `id` field |
//! | `actions(insert, update, delete, archive, unarchive)` | the mutations the model accepts | none (read-only) |
//! | `insert(title, created_at = now, priority = default)` | the fields an insert reads | none |
//! | `update(title, priority)` | the fields an update may change | none |
//! | `indexed(workspace_id)` | the fields batch loads may select rows by | none |
//! | `load_strategy = "lazy"` | when the TypeScript client loads the rows (its schema's `loadStrategy`) | `"instant"` |
//! | `scope = visible_todos` | a function narrowing which rows of their groups a user reads | every row of the user's groups |
//! | `references(task_id = Task)` | fields holding ids of rows of other models, which must be in the row's group | none |
//! | `crate = ::my::stratasync` | where the runtime crate is | `::stratasync` |
//!
//! **`name`**: `#[sync(name = "Issue")]` syncs `struct IssueRow` as `Issue`.
//!
//! **`group`** (exactly one form is required, so forgetting it is an error
//! rather than a model visible to everyone):
//!
//! ```ignore
//! #[sync(group = "workspace_id")]   // rows of a workspace
//! #[sync(group = self)]             // a Workspace row is its own group
//! #[sync(global)]                   // e.g. a list of countries
//! ```
//!
//! The group column's type must have a canonical string form (`String`,
//! `Uuid`, `i32`, `i64`). An insert without a group value fails with
//! `missing required group identifier`.
//!
//! **`move_between_groups`**: updates may change the group column, which must
//! then be listed in `update(...)`; the server requires the user to hold both
//! the old and the new group.
//!
//! ```ignore
//! #[sync(group = "workspace_id", move_between_groups,
//!        actions(update), update(title, workspace_id))]
//! ```
//!
//! **`cursor`**: the column bootstrap pages by (standard models). It must be
//! NOT NULL and ordered; a cursor other than `id` pages by `(cursor, id)`, so
//! equal values are never skipped. Composite models always page by their key
//! columns.
//!
//! ```ignore
//! #[sync(group = "workspace_id", cursor = "created_at")]
//! ```
//!
//! **`composite(...)`**: a join table with no `id` of its own, identified by
//! two or more key columns. Its wire id is
//! `uuid_v5(ns, "<Name>:[\"<k1>\",\"<k2>\"]")` (PROTOCOL §3) and is written
//! last in bootstrap rows. A composite model accepts only `insert` and
//! `delete`; its key columns are taken from the payload by wire name.
//!
//! ```ignore
//! #[sync(composite(task_id, label_id), group = "workspace_id",
//!        actions(insert, delete), insert(task_id, label_id, workspace_id, created_at = now))]
//! ```
//!
//! **`actions(...)`**: any of `insert`, `update`, `delete`, `archive`,
//! `unarchive`. `archive`/`unarchive` need an
//! `archived_at: Option<DateTime<Utc>>` field. `update` needs `update(...)`
//! and `update(...)` needs `update`; likewise `insert(...)` needs `insert`.
//!
//! **`insert(...)`**: each entry is a field read from the payload through its
//! codec (`title`; absent integers and floats are 0, absent booleans `false`,
//! absent options `null`),
//! or `field = now` (a `DateTime<Utc>` or `Option<DateTime<Utc>>` set to the
//! mutation's time), or `field = default` (`Default::default()`). The `id`
//! of a standard model is the mutation's model id and is not listed; the key
//! columns of a composite model come from the payload either way. With the
//! `insert` action, every field left out must be an `Option` (it is inserted
//! as `NULL`).
//!
//! **`update(...)`**: the fields an update may change. Not the `id`, a key
//! column, or the cursor; the group column only with `move_between_groups`.
//!
//! **`indexed(...)`**: fields a batch load may select rows by (`String`,
//! `Uuid`, `i32` or `i64`).
//!
//! **`load_strategy`**: the model's `loadStrategy` in the generated client
//! schema (`Registry::typescript`): `"instant"` (loaded by the bootstrap),
//! `"lazy"`, `"partial"` or `"explicitlyRequested"`. The client's `"local"`
//! is refused: a local model never reaches the server.
//!
//! **`scope`**: names a function that narrows which rows a user reads, in
//! Rust, checked by the compiler. It receives the request's
//! `FilterContext` (the user, the groups the request reads) and returns a
//! `ReadScope` of the model's diesel table: a boolean expression that works
//! on every backend the `stratasync` crate is built with.
//!
//! ```ignore
//! #[sync(group = "workspace_id", scope = visible_todos, actions(update, delete))]
//! pub struct Todo { /* ... */ }
//!
//! /// Private todos load only for their owner.
//! fn visible_todos(ctx: &FilterContext) -> ReadScope<todos::table> {
//!     ReadScope::new(todos::private.eq(false).or(todos::owner.eq(ctx.user_id.clone())))
//! }
//! ```
//!
//! The scope is ANDed with the group filter: it narrows, never widens. It
//! applies to bootstraps (full and partial), batch loads, and the row
//! lookups of update, delete, archive and unarchive, where a row out of
//! scope is answered like a missing row. Inserts are not scoped, and deltas
//! are still routed by group: every member of a group receives the changes
//! of its rows. A missing function or a wrong signature is a compile error
//! at the path. A `global` model cannot have a scope: its rows and their
//! changes reach every user, so a per-user rule there would look like
//! access control it is not; give such rows a group (`group = self` for rows
//! of one user).
//!
//! **`references(...)`**: each entry names a field and the model whose ids
//! it holds; the referenced rows must be rows of the same group as the row
//! itself. On an insert, and on an update that changes one of the fields (or
//! moves the row), the server checks every reference with one query in the
//! mutation's transaction; a missing row and a row of another group are the
//! same rejection, `Invalid mutation: referenced record not found`. On
//! PostgreSQL the referenced rows stay locked (`FOR SHARE`) until the
//! transaction ends, so a concurrent move of one to another group is ordered
//! after the mutation, or makes it fail; SQLite runs one write at a time.
//! A later write to a row that does not exist (the unlink of a link whose
//! insert was refused), whose payload names a referenced row deleted in a
//! group the caller holds, is answered as a moot success, not refused: a
//! refusal would make the client restore the row it just removed.
//!
//! ```ignore
//! #[sync(composite(todo_id, label_id), group = "workspace_id",
//!        references(todo_id = Todo, label_id = Label),
//!        actions(insert, delete), insert(todo_id, label_id, workspace_id))]
//! ```
//!
//! The field's type must be the referenced model's id type, or an `Option`
//! of it (`None` references nothing). The referenced model must have groups
//! (`group = "..."` or `group = self`), and so must the referencing one.
//! Each of these is a compile error at the attribute or the field.
//!
//! **`crate`**: for crates that re-export stratasync:
//! `#[sync(crate = ::my_app::stratasync)]` (a string is accepted too).
//!
//! ## Field attributes: `#[sync(...)]` on a field
//!
//! | key | meaning |
//! |---|---|
//! | `rename = "dueDate"` | the field's wire name (default: camelCase of the field name) |
//! | `date_only` | asserts the field is a `NaiveDate` / `Option<NaiveDate>` (sent as a UTC-midnight epoch) |
//!
//! ```ignore
//! #[sync(rename = "dueDate", date_only)]
//! pub due_on: Option<NaiveDate>,
//! ```
//!
//! The codec is always chosen by the type; `date_only` only documents and
//! checks that choice. The `id` field always travels as `id`.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod fallback;
mod symbol;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `stratasync::SyncModel` and `stratasync::DieselModel`; see the
/// [crate docs](crate) for the `#[sync(...)]` attributes.
#[proc_macro_derive(SyncModel, attributes(sync))]
pub fn derive_sync_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input).into()
}

fn derive(input: &DeriveInput) -> proc_macro2::TokenStream {
    let cx = ctxt::Ctxt::new();
    let model = ast::Model::from_ast(&cx, input);
    let spec = model.as_ref().and_then(|model| valid::check(&cx, model));
    let krate = model
        .as_ref()
        .and_then(|model| model.attrs.krate.clone())
        .unwrap_or_else(valid::default_crate);
    match (cx.check(), spec) {
        (Ok(()), Some(spec)) => expand::expand(&spec),
        (Err(errors), _) => fallback::expand(input, &krate, &errors),
        (Ok(()), None) => fallback::expand(
            input,
            &krate,
            &[syn::Error::new_spanned(
                &input.ident,
                "internal error in #[derive(SyncModel)]: validation failed without an error",
            )],
        ),
    }
}
