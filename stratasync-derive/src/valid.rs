//! Cross-attribute rules, turning the parsed [`Model`] into a resolved
//! [`Spec`] that code generation reads without further checks.
//!
//! [`check`] runs one step per concern, in a fixed order (the order of the
//! errors in a compile): the model's name and table, wire names, actions, the
//! key (standard or composite), the group, the cursor, update, archive,
//! insert and indexed fields. Each step records its errors in the [`Ctxt`]
//! and returns what later steps and code generation need; something missing
//! is an `Option`.

use std::collections::HashMap;

use quote::ToTokens;
use syn::{Ident, LitStr, Path};

use crate::ast::{Model, types};
use crate::attr::{ActionName, Fill, GroupAttr, InsertItem};
use crate::ctxt::Ctxt;
use crate::symbol::{ACTIONS, COMPOSITE, GLOBAL, GROUP, INSERT, UPDATE};

/// Standard (own `id`) or composite (join table) model.
pub enum Kind {
    /// Identified by the field at this index, named `id`.
    Standard {
        /// Index of the id field.
        id: usize,
    },
    /// Identified by these key columns.
    Composite {
        /// Indexes of the key fields, in key order.
        keys: Vec<usize>,
    },
}

/// How rows map to groups.
pub enum Group {
    /// A column holds the group.
    Column {
        /// Index of the group field.
        field: usize,
        /// Whether `update(...)` may change it (`move_between_groups`).
        updatable: bool,
    },
    /// The row's own id is its group.
    OwnId,
    /// No group: every user sees every row.
    Global,
}

/// The enabled mutation actions.
#[derive(Default, Clone, Copy)]
pub struct Actions {
    /// `insert`
    pub insert: bool,
    /// `update`
    pub update: bool,
    /// `delete`
    pub delete: bool,
    /// `archive`
    pub archive: bool,
    /// `unarchive`
    pub unarchive: bool,
}

/// Where an insert takes a field's value from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FieldFill {
    /// The model id (standard) or this position of the composite key tuple.
    Key(Option<usize>),
    /// The payload, through the field's codec.
    Payload,
    /// The payload; absent, null or empty is a missing group.
    Group,
    /// The mutation's time.
    Now,
    /// `Default::default()`.
    Default,
    /// `None` (an `Option` field left out of `insert(...)`).
    Null,
}

/// When the TypeScript client loads the model's rows (`load_strategy = "..."`).
#[derive(Clone, Copy)]
pub enum LoadStrategy {
    /// `"instant"`, the default: with the bootstrap.
    Instant,
    /// `"lazy"`: on first access.
    Lazy,
    /// `"partial"`: on demand, partially hydrated.
    Partial,
    /// `"explicitlyRequested"`: when the application asks.
    ExplicitlyRequested,
}

impl LoadStrategy {
    /// The strategies a server model may have, by their client names.
    const ALL: [(&'static str, LoadStrategy); 4] = [
        ("instant", LoadStrategy::Instant),
        ("lazy", LoadStrategy::Lazy),
        ("partial", LoadStrategy::Partial),
        ("explicitlyRequested", LoadStrategy::ExplicitlyRequested),
    ];

    /// The name of the runtime's `LoadStrategy` variant.
    pub fn variant(self) -> &'static str {
        match self {
            LoadStrategy::Instant => "Instant",
            LoadStrategy::Lazy => "Lazy",
            LoadStrategy::Partial => "Partial",
            LoadStrategy::ExplicitlyRequested => "ExplicitlyRequested",
        }
    }
}

/// The load-strategy step: `load_strategy = "..."` names one of the client's
/// strategies that a synced model can have; `instant` when absent.
fn load_strategy(cx: &Ctxt, lit: Option<&LitStr>) -> LoadStrategy {
    let Some(lit) = lit else {
        return LoadStrategy::Instant;
    };
    let value = lit.value();
    if let Some(&(_, strategy)) = LoadStrategy::ALL.iter().find(|(name, _)| *name == value) {
        return strategy;
    }
    let message = if value == "local" {
        "`local` models never leave the client, and this one is synced by the server\n\
         help: use `instant` (the default), `lazy`, `partial` or `explicitlyRequested`, \
         or declare a local-only model in the client alone"
            .to_owned()
    } else {
        format!(
            "unknown load strategy `{value}`\n\
             help: the client's strategies are `instant` (the default), `lazy`, `partial` \
             and `explicitlyRequested`, e.g. `#[sync(load_strategy = \"lazy\")]`"
        )
    };
    cx.error_spanned_by(lit, message);
    LoadStrategy::Instant
}

/// A model that passed every rule: what the code generator needs.
pub struct Spec<'a> {
    /// The parsed input.
    pub model: &'a Model<'a>,
    /// The path of the runtime crate (`::stratasync`).
    pub krate: Path,
    /// The wire name of the model.
    pub name: String,
    /// The diesel table module.
    pub table: Path,
    /// Standard or composite.
    pub kind: Kind,
    /// The group mapping.
    pub group: Group,
    /// The cursor columns, most significant first.
    pub cursor: Vec<usize>,
    /// The enabled actions.
    pub actions: Actions,
    /// Per field (declaration order), where an insert takes its value.
    pub fills: Vec<FieldFill>,
    /// The fields of an insert's sync-action data, in declaration order.
    pub insert_data: Vec<usize>,
    /// The updatable fields, in declaration order.
    pub update: Vec<usize>,
    /// The indexed fields.
    pub indexed: Vec<usize>,
    /// The `archived_at` field when archive actions are enabled.
    pub archived_at: Option<usize>,
    /// When the client loads the rows.
    pub load_strategy: LoadStrategy,
    /// The scope function (`scope = ...`).
    pub scope: Option<Path>,
    /// The referencing fields and the models they reference.
    pub references: Vec<(usize, Path)>,
}

impl Spec<'_> {
    /// The key columns (the id, or the composite key).
    pub fn keys(&self) -> Vec<usize> {
        match &self.kind {
            Kind::Standard { id } => vec![*id],
            Kind::Composite { keys } => keys.clone(),
        }
    }
}

/// The default runtime path.
pub fn default_crate() -> Path {
    syn::parse_quote!(::stratasync)
}

/// Checks every rule, recording errors in `cx`; `None` when any failed.
pub fn check<'a>(cx: &Ctxt, model: &'a Model<'a>) -> Option<Spec<'a>> {
    let fields = Fields::new(cx, model);
    let name = check_name(cx, model);
    let table = check_table(cx, model);
    check_wire_names(cx, model);
    let (actions, tokens) = check_actions(model);
    let key = check_key(cx, model, &fields, &tokens);
    let update = update_fields(model, &fields);
    let group = check_group(cx, model, &fields, &key, &update);
    let cursor = check_cursor(cx, model, &fields, &key);
    check_update(cx, model, &key, &cursor, &group, actions, &tokens);
    let archived_at = check_archive(cx, model, &key, &tokens);
    let (fills, insert_data) = check_insert(cx, model, &fields, &key, &group, actions, &tokens);
    let indexed = check_indexed(model, &fields);
    let load_strategy = load_strategy(cx, model.attrs.load_strategy.as_ref());
    let scope = check_scope(cx, model, &group);
    let references = check_references(cx, model, &fields, &group);

    if cx.has_errors() {
        return None;
    }
    Some(Spec {
        model,
        krate: model.attrs.krate.clone().unwrap_or_else(default_crate),
        name,
        table: table?,
        kind: key.into_kind()?,
        group,
        cursor,
        actions,
        fills,
        insert_data,
        update,
        indexed,
        archived_at,
        load_strategy,
        scope,
        references,
    })
}

/// Finds fields by name, reporting unknown names with the list of fields.
struct Fields<'c, 'a> {
    cx: &'c Ctxt,
    model: &'a Model<'a>,
    /// The field names, for the `help:` of an unknown one.
    names: String,
}

impl<'c, 'a> Fields<'c, 'a> {
    fn new(cx: &'c Ctxt, model: &'a Model<'a>) -> Self {
        let names = model
            .fields
            .iter()
            .map(|f| format!("`{}`", f.ident))
            .collect::<Vec<_>>()
            .join(", ");
        Fields { cx, model, names }
    }

    /// The index of field `name`; an error at `name` when there is none.
    fn find(&self, name: &Ident) -> Option<usize> {
        let found = self.model.field(name);
        if found.is_none() {
            let ident = self.model.ident;
            self.cx.error_spanned_by(
                name,
                format!(
                    "`{ident}` has no field `{name}`\nhelp: the fields are {}",
                    self.names
                ),
            );
        }
        found
    }

    /// The indexes of `names`, each once; a repeated one is an error naming
    /// `list` (`update(...)`, `indexed(...)`).
    fn find_all(&self, names: &[Ident], list: &str) -> Vec<usize> {
        let mut indexes = Vec::new();
        for name in names {
            if let Some(index) = self.find(name) {
                if indexes.contains(&index) {
                    self.cx.error_spanned_by(
                        name,
                        format!("field `{name}` is listed twice in `{list}(...)`"),
                    );
                } else {
                    indexes.push(index);
                }
            }
        }
        indexes
    }
}

/// The tokens naming each enabled action, for errors about them.
type ActionTokens<'a> = HashMap<&'static str, &'a Ident>;

/// How a row is identified, as far as the attributes say.
struct Key {
    /// A join table identified by key columns.
    composite: bool,
    /// The key columns: the `id` field, or the composite key in key order.
    /// Empty for a standard model without an `id` field.
    columns: Vec<usize>,
}

impl Key {
    /// The `id` field of a standard model, when it has one.
    fn id(&self) -> Option<usize> {
        match self.columns[..] {
            [id] if !self.composite => Some(id),
            _ => None,
        }
    }

    /// The resolved kind; `None` for a standard model without `id`.
    fn into_kind(self) -> Option<Kind> {
        if self.composite {
            Some(Kind::Composite { keys: self.columns })
        } else {
            self.id().map(|id| Kind::Standard { id })
        }
    }
}

/// The wire name of the model: `name = "..."` or the struct's name.
fn check_name(cx: &Ctxt, model: &Model) -> String {
    match &model.attrs.name {
        Some(lit) if lit.value().is_empty() => {
            cx.error_spanned_by(
                lit,
                "the model name cannot be empty: clients look models up by it\n\
                 help: the correct form is `#[sync(name = \"Task\")]`, or leave `name` out to use the struct name",
            );
            String::new()
        }
        Some(lit) => lit.value(),
        None => model.ident.to_string(),
    }
}

/// The diesel table, from `#[diesel(table_name = ...)]`.
fn check_table(cx: &Ctxt, model: &Model) -> Option<Path> {
    let table = model.attrs.table_name.clone();
    if table.is_none() {
        let ident = model.ident;
        cx.error_spanned_by(
            ident,
            format!(
                "`{ident}` has no `#[diesel(table_name = ...)]`: #[derive(SyncModel)] reads the table from it\n\
                 help: add `#[diesel(table_name = tasks)]` naming the module of the diesel `table!`"
            ),
        );
    }
    table
}

/// Wire names are non-empty and unique; `date_only` is on date fields.
fn check_wire_names(cx: &Ctxt, model: &Model) {
    let mut wires: HashMap<&str, usize> = HashMap::new();
    for (index, field) in model.fields.iter().enumerate() {
        if let Some(lit) = &field.attrs.rename
            && lit.value().is_empty()
        {
            cx.error_spanned_by(
                lit,
                "a wire name cannot be empty\nhelp: the correct form is `#[sync(rename = \"dueOn\")]`",
            );
            continue;
        }
        if let Some(first) = wires.insert(&field.wire, index) {
            let at: &dyn ToTokens = match &field.attrs.rename {
                Some(lit) => lit,
                None => field.ident,
            };
            cx.error_spanned_by(
                at,
                format!(
                    "fields `{}` and `{}` both travel as `{}` on the wire\n\
                     help: give one of them another name with `#[sync(rename = \"...\")]`",
                    model.fields[first].ident, field.ident, field.wire
                ),
            );
        }
        if let Some(span) = field.attrs.date_only {
            let ty = types::option_inner(field.ty).unwrap_or(field.ty);
            if !types::is_date(ty) {
                cx.error_at(
                    span,
                    format!(
                        "`date_only` applies to `NaiveDate` and `Option<NaiveDate>` fields; `{}` is `{}`\n\
                         help: codecs follow the field type: make the field a `chrono::NaiveDate` \
                         to send it as a UTC-midnight epoch, or remove `date_only`",
                        field.ident,
                        types::display(field.ty)
                    ),
                );
            }
        }
    }
}

/// The enabled actions, and the token naming each.
fn check_actions<'a>(model: &'a Model<'a>) -> (Actions, ActionTokens<'a>) {
    let mut actions = Actions::default();
    let mut tokens = ActionTokens::new();
    if let Some((_, list)) = &model.attrs.actions {
        for (action, token) in list {
            let (slot, key) = match action {
                ActionName::Insert => (&mut actions.insert, "insert"),
                ActionName::Update => (&mut actions.update, "update"),
                ActionName::Delete => (&mut actions.delete, "delete"),
                ActionName::Archive => (&mut actions.archive, "archive"),
                ActionName::Unarchive => (&mut actions.unarchive, "unarchive"),
            };
            *slot = true;
            tokens.insert(key, token);
        }
    }
    (actions, tokens)
}

/// Standard (an `id` field) or composite (`composite(...)` key columns).
fn check_key(cx: &Ctxt, model: &Model, fields: &Fields, tokens: &ActionTokens) -> Key {
    let Some((span, keys)) = &model.attrs.composite else {
        return Key {
            composite: false,
            columns: standard_id(cx, model).into_iter().collect(),
        };
    };
    let mut columns: Vec<usize> = Vec::new();
    for key in keys {
        if let Some(index) = fields.find(key) {
            if columns.contains(&index) {
                cx.error_spanned_by(key, format!("key column `{key}` is listed twice"));
            } else {
                columns.push(index);
            }
        }
    }
    if keys.len() < 2 {
        cx.error_at(
            *span,
            "`composite(...)` needs at least two key columns\n\
             help: the correct form is `#[sync(composite(task_id, label_id))]`; a model with one \
             key column is a standard model whose key field is named `id`",
        );
    }
    if let Some(index) = model.fields.iter().position(|f| f.wire == "id") {
        cx.error_spanned_by(
            model.fields[index].ident,
            "a composite model's wire `id` is computed from its key columns, so no field may \
             travel as `id`\nhelp: rename the field with `#[sync(rename = \"...\")]`",
        );
    }
    for (key, what) in [
        ("update", "updated"),
        ("archive", "archived"),
        ("unarchive", "unarchived"),
    ] {
        if let Some(token) = tokens.get(key) {
            cx.error_spanned_by(
                token,
                format!(
                    "a composite model's rows are only inserted and deleted, never {what}\n\
                     help: the correct form is `#[sync(actions(insert, delete))]`"
                ),
            );
        }
    }
    Key {
        composite: true,
        columns,
    }
}

/// The `id` field of a standard model, which travels as `id`.
fn standard_id(cx: &Ctxt, model: &Model) -> Option<usize> {
    let ident = model.ident;
    let Some(id) = model.fields.iter().position(|f| f.ident == "id") else {
        if !model.attrs.is_broken(COMPOSITE) {
            cx.error_spanned_by(
                ident,
                format!(
                    "`{ident}` has no `id` field: a standard model is identified by its `id` column\n\
                     help: add a field such as `pub id: Uuid`, or declare a join table with \
                     `#[sync(composite(task_id, label_id))]`"
                ),
            );
        }
        return None;
    };
    if let Some(lit) = &model.fields[id].attrs.rename
        && lit.value() != "id"
        && !lit.value().is_empty()
    {
        cx.error_spanned_by(
            lit,
            "the `id` field always travels as `id`: clients key rows by it\n\
             help: remove the `rename`",
        );
    }
    Some(id)
}

/// The fields `update(...)` lists (resolved before the group: whether the
/// group column is updatable depends on them).
fn update_fields(model: &Model, fields: &Fields) -> Vec<usize> {
    match &model.attrs.update {
        Some((_, names)) => fields.find_all(names, "update"),
        None => Vec::new(),
    }
}

/// The group mapping: a column, the row's own id, or global.
fn check_group(cx: &Ctxt, model: &Model, fields: &Fields, key: &Key, update: &[usize]) -> Group {
    let attrs = &model.attrs;
    let ident = model.ident;
    let group = match (&attrs.group, attrs.global) {
        (Some(_), Some(global)) => {
            cx.error_at(
                global,
                "`global` contradicts `group`: a model's rows either belong to groups or are visible to everyone\n\
                 help: keep one of `#[sync(group = \"workspace_id\")]` and `#[sync(global)]`",
            );
            Group::Global
        }
        (Some(GroupAttr::Column(column)), None) => match fields.find(column) {
            Some(field) => Group::Column {
                field,
                updatable: attrs.move_between_groups.is_some() && update.contains(&field),
            },
            None => Group::Global,
        },
        (Some(GroupAttr::OwnId(span)), None) => {
            if key.composite {
                cx.error_at(
                    *span,
                    "`group = self` makes a row's own id its group, but a composite model has no own id\n\
                     help: name the group column: `#[sync(group = \"workspace_id\")]`",
                );
            }
            Group::OwnId
        }
        (None, Some(_)) => Group::Global,
        (None, None) if attrs.is_broken(GROUP) || attrs.is_broken(GLOBAL) => Group::Global,
        (None, None) => {
            cx.error_spanned_by(
                ident,
                format!(
                    "`{ident}` does not say which sync group its rows belong to\n\
                     help: add `#[sync(group = \"workspace_id\")]` (a column holds the group), \
                     `#[sync(group = self)]` (the row's own id is its group) or `#[sync(global)]` \
                     (every user sees every row)"
                ),
            );
            Group::Global
        }
    };
    if let Some(span) = attrs.move_between_groups
        && !matches!(
            group,
            Group::Column {
                updatable: true,
                ..
            }
        )
    {
        cx.error_at(
            span,
            "`move_between_groups` lets `update(...)` change the group column, but `update(...)` \
             does not list it\nhelp: add the group column to `update(...)`, or remove `move_between_groups`",
        );
    }
    group
}

/// The scope function: only on a model with groups. A global model's rows
/// are the same for every user and every change to them reaches every user,
/// so a per-user scope there would look like access control it is not; rows
/// whose visibility depends on the user belong to a group.
fn check_scope(cx: &Ctxt, model: &Model, group: &Group) -> Option<Path> {
    let scope = model.attrs.scope.as_ref()?;
    if matches!(group, Group::Global) && model.attrs.global.is_some() {
        cx.error_spanned_by(
            scope,
            "`scope` narrows what each user reads of their groups, and a `global` model has no \
             groups: its rows and every change to them reach every user\n\
             help: give the model a group: `#[sync(group = \"workspace_id\", scope = visible_todos)]` \
             (or `group = self` for rows of one user), or remove `scope`",
        );
    }
    Some(scope.clone())
}

/// The fields of `references(...)`, each once, on a model with groups (the
/// referenced rows must be in the row's group). Whether each referenced
/// model has groups and whether the field can hold its id is left to rustc
/// (see `expand::assertions`).
fn check_references(
    cx: &Ctxt,
    model: &Model,
    fields: &Fields,
    group: &Group,
) -> Vec<(usize, Path)> {
    let Some((span, entries)) = &model.attrs.references else {
        return Vec::new();
    };
    if matches!(group, Group::Global) && model.attrs.global.is_some() {
        cx.error_at(
            *span,
            "`references(...)` keeps references within the row's group, and a `global` model's \
             rows have no group\n\
             help: give the model a group: `#[sync(group = \"workspace_id\", references(task_id = Task))]`, \
             or remove `references(...)`",
        );
    }
    let names: Vec<Ident> = entries.iter().map(|entry| entry.field.clone()).collect();
    fields
        .find_all(&names, "references")
        .into_iter()
        .filter_map(|index| {
            let entry = entries
                .iter()
                .find(|e| model.fields[index].ident == &e.field)?;
            Some((index, entry.model.clone()))
        })
        .collect()
}

/// The group column, when a column holds the group.
fn group_field(group: &Group) -> Option<usize> {
    match group {
        Group::Column { field, .. } => Some(*field),
        _ => None,
    }
}

/// The bootstrap cursor: the key, or `cursor = ...` then the `id`.
fn check_cursor(cx: &Ctxt, model: &Model, fields: &Fields, key: &Key) -> Vec<usize> {
    let mut cursor = key.columns.clone();
    let Some(column) = &model.attrs.cursor else {
        return cursor;
    };
    if key.composite {
        cx.error_spanned_by(
            column,
            "a composite model pages by its key columns; it cannot take a `cursor`\n\
             help: remove `cursor = ...`",
        );
    } else if let Some(index) = fields.find(column) {
        if types::option_inner(model.fields[index].ty).is_some() {
            cx.error_spanned_by(
                model.fields[index].ty,
                "a cursor column cannot be nullable: rows with NULL would never be paged\n\
                 help: pick a NOT NULL column such as `id` or `created_at`",
            );
        }
        if let Some(id) = key.id() {
            cursor = if index == id {
                vec![id]
            } else {
                vec![index, id]
            };
        }
    }
    cursor
}

/// What `update(...)` may list, and that it goes with the `update` action.
fn check_update(
    cx: &Ctxt,
    model: &Model,
    key: &Key,
    cursor: &[usize],
    group: &Group,
    actions: Actions,
    tokens: &ActionTokens,
) {
    let attrs = &model.attrs;
    let composite = key.composite;
    if let Some((span, fields)) = &attrs.update {
        let mut key_errors = false;
        for field in fields {
            let Some(index) = model.field(field) else {
                continue;
            };
            if key.columns.contains(&index) {
                key_errors = true;
                cx.error_spanned_by(
                    field,
                    if composite {
                        format!(
                            "`{field}` is a composite key column: it identifies the row and cannot be updated\n\
                             help: remove `update(...)`; a composite model's rows are only inserted and deleted"
                        )
                    } else {
                        "the `id` identifies the row and cannot be updated\nhelp: remove it from `update(...)`"
                            .to_owned()
                    },
                );
            } else if cursor.contains(&index) {
                cx.error_spanned_by(
                    field,
                    format!(
                        "`{field}` is the cursor column: updating it would move the row in bootstrap order\n\
                         help: remove it from `update(...)`, or page by another column"
                    ),
                );
            } else if Some(index) == group_field(group) && attrs.move_between_groups.is_none() {
                cx.error_spanned_by(
                    field,
                    format!(
                        "`{field}` is the group column: updating it moves the row to another group\n\
                         help: allow it explicitly with `#[sync(move_between_groups)]`; the server then \
                         requires the user to hold both the old and the new group"
                    ),
                );
            }
        }
        if composite {
            if !key_errors {
                cx.error_at(
                    *span,
                    "a composite model's rows are only inserted and deleted, so it has no `update(...)`\n\
                     help: remove `update(...)`",
                );
            }
        } else if !actions.update && !attrs.is_broken(ACTIONS) {
            cx.error_at(
                *span,
                "`update(...)` lists updatable fields, but `actions(...)` does not enable `update`\n\
                 help: add it: `#[sync(actions(insert, update, delete))]`",
            );
        }
    } else if let Some(token) = tokens.get("update")
        && !composite
        && !attrs.is_broken(UPDATE)
    {
        cx.error_spanned_by(
            token,
            "the `update` action needs the fields it may change\n\
             help: add them: `#[sync(update(title, priority))]`",
        );
    }
    if actions.update && !composite && attrs.update.as_ref().is_some_and(|(_, f)| f.is_empty()) {
        cx.error_spanned_by(
            tokens["update"],
            "the `update` action needs the fields it may change, but `update()` is empty\n\
             help: the correct form is `#[sync(update(title, priority))]`",
        );
    }
}

/// The `archived_at` field the `archive` and `unarchive` actions set; a
/// problem with it is reported once, at the first of them.
fn check_archive(cx: &Ctxt, model: &Model, key: &Key, tokens: &ActionTokens) -> Option<usize> {
    if key.composite {
        return None;
    }
    let (action, token) = ["archive", "unarchive"]
        .into_iter()
        .find_map(|action| tokens.get(action).map(|token| (action, token)))?;
    let Some(index) = model.fields.iter().position(|f| f.ident == "archived_at") else {
        let ident = model.ident;
        cx.error_spanned_by(
            token,
            format!(
                "the `{action}` action sets the row's `archived_at`, but `{ident}` has no such field\n\
                 help: add `pub archived_at: Option<DateTime<Utc>>` (and the column)"
            ),
        );
        return None;
    };
    let ty = model.fields[index].ty;
    if !types::option_inner(ty).is_some_and(types::is_instant) {
        cx.error_spanned_by(
            ty,
            format!(
                "`archived_at` must be `Option<DateTime<Utc>>` for the `{action}` action: \
                 it holds when the row was archived, or NULL"
            ),
        );
    }
    Some(index)
}

/// Where an insert takes each field's value, and the fields of its action
/// data; every non-`Option` field must get a value.
fn check_insert(
    cx: &Ctxt,
    model: &Model,
    fields: &Fields,
    key: &Key,
    group: &Group,
    actions: Actions,
    tokens: &ActionTokens,
) -> (Vec<FieldFill>, Vec<usize>) {
    let attrs = &model.attrs;
    let id = key.id();
    let mut fills = vec![FieldFill::Null; model.fields.len()];
    let mut listed = vec![false; model.fields.len()];
    if let Some((span, items)) = &attrs.insert {
        if !actions.insert && !attrs.is_broken(ACTIONS) {
            cx.error_at(
                *span,
                "`insert(...)` lists insert fields, but `actions(...)` does not enable `insert`\n\
                 help: add it: `#[sync(actions(insert, delete))]`",
            );
        }
        for item in items {
            let Some(index) = fields.find(&item.field) else {
                continue;
            };
            if listed[index] {
                cx.error_spanned_by(
                    &item.field,
                    format!("field `{}` is listed twice in `insert(...)`", item.field),
                );
                continue;
            }
            listed[index] = true;
            if Some(index) == id {
                cx.error_spanned_by(
                    &item.field,
                    "the `id` of an insert is the mutation's model id; it is not an insert field\n\
                     help: remove `id` from `insert(...)`",
                );
                continue;
            }
            fills[index] = insert_fill(cx, model, index, item, group);
        }
    }
    for (position, &index) in key.columns.iter().enumerate() {
        fills[index] = FieldFill::Key(key.composite.then_some(position));
        listed[index] = true;
    }
    let missing: Vec<usize> = (0..model.fields.len())
        .filter(|&index| !listed[index] && types::option_inner(model.fields[index].ty).is_none())
        .collect();
    if actions.insert && !missing.is_empty() && !attrs.is_broken(INSERT) {
        report_missing_insert_fields(cx, model, &missing, tokens);
    }
    let insert_data = id
        .into_iter()
        .chain(
            listed
                .iter()
                .enumerate()
                .filter(|&(index, &listed)| listed && Some(index) != id)
                .map(|(index, _)| index),
        )
        .collect();
    (fills, insert_data)
}

/// Where an insert takes field `index`'s value, listed as `item`.
fn insert_fill(
    cx: &Ctxt,
    model: &Model,
    index: usize,
    item: &InsertItem,
    group: &Group,
) -> FieldFill {
    let field = &model.fields[index];
    match item.fill {
        Fill::Payload if Some(index) == group_field(group) => FieldFill::Group,
        Fill::Payload => FieldFill::Payload,
        Fill::Default => FieldFill::Default,
        Fill::Now => {
            let ty = types::option_inner(field.ty).unwrap_or(field.ty);
            if !types::is_instant(ty) {
                let at: &dyn ToTokens = match &item.fill_token {
                    Some(token) => token,
                    None => &item.field,
                };
                cx.error_spanned_by(
                    at,
                    format!(
                        "`now` fills timestamp fields (`DateTime<Utc>` or `Option<DateTime<Utc>>`), \
                         but `{}` is `{}`\nhelp: use `{} = default`, or list it alone to read it from the payload",
                        field.ident,
                        types::display(field.ty),
                        field.ident
                    ),
                );
            }
            FieldFill::Now
        }
    }
}

/// The non-`Option` fields an insert would leave without a value.
fn report_missing_insert_fields(
    cx: &Ctxt,
    model: &Model,
    missing: &[usize],
    tokens: &ActionTokens,
) {
    if model.attrs.insert.is_none() {
        let names = missing
            .iter()
            .map(|&i| format!("`{}`", model.fields[i].ident))
            .collect::<Vec<_>>()
            .join(", ");
        cx.error_spanned_by(
            tokens["insert"],
            format!(
                "the `insert` action needs `insert(...)`: without it {names} would have no value\n\
                 help: list the fields an insert reads, e.g. \
                 `#[sync(insert(title, workspace_id, created_at = now, priority = default))]`"
            ),
        );
        return;
    }
    for &index in missing {
        let field = &model.fields[index];
        cx.error_spanned_by(
            field.ident,
            format!(
                "field `{0}` has no value on insert: it is not in `insert(...)` and is not an `Option`\n\
                 help: list it in `insert(...)`: `{0}` (read from the payload), `{0} = default` \
                 or, for a timestamp, `{0} = now`; or make it an `Option<_>`",
                field.ident
            ),
        );
    }
}

/// The fields `indexed(...)` lists.
fn check_indexed(model: &Model, fields: &Fields) -> Vec<usize> {
    match &model.attrs.indexed {
        Some(names) => fields.find_all(names, "indexed"),
        None => Vec::new(),
    }
}
