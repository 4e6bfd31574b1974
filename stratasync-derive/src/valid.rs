//! Cross-attribute rules, turning the parsed [`Model`] into a resolved
//! [`Spec`] that code generation reads without further checks.

use std::collections::HashMap;

use quote::ToTokens;
use syn::{Ident, LitStr, Path};

use crate::ast::{Model, types};
use crate::attr::{ActionName, Fill, GroupAttr};
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
    let attrs = &model.attrs;
    let ident = model.ident;
    let field_names = model
        .fields
        .iter()
        .map(|f| format!("`{}`", f.ident))
        .collect::<Vec<_>>()
        .join(", ");
    let find = |name: &Ident| -> Option<usize> {
        let found = model.field(name);
        if found.is_none() {
            cx.error_spanned_by(
                name,
                format!("`{ident}` has no field `{name}`\nhelp: the fields are {field_names}"),
            );
        }
        found
    };

    // The model name.
    let name = match &attrs.name {
        Some(lit) if lit.value().is_empty() => {
            cx.error_spanned_by(
                lit,
                "the model name cannot be empty: clients look models up by it\n\
                 help: the correct form is `#[sync(name = \"Task\")]`, or leave `name` out to use the struct name",
            );
            String::new()
        }
        Some(lit) => lit.value(),
        None => ident.to_string(),
    };

    // The table.
    let table = attrs.table_name.clone();
    if table.is_none() {
        cx.error_spanned_by(
            ident,
            format!(
                "`{ident}` has no `#[diesel(table_name = ...)]`: #[derive(SyncModel)] reads the table from it\n\
                 help: add `#[diesel(table_name = tasks)]` naming the module of the diesel `table!`"
            ),
        );
    }

    // Wire names.
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

    // Actions.
    let mut actions = Actions::default();
    let mut action_tokens: HashMap<&'static str, &Ident> = HashMap::new();
    if let Some((_, list)) = &attrs.actions {
        for (action, token) in list {
            let (slot, key) = match action {
                ActionName::Insert => (&mut actions.insert, "insert"),
                ActionName::Update => (&mut actions.update, "update"),
                ActionName::Delete => (&mut actions.delete, "delete"),
                ActionName::Archive => (&mut actions.archive, "archive"),
                ActionName::Unarchive => (&mut actions.unarchive, "unarchive"),
            };
            *slot = true;
            action_tokens.insert(key, token);
        }
    }

    // Standard or composite.
    let kind = match &attrs.composite {
        Some((span, keys)) => {
            let mut indexes: Vec<usize> = Vec::new();
            for key in keys {
                if let Some(index) = find(key) {
                    if indexes.contains(&index) {
                        cx.error_spanned_by(key, format!("key column `{key}` is listed twice"));
                    } else {
                        indexes.push(index);
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
                if let Some(token) = action_tokens.get(key) {
                    cx.error_spanned_by(
                        token,
                        format!(
                            "a composite model's rows are only inserted and deleted, never {what}\n\
                             help: the correct form is `#[sync(actions(insert, delete))]`"
                        ),
                    );
                }
            }
            Kind::Composite { keys: indexes }
        }
        None => match model.fields.iter().position(|f| f.ident == "id") {
            Some(id) => {
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
                Kind::Standard { id }
            }
            None if attrs.is_broken(COMPOSITE) => Kind::Standard { id: usize::MAX },
            None => {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "`{ident}` has no `id` field: a standard model is identified by its `id` column\n\
                         help: add a field such as `pub id: Uuid`, or declare a join table with \
                         `#[sync(composite(task_id, label_id))]`"
                    ),
                );
                Kind::Standard { id: usize::MAX }
            }
        },
    };
    let composite = matches!(kind, Kind::Composite { .. });
    let id_index = match kind {
        Kind::Standard { id } if id != usize::MAX => Some(id),
        _ => None,
    };
    let key_indexes = match &kind {
        Kind::Standard { id } => vec![*id],
        Kind::Composite { keys } => keys.clone(),
    };

    // Update fields (resolved early: the group rule needs them).
    let mut update = Vec::new();
    if let Some((_, fields)) = &attrs.update {
        for field in fields {
            if let Some(index) = find(field) {
                if update.contains(&index) {
                    cx.error_spanned_by(
                        field,
                        format!("field `{field}` is listed twice in `update(...)`"),
                    );
                } else {
                    update.push(index);
                }
            }
        }
    }

    // The group.
    let group = match (&attrs.group, attrs.global) {
        (Some(_), Some(global)) => {
            cx.error_at(
                global,
                "`global` contradicts `group`: a model's rows either belong to groups or are visible to everyone\n\
                 help: keep one of `#[sync(group = \"workspace_id\")]` and `#[sync(global)]`",
            );
            Group::Global
        }
        (Some(GroupAttr::Column(column)), None) => match find(column) {
            Some(field) => Group::Column {
                field,
                updatable: attrs.move_between_groups.is_some() && update.contains(&field),
            },
            None => Group::Global,
        },
        (Some(GroupAttr::OwnId(span)), None) => {
            if composite {
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
    let group_field = match group {
        Group::Column { field, .. } => Some(field),
        _ => None,
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

    // The cursor.
    let mut cursor = key_indexes.clone();
    if let Some(column) = &attrs.cursor {
        if composite {
            cx.error_spanned_by(
                column,
                "a composite model pages by its key columns; it cannot take a `cursor`\n\
                 help: remove `cursor = ...`",
            );
        } else if let Some(index) = find(column) {
            if types::option_inner(model.fields[index].ty).is_some() {
                cx.error_spanned_by(
                    model.fields[index].ty,
                    "a cursor column cannot be nullable: rows with NULL would never be paged\n\
                     help: pick a NOT NULL column such as `id` or `created_at`",
                );
            }
            if let Some(id) = id_index {
                cursor = if index == id {
                    vec![id]
                } else {
                    vec![index, id]
                };
            }
        }
    }

    // Update rules.
    if let Some((span, fields)) = &attrs.update {
        let mut key_errors = false;
        for field in fields {
            let Some(index) = model.field(field) else {
                continue;
            };
            if key_indexes.contains(&index) {
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
            } else if Some(index) == group_field && attrs.move_between_groups.is_none() {
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
    } else if let Some(token) = action_tokens.get("update")
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
            action_tokens["update"],
            "the `update` action needs the fields it may change, but `update()` is empty\n\
             help: the correct form is `#[sync(update(title, priority))]`",
        );
    }

    // Archive.
    let mut archived_at = None;
    for key in ["archive", "unarchive"] {
        let Some(token) = action_tokens.get(key) else {
            continue;
        };
        if composite {
            continue;
        }
        match model.fields.iter().position(|f| f.ident == "archived_at") {
            Some(index) => {
                let ty = model.fields[index].ty;
                let ok = types::option_inner(ty).is_some_and(types::is_instant);
                if !ok && archived_at.is_none() {
                    cx.error_spanned_by(
                        ty,
                        format!(
                            "`archived_at` must be `Option<DateTime<Utc>>` for the `{key}` action: \
                             it holds when the row was archived, or NULL"
                        ),
                    );
                }
                archived_at = Some(index);
            }
            None if archived_at.is_none() => {
                archived_at = Some(usize::MAX);
                cx.error_spanned_by(
                    token,
                    format!(
                        "the `{key}` action sets the row's `archived_at`, but `{ident}` has no such field\n\
                         help: add `pub archived_at: Option<DateTime<Utc>>` (and the column)"
                    ),
                );
            }
            None => {}
        }
    }
    let archived_at = archived_at.filter(|i| *i != usize::MAX);

    // Insert.
    let mut fills = vec![FieldFill::Null; model.fields.len()];
    let mut listed = vec![false; model.fields.len()];
    let mut insert_data = Vec::new();
    if let Some((span, items)) = &attrs.insert {
        if !actions.insert && !attrs.is_broken(ACTIONS) {
            cx.error_at(
                *span,
                "`insert(...)` lists insert fields, but `actions(...)` does not enable `insert`\n\
                 help: add it: `#[sync(actions(insert, delete))]`",
            );
        }
        for item in items {
            let Some(index) = find(&item.field) else {
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
            let field = &model.fields[index];
            if Some(index) == id_index {
                cx.error_spanned_by(
                    &item.field,
                    "the `id` of an insert is the mutation's model id; it is not an insert field\n\
                     help: remove `id` from `insert(...)`",
                );
                continue;
            }
            fills[index] = match item.fill {
                Fill::Payload if Some(index) == group_field => FieldFill::Group,
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
            };
        }
    }
    for (position, &index) in key_indexes.iter().enumerate() {
        if index < fills.len() {
            fills[index] = FieldFill::Key(composite.then_some(position));
            listed[index] = true;
        }
    }
    let missing: Vec<usize> = (0..model.fields.len())
        .filter(|&index| !listed[index] && types::option_inner(model.fields[index].ty).is_none())
        .collect();
    if actions.insert && !missing.is_empty() && !attrs.is_broken(INSERT) {
        if attrs.insert.is_none() {
            let names = missing
                .iter()
                .map(|&i| format!("`{}`", model.fields[i].ident))
                .collect::<Vec<_>>()
                .join(", ");
            cx.error_spanned_by(
                action_tokens["insert"],
                format!(
                    "the `insert` action needs `insert(...)`: without it {names} would have no value\n\
                     help: list the fields an insert reads, e.g. \
                     `#[sync(insert(title, workspace_id, created_at = now, priority = default))]`"
                ),
            );
        } else {
            for &index in &missing {
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
    }
    if let Some(id) = id_index {
        insert_data.push(id);
    }
    insert_data.extend(
        listed
            .iter()
            .enumerate()
            .filter(|&(index, &listed)| listed && Some(index) != id_index)
            .map(|(index, _)| index),
    );

    // Indexed.
    let mut indexed = Vec::new();
    for field in attrs.indexed.iter().flatten() {
        if let Some(index) = find(field) {
            if indexed.contains(&index) {
                cx.error_spanned_by(
                    field,
                    format!("field `{field}` is listed twice in `indexed(...)`"),
                );
            } else {
                indexed.push(index);
            }
        }
    }

    let load_strategy = load_strategy(cx, attrs.load_strategy.as_ref());

    if cx.has_errors() {
        return None;
    }
    let table = table?;
    Some(Spec {
        model,
        krate: attrs.krate.clone().unwrap_or_else(default_crate),
        name,
        table,
        kind,
        group,
        cursor,
        actions,
        fills,
        insert_data,
        update,
        indexed,
        archived_at,
        load_strategy,
    })
}
