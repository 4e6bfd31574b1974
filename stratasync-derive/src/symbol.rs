//! The keywords of `#[sync(...)]` (and the few of `#[diesel(...)]` we read),
//! as named constants.

use std::fmt::{self, Display};

use syn::{Ident, Path};

/// A keyword of an attribute.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Symbol(pub &'static str);

/// `#[sync(...)]`
pub const SYNC: Symbol = Symbol("sync");
/// `#[diesel(...)]`
pub const DIESEL: Symbol = Symbol("diesel");
/// `#[diesel(table_name = ...)]`
pub const TABLE_NAME: Symbol = Symbol("table_name");
/// `#[diesel(column_name = ...)]`
pub const COLUMN_NAME: Symbol = Symbol("column_name");

/// `name = "Task"`
pub const NAME: Symbol = Symbol("name");
/// `group = "workspace_id"` / `group = self`
pub const GROUP: Symbol = Symbol("group");
/// `global`
pub const GLOBAL: Symbol = Symbol("global");
/// `move_between_groups`
pub const MOVE_BETWEEN_GROUPS: Symbol = Symbol("move_between_groups");
/// `cursor = "id"`
pub const CURSOR: Symbol = Symbol("cursor");
/// `composite(a, b)`
pub const COMPOSITE: Symbol = Symbol("composite");
/// `actions(...)`
pub const ACTIONS: Symbol = Symbol("actions");
/// `insert(...)`, also the insert action
pub const INSERT: Symbol = Symbol("insert");
/// `update(...)`, also the update action
pub const UPDATE: Symbol = Symbol("update");
/// the delete action
pub const DELETE: Symbol = Symbol("delete");
/// the archive action
pub const ARCHIVE: Symbol = Symbol("archive");
/// the unarchive action
pub const UNARCHIVE: Symbol = Symbol("unarchive");
/// `indexed(...)`
pub const INDEXED: Symbol = Symbol("indexed");
/// `load_strategy = "lazy"`
pub const LOAD_STRATEGY: Symbol = Symbol("load_strategy");
/// `scope = visible_todos`
pub const SCOPE: Symbol = Symbol("scope");
/// `references(task_id = Task)`
pub const REFERENCES: Symbol = Symbol("references");
/// `crate = path`
pub const CRATE: Symbol = Symbol("crate");
/// `insert(created_at = now)`
pub const NOW: Symbol = Symbol("now");
/// `insert(priority = default)`
pub const DEFAULT: Symbol = Symbol("default");

/// field `rename = "wireName"`
pub const RENAME: Symbol = Symbol("rename");
/// field `date_only`
pub const DATE_ONLY: Symbol = Symbol("date_only");

/// The container keys, in the order the error for an unknown key lists them.
pub const CONTAINER_KEYS: &[Symbol] = &[
    NAME,
    GROUP,
    GLOBAL,
    MOVE_BETWEEN_GROUPS,
    CURSOR,
    COMPOSITE,
    ACTIONS,
    INSERT,
    UPDATE,
    INDEXED,
    LOAD_STRATEGY,
    SCOPE,
    REFERENCES,
    CRATE,
];

/// The field keys.
pub const FIELD_KEYS: &[Symbol] = &[RENAME, DATE_ONLY];

/// The actions of `actions(...)`.
pub const ACTION_KEYS: &[Symbol] = &[INSERT, UPDATE, DELETE, ARCHIVE, UNARCHIVE];

/// `` `a`, `b`, `c` `` for an error message.
pub fn list(symbols: &[Symbol]) -> String {
    symbols
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for &Ident {
    fn eq(&self, word: &Symbol) -> bool {
        *self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl Display for Symbol {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.0)
    }
}
