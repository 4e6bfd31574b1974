//! Parsing `#[sync(...)]` into typed structs.
//!
//! Each key is a typed slot ([`Attr`]) that reports a duplicate at its second
//! occurrence. Only syntax is checked here; rules that relate keys to each
//! other or to the fields live in `valid.rs`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::symbol::*;

/// One key's slot: remembers the first value, reports the second.
pub struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr {
            cx,
            name,
            value: None,
        }
    }

    fn set<A: ToTokens>(&mut self, obj: A, value: T) {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                obj,
                format!(
                    "duplicate `{}` in #[sync(...)]: each key may appear once\n\
                     help: merge the two into one `{}`",
                    self.name, self.name
                ),
            );
        } else {
            self.value = Some(value);
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

/// A name written as a string literal (`"workspace_id"`), turned into an
/// identifier spanned at the literal.
pub type FieldRef = Ident;

/// The value of `group = ...`.
pub enum GroupAttr {
    /// `group = "workspace_id"`
    Column(FieldRef),
    /// `group = self`
    OwnId(Span),
}

/// An action of `actions(...)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ActionName {
    /// `insert`
    Insert,
    /// `update`
    Update,
    /// `delete`
    Delete,
    /// `archive`
    Archive,
    /// `unarchive`
    Unarchive,
}

/// How an `insert(...)` entry gets its value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// `title`: read from the payload.
    Payload,
    /// `created_at = now`: the time of the mutation.
    Now,
    /// `priority = default`: `Default::default()`.
    Default,
}

/// One entry of `insert(...)`.
pub struct InsertItem {
    /// The field.
    pub field: Ident,
    /// Where its value comes from.
    pub fill: Fill,
    /// The `now`/`default` token, for errors.
    pub fill_token: Option<Ident>,
}

/// One entry of `references(...)`: a field and the model it references.
pub struct Reference {
    /// The field holding the referenced id.
    pub field: Ident,
    /// The referenced model's type.
    pub model: Path,
}

/// The container attributes: `#[sync(...)]` on the struct, plus the
/// `#[diesel(table_name = ...)]` the derive reads.
pub struct Container {
    /// `name = "Task"`
    pub name: Option<LitStr>,
    /// `group = ...`
    pub group: Option<GroupAttr>,
    /// `global`
    pub global: Option<Span>,
    /// `move_between_groups`
    pub move_between_groups: Option<Span>,
    /// `cursor = "id"`
    pub cursor: Option<FieldRef>,
    /// `composite(a, b)` with the span of the key.
    pub composite: Option<(Span, Vec<Ident>)>,
    /// `actions(...)` with the span of the key.
    pub actions: Option<(Span, Vec<(ActionName, Ident)>)>,
    /// `insert(...)` with the span of the key.
    pub insert: Option<(Span, Vec<InsertItem>)>,
    /// `update(...)` with the span of the key.
    pub update: Option<(Span, Vec<Ident>)>,
    /// `indexed(...)`
    pub indexed: Option<Vec<Ident>>,
    /// `load_strategy = "lazy"`
    pub load_strategy: Option<LitStr>,
    /// `scope = visible_todos`: the scope function's path.
    pub scope: Option<Path>,
    /// `references(task_id = Task, ...)` with the span of the key.
    pub references: Option<(Span, Vec<Reference>)>,
    /// `crate = path`
    pub krate: Option<Path>,
    /// `#[diesel(table_name = path)]`
    pub table_name: Option<Path>,
    /// Keys whose value could not be parsed (already reported).
    pub broken: Vec<Symbol>,
}

impl Container {
    /// Whether `key` was given with a value that could not be parsed.
    pub fn is_broken(&self, key: Symbol) -> bool {
        self.broken.contains(&key)
    }
}

/// The field attributes: `#[sync(...)]` on a field, plus its
/// `#[diesel(column_name = ...)]`.
pub struct Field {
    /// `rename = "wireName"`
    pub rename: Option<LitStr>,
    /// `date_only`
    pub date_only: Option<Span>,
    /// `#[diesel(column_name = ...)]`
    pub column_name: Option<Ident>,
}

impl Container {
    /// Reads the container attributes of `input`, recording errors in `cx`.
    pub fn from_ast(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        let mut name = Attr::none(cx, NAME);
        let mut group = Attr::none(cx, GROUP);
        let mut global = Attr::none(cx, GLOBAL);
        let mut move_between_groups = Attr::none(cx, MOVE_BETWEEN_GROUPS);
        let mut cursor = Attr::none(cx, CURSOR);
        let mut composite = Attr::none(cx, COMPOSITE);
        let mut actions = Attr::none(cx, ACTIONS);
        let mut insert = Attr::none(cx, INSERT);
        let mut update = Attr::none(cx, UPDATE);
        let mut indexed = Attr::none(cx, INDEXED);
        let mut load_strategy = Attr::none(cx, LOAD_STRATEGY);
        let mut scope = Attr::none(cx, SCOPE);
        let mut references = Attr::none(cx, REFERENCES);
        let mut krate = Attr::none(cx, CRATE);
        let mut table_name = None;
        let mut broken = Vec::new();

        for attr in &input.attrs {
            if attr.path() == DIESEL {
                table_name = diesel_value(attr, TABLE_NAME).or(table_name);
                continue;
            }
            if attr.path() != SYNC {
                continue;
            }
            if let syn::Meta::Path(_) = attr.meta {
                cx.error_spanned_by(
                    attr,
                    "expected `#[sync(...)]` with keys\n\
                     help: for example `#[sync(group = \"workspace_id\", actions(insert, update, delete))]`",
                );
                continue;
            }
            let result = attr.parse_nested_meta(|meta| {
                let path = meta.path.clone();
                // A value of the wrong form is reported and skipped, and the
                // key is remembered as broken so that rules depending on it
                // stay quiet instead of piling follow-on errors on top.
                macro_rules! value {
                    ($key:expr, $parse:expr) => {
                        match $parse {
                            Ok(value) => Some(value),
                            Err(err) => {
                                cx.syn_error(err);
                                broken.push($key);
                                skip_value(meta.input)?;
                                None
                            }
                        }
                    };
                }
                if path == NAME {
                    if let Some(v) = value!(NAME, lit_str(&meta, "name = \"Task\"")) {
                        name.set(&path, v);
                    }
                } else if path == GROUP {
                    if let Some(v) = value!(GROUP, group_value(&meta)) {
                        group.set(&path, v);
                    }
                } else if path == GLOBAL {
                    if value!(GLOBAL, no_value(&meta, "global")).is_some() {
                        global.set(&path, path.span());
                    }
                } else if path == MOVE_BETWEEN_GROUPS {
                    if value!(MOVE_BETWEEN_GROUPS, no_value(&meta, "move_between_groups")).is_some()
                    {
                        move_between_groups.set(&path, path.span());
                    }
                } else if path == CURSOR {
                    if let Some(v) = value!(CURSOR, field_name(&meta, "cursor = \"id\"")) {
                        cursor.set(&path, v);
                    }
                } else if path == COMPOSITE {
                    if let Some(keys) =
                        value!(COMPOSITE, name_list(&meta, "composite(task_id, label_id)"))
                    {
                        composite.set(&path, (path.span(), keys));
                    }
                } else if path == ACTIONS {
                    if let Some(list) = value!(ACTIONS, action_list(cx, &meta)) {
                        actions.set(&path, (path.span(), list));
                    }
                } else if path == INSERT {
                    if let Some(items) = value!(INSERT, insert_list(cx, &meta)) {
                        insert.set(&path, (path.span(), items));
                    }
                } else if path == UPDATE {
                    if let Some(fields) =
                        value!(UPDATE, name_list(&meta, "update(title, priority)"))
                    {
                        update.set(&path, (path.span(), fields));
                    }
                } else if path == INDEXED {
                    if let Some(fields) = value!(INDEXED, name_list(&meta, "indexed(workspace_id)"))
                    {
                        indexed.set(&path, fields);
                    }
                } else if path == LOAD_STRATEGY {
                    if let Some(v) =
                        value!(LOAD_STRATEGY, lit_str(&meta, "load_strategy = \"lazy\""))
                    {
                        load_strategy.set(&path, v);
                    }
                } else if path == SCOPE {
                    if let Some(v) = value!(SCOPE, fn_path(&meta)) {
                        scope.set(&path, v);
                    }
                } else if path == REFERENCES {
                    if let Some(list) = value!(REFERENCES, reference_list(&meta)) {
                        references.set(&path, (path.span(), list));
                    }
                } else if path == CRATE {
                    if let Some(v) = value!(CRATE, crate_path(&meta)) {
                        krate.set(&path, v);
                    }
                } else {
                    let help = format!("valid keys are {}", list(CONTAINER_KEYS));
                    unknown_key(cx, &meta, "sync attribute", &help)?;
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }

        Container {
            name: name.get(),
            group: group.get(),
            global: global.get(),
            move_between_groups: move_between_groups.get(),
            cursor: cursor.get(),
            composite: composite.get(),
            actions: actions.get(),
            insert: insert.get(),
            update: update.get(),
            indexed: indexed.get(),
            load_strategy: load_strategy.get(),
            scope: scope.get(),
            references: references.get(),
            krate: krate.get(),
            table_name,
            broken,
        }
    }
}

impl Field {
    /// Reads the attributes of one field, recording errors in `cx`.
    pub fn from_ast(cx: &Ctxt, field: &syn::Field) -> Self {
        let mut rename = Attr::none(cx, RENAME);
        let mut date_only = Attr::none(cx, DATE_ONLY);
        let mut column_name = None;
        for attr in &field.attrs {
            if attr.path() == DIESEL {
                column_name = diesel_value(attr, COLUMN_NAME).or(column_name);
                continue;
            }
            if attr.path() != SYNC {
                continue;
            }
            let result = attr.parse_nested_meta(|meta| {
                let path = meta.path.clone();
                if path == RENAME {
                    rename.set(&path, lit_str(&meta, "rename = \"wireName\"")?);
                } else if path == DATE_ONLY {
                    no_value(&meta, "date_only")?;
                    date_only.set(&path, path.span());
                } else {
                    let help = format!(
                        "valid field keys are {}; model keys such as `group` or `insert(...)` go \
                         on the struct",
                        list(FIELD_KEYS)
                    );
                    unknown_key(cx, &meta, "sync field attribute", &help)?;
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        Field {
            rename: rename.get(),
            date_only: date_only.get(),
            column_name,
        }
    }
}

/// Skips the rest of one entry (`= value` or `(...)`), up to the next comma.
fn skip_value(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// The value of `key` in a `#[diesel(...)]` attribute (the last one when it
/// is given twice). Diesel's own derives report problems with this
/// attribute; we only pick the one key out of it.
fn diesel_value<T: Parse>(attr: &syn::Attribute, key: Symbol) -> Option<T> {
    let mut found = None;
    let _ = attr.parse_nested_meta(|meta| {
        if meta.path == key {
            found = Some(meta.value()?.parse::<T>()?);
        } else {
            skip_value(meta.input)?;
        }
        Ok(())
    });
    found
}

/// Reports an unknown key at its path (`unknown <what> `key`` with `help`)
/// and skips its value.
fn unknown_key(cx: &Ctxt, meta: &ParseNestedMeta, what: &str, help: &str) -> syn::Result<()> {
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown {what} `{}`\nhelp: {help}",
            meta.path.to_token_stream()
        ),
    );
    skip_value(meta.input)
}

fn key_name(meta: &ParseNestedMeta) -> String {
    meta.path.to_token_stream().to_string()
}

/// The error for a value of the wrong form, pointing at the value.
fn wrong_form(meta: &ParseNestedMeta, what: &str, form: &str) -> syn::Error {
    let span = if meta.input.is_empty() || meta.input.peek(Token![,]) {
        meta.path.span()
    } else {
        meta.input.span()
    };
    syn::Error::new(
        span,
        format!(
            "`{}` expects {what}\nhelp: the correct form is `#[sync({form})]`",
            key_name(meta)
        ),
    )
}

fn lit_str(meta: &ParseNestedMeta, form: &str) -> syn::Result<LitStr> {
    if !meta.input.peek(Token![=]) {
        return Err(wrong_form(meta, "a string literal", form));
    }
    let value = meta.value()?;
    if value.peek(LitStr) {
        value.parse()
    } else {
        Err(wrong_form(meta, "a string literal", form))
    }
}

/// A field named by a string literal: `cursor = "id"`.
fn field_name(meta: &ParseNestedMeta, form: &str) -> syn::Result<FieldRef> {
    let lit = lit_str(meta, form)?;
    lit.parse::<Ident>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`{}` is not a field name\nhelp: the correct form is `#[sync({form})]`",
                lit.value()
            ),
        )
    })
}

fn group_value(meta: &ParseNestedMeta) -> syn::Result<GroupAttr> {
    const HELP: &str = "help: the correct form is `#[sync(group = \"workspace_id\")]` (a column holds \
                        the group), `#[sync(group = self)]` (the row's own id is its group) or \
                        `#[sync(global)]` (every user sees every row)";
    let wrong =
        |span: Span, what: &str| syn::Error::new(span, format!("`group` expects {what}\n{HELP}"));
    if !meta.input.peek(Token![=]) {
        return Err(wrong(meta.path.span(), "a column name or `self`"));
    }
    let value = meta.value()?;
    if value.peek(Token![self]) {
        let token: Token![self] = value.parse()?;
        return Ok(GroupAttr::OwnId(token.span));
    }
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return lit.parse::<Ident>().map(GroupAttr::Column).map_err(|_| {
            wrong(
                lit.span(),
                &format!("a field name, and `{}` is not one", lit.value()),
            )
        });
    }
    Err(wrong(
        value.span(),
        "the group column's name as a string literal, or `self`",
    ))
}

fn no_value(meta: &ParseNestedMeta, key: &str) -> syn::Result<()> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        Ok(())
    } else {
        Err(wrong_form(meta, "no value", key))
    }
}

/// The entries of `references(task_id = Task, ...)`.
fn reference_list(meta: &ParseNestedMeta) -> syn::Result<Vec<Reference>> {
    const FORM: &str = "references(task_id = Task, label_id = Label)";
    let mut references = Vec::new();
    for_each_entry(meta, FORM, |field, item| {
        if !item.input.peek(Token![=]) {
            return Err(syn::Error::new(
                field.span(),
                format!(
                    "`{field}` needs the model it references\nhelp: the correct form is `#[sync({FORM})]`"
                ),
            ));
        }
        let value = item.value()?;
        let model = value.parse::<Path>().map_err(|_| {
            syn::Error::new(
                value.span(),
                format!("expected a model type\nhelp: the correct form is `#[sync({FORM})]`"),
            )
        })?;
        references.push(Reference { field, model });
        Ok(())
    })?;
    Ok(references)
}

/// The path of a function: `scope = visible_todos`.
fn fn_path(meta: &ParseNestedMeta) -> syn::Result<Path> {
    const FORM: &str = "group = \"workspace_id\", scope = visible_todos";
    if !meta.input.peek(Token![=]) {
        return Err(wrong_form(meta, "the path of a function", FORM));
    }
    let value = meta.value()?;
    if value.peek(LitStr) {
        return Err(wrong_form(
            meta,
            "the path of a function, not a string",
            FORM,
        ));
    }
    value
        .call(Path::parse_mod_style)
        .map_err(|_| wrong_form(meta, "the path of a function", FORM))
}

fn crate_path(meta: &ParseNestedMeta) -> syn::Result<Path> {
    const FORM: &str = "crate = ::my_reexport::stratasync";
    if !meta.input.peek(Token![=]) {
        return Err(wrong_form(meta, "a path", FORM));
    }
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return lit.parse::<Path>();
    }
    value.parse::<Path>()
}

/// Parses `key(a, b = value, ...)`, handing each entry, named by a bare
/// identifier, to `each`.
fn for_each_entry(
    meta: &ParseNestedMeta,
    form: &str,
    mut each: impl FnMut(Ident, &ParseNestedMeta) -> syn::Result<()>,
) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(wrong_form(
            meta,
            "a parenthesized list of field names",
            form,
        ));
    }
    meta.parse_nested_meta(|item| {
        let Some(ident) = item.path.get_ident().cloned() else {
            return Err(syn::Error::new_spanned(
                &item.path,
                format!("expected a field name\nhelp: the correct form is `#[sync({form})]`"),
            ));
        };
        each(ident, &item)
    })
}

/// The entries of `key(a, b, ...)`: each a bare name, no value.
fn name_list(meta: &ParseNestedMeta, form: &str) -> syn::Result<Vec<Ident>> {
    let mut names = Vec::new();
    for_each_entry(meta, form, |ident, item| {
        if !item.input.is_empty() && !item.input.peek(Token![,]) {
            return Err(syn::Error::new(
                item.input.span(),
                format!(
                    "`{}(...)` takes field names only\nhelp: the correct form is `#[sync({form})]`",
                    key_name(meta)
                ),
            ));
        }
        names.push(ident);
        Ok(())
    })?;
    Ok(names)
}

fn action_list(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Vec<(ActionName, Ident)>> {
    const FORM: &str = "actions(insert, update, delete, archive, unarchive)";
    let names = name_list(meta, FORM)?;
    let mut actions = Vec::new();
    for ident in names {
        let action = if ident == INSERT {
            ActionName::Insert
        } else if ident == UPDATE {
            ActionName::Update
        } else if ident == DELETE {
            ActionName::Delete
        } else if ident == ARCHIVE {
            ActionName::Archive
        } else if ident == UNARCHIVE {
            ActionName::Unarchive
        } else {
            cx.error_spanned_by(
                &ident,
                format!(
                    "unknown action `{ident}`\nhelp: the actions are {}",
                    list(ACTION_KEYS)
                ),
            );
            continue;
        };
        if actions.iter().any(|(a, _)| *a == action) {
            cx.error_spanned_by(&ident, format!("action `{ident}` is listed twice"));
            continue;
        }
        actions.push((action, ident));
    }
    Ok(actions)
}

const INSERT_FORM: &str = "insert(title, workspace_id, created_at = now, priority = default)";

fn insert_list(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Vec<InsertItem>> {
    let mut items = Vec::new();
    for_each_entry(meta, INSERT_FORM, |field, item| {
        items.push(match insert_fill(cx, item)? {
            Some((fill, token)) => InsertItem {
                field,
                fill,
                fill_token: Some(token),
            },
            None => InsertItem {
                field,
                fill: Fill::Payload,
                fill_token: None,
            },
        });
        Ok(())
    })?;
    Ok(items)
}

/// How an `insert(...)` entry is filled: `None` for a bare name (from the
/// payload), and for a value that is neither `now` nor `default`, which is
/// reported; the field then stays listed so it is not also reported as
/// missing.
fn insert_fill(cx: &Ctxt, item: &ParseNestedMeta) -> syn::Result<Option<(Fill, Ident)>> {
    if item.input.is_empty() || item.input.peek(Token![,]) {
        return Ok(None);
    }
    let value = item.value()?;
    let mut tokens = TokenStream::new();
    while !value.is_empty() && !value.peek(Token![,]) {
        tokens.extend([value.parse::<TokenTree>()?]);
    }
    let mut iter = tokens.clone().into_iter();
    let (Some(TokenTree::Ident(fill_token)), None) = (iter.next(), iter.next()) else {
        cx.error_spanned_by(
            tokens,
            format!(
                "an insert field is filled with `now` or `default`\n\
                 help: the correct form is `#[sync({INSERT_FORM})]`"
            ),
        );
        return Ok(None);
    };
    let fill = if fill_token == NOW {
        Fill::Now
    } else if fill_token == DEFAULT {
        Fill::Default
    } else {
        cx.error_spanned_by(
            &fill_token,
            format!(
                "unknown insert value `{fill_token}`: an insert field is filled with `now` \
                 (the mutation's time) or `default` (`Default::default()`)\n\
                 help: the correct form is `#[sync({INSERT_FORM})]`"
            ),
        );
        return Ok(None);
    };
    Ok(Some((fill, fill_token)))
}
