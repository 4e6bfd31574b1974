//! `impl SyncModel`: metadata, keys, row encoding and payload decoding.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Index;
use syn::spanned::Spanned;

use super::{bytes, json_string, tuple_type, tuple_value, wire};
use crate::ast::types;
use crate::valid::{FieldFill, Group, Kind, Spec};

/// The name of the hidden `Changes` type (private to the const block).
pub fn changes_ident() -> syn::Ident {
    format_ident!("__StratasyncChanges")
}

/// `struct __StratasyncChanges { field: Option<T>, ... }` for the updatable fields.
pub fn changes_struct(spec: &Spec) -> TokenStream {
    let name = changes_ident();
    let fields = spec.update.iter().map(|&i| {
        let field = &spec.model.fields[i];
        let ident = field.ident;
        let ty = field.ty;
        quote!(#ident: ::core::option::Option<#ty>)
    });
    quote! {
        #[doc(hidden)]
        pub struct #name {
            #(#fields,)*
        }
    }
}

/// `impl SyncModel for Model`.
pub fn sync_model(spec: &Spec) -> TokenStream {
    let ident = spec.model.ident;
    let meta = meta(spec);
    let keys = spec.keys();
    let key_ty = tuple_type(spec, &keys);
    let cursor_ty = tuple_type(spec, &spec.cursor);
    let key_value = tuple_value(spec, &keys);
    let cursor_value = tuple_value(spec, &spec.cursor);
    let model_id = model_id(spec);
    let key_from_request = key_from_request(spec);
    let group_id = group_id(spec);
    let write_row = write_row(spec);
    let from_insert = from_insert(spec);
    let insert_data = insert_data(spec);
    let changes = changes_ident();
    let decode_changes = decode_changes(spec);
    let changed_group = changed_group(spec);
    let changes_nothing = changes_nothing(spec);
    let touches_references = touches_references(spec);
    let payload_references = payload_references(spec);
    quote! {
        #[automatically_derived]
        impl __sp::SyncModel for #ident {
            const META: __sp::ModelMeta = #meta;
            type Key = #key_ty;
            type Cursor = #cursor_ty;
            type Changes = #changes;

            fn key(&self) -> #key_ty {
                #key_value
            }

            fn cursor(&self) -> #cursor_ty {
                #cursor_value
            }

            #model_id
            #key_from_request
            #group_id
            #write_row
            #from_insert
            #insert_data
            #decode_changes
            #changed_group
            #changes_nothing
            #touches_references
            #payload_references
        }
    }
}

/// `payload_references`: each referencing field the payload holds, decoded
/// as the referenced model's id (the field's own type is checked against it
/// once, by the reference check), with that model's name.
fn payload_references(spec: &Spec) -> TokenStream {
    if spec.references.is_empty() {
        return TokenStream::new();
    }
    let reads = spec.references.iter().map(|(index, model)| {
        let wire = wire(&spec.model.fields[*index]);
        quote! {
            let key = payload.get(#wire).and_then(|value| {
                <<#model as __sp::SyncModel>::Key as __sp::FieldCodec>::decode(value, #wire).ok()
            });
            if let ::core::option::Option::Some(key) = key {
                found.push((
                    <#model as __sp::SyncModel>::META.name,
                    <#model as __sp::SyncModel>::model_id(&key),
                ));
            }
        }
    });
    quote! {
        fn payload_references(
            payload: &__sp::JsonMap,
        ) -> ::std::vec::Vec<(&'static str, ::std::string::String)> {
            let mut found = ::std::vec::Vec::new();
            #(#reads)*
            found
        }
    }
}

/// `touches_references` when an update may change a referencing field or
/// the group (a move): the references are then checked again.
fn touches_references(spec: &Spec) -> TokenStream {
    if spec.references.is_empty() {
        return TokenStream::new();
    }
    let group = match spec.group {
        Group::Column { field, .. } => Some(field),
        _ => None,
    };
    let touched: Vec<_> = spec
        .update
        .iter()
        .filter(|&&i| Some(i) == group || spec.references.iter().any(|(r, _)| *r == i))
        .map(|&i| {
            let ident = spec.model.fields[i].ident;
            quote!(changes.#ident.is_some())
        })
        .collect();
    if touched.is_empty() {
        return TokenStream::new();
    }
    let changes = changes_ident();
    quote! {
        fn touches_references(changes: &#changes) -> bool {
            #(#touched)||*
        }
    }
}

fn meta(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let name = &spec.name;
    let keys = spec.keys();
    let metas = fields.iter().enumerate().map(|(index, field)| {
        let wire = wire(field);
        let column = field.column_name();
        let ty = field.ty;
        let key = keys.contains(&index);
        let client_type = quote_spanned!(ty.span()=> <#ty as __sp::FieldCodec>::CLIENT_TYPE);
        let nullable = quote_spanned!(ty.span()=> <#ty as __sp::FieldCodec>::NULLABLE);
        quote! {
            __sp::FieldMeta {
                wire: #wire,
                column: #column,
                client_type: #client_type,
                nullable: #nullable,
                key: #key,
            }
        }
    });
    let group = match spec.group {
        Group::Column { field, updatable } => {
            let wire = wire(&fields[field]);
            quote!(__sp::GroupKey::Column { field: #wire, updatable: #updatable })
        }
        Group::OwnId => quote!(__sp::GroupKey::ModelId),
        Group::Global => quote!(__sp::GroupKey::Global),
    };
    let composite = matches!(spec.kind, Kind::Composite { .. });
    let a = spec.actions;
    let actions = [
        (a.insert, quote!(Insert)),
        (a.update, quote!(Update)),
        (a.delete, quote!(Delete)),
        (a.archive, quote!(Archive)),
        (a.unarchive, quote!(Unarchive)),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, kind)| quote!(.with(__sp::ActionKind::#kind)));
    let indexed = spec.indexed.iter().map(|&i| wire(&fields[i]));
    let load_strategy = format_ident!("{}", spec.load_strategy.variant());
    quote! {
        __sp::ModelMeta {
            name: #name,
            fields: &[#(#metas),*],
            group: #group,
            composite: #composite,
            actions: __sp::ActionSet::EMPTY #(#actions)*,
            indexed: &[#(#indexed),*],
            load_strategy: __sp::LoadStrategy::#load_strategy,
        }
    }
}

/// How an id of this type that fails to parse is described.
fn id_description(ty: &syn::Type) -> &'static str {
    match types::last_ident(ty).as_deref() {
        Some("Uuid") => "a UUID string",
        Some("i16" | "i32" | "i64") => "an integer id",
        _ => "a valid id",
    }
}

fn model_id(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let body = match &spec.kind {
        Kind::Standard { id } => {
            let ty = fields[*id].ty;
            quote!(<#ty as __sp::GroupValue>::to_id_string(key))
        }
        Kind::Composite { keys } => {
            let name = &spec.name;
            let parts = keys.iter().enumerate().map(|(position, &i)| {
                let ty = fields[i].ty;
                let position = Index::from(position);
                quote!(<#ty as __sp::GroupValue>::to_id_string(&key.#position))
            });
            quote!(__sp::composite_id(#name, &[#(#parts),*]))
        }
    };
    quote! {
        fn model_id(key: &<Self as __sp::SyncModel>::Key) -> ::std::string::String {
            #body
        }
    }
}

fn key_from_request(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    match &spec.kind {
        Kind::Standard { id } => {
            let ty = fields[*id].ty;
            let description = id_description(ty);
            quote! {
                fn key_from_request(
                    model_id: &str,
                    _payload: &__sp::JsonMap,
                ) -> ::core::result::Result<<Self as __sp::SyncModel>::Key, __sp::FieldError> {
                    ::core::option::Option::ok_or(
                        <#ty as __sp::GroupValue>::from_id_str(model_id),
                        __sp::FieldError::expected("id", #description),
                    )
                }
            }
        }
        Kind::Composite { keys } => {
            let parts = keys.iter().map(|&i| {
                let ty = fields[i].ty;
                let wire = wire(&fields[i]);
                quote! {
                    match payload.get(#wire) {
                        ::core::option::Option::Some(value) if !value.is_null() => {
                            <#ty as __sp::FieldCodec>::decode(value, #wire)?
                        }
                        _ => return ::core::result::Result::Err(__sp::FieldError::required(#wire)),
                    }
                }
            });
            quote! {
                fn key_from_request(
                    _model_id: &str,
                    payload: &__sp::JsonMap,
                ) -> ::core::result::Result<<Self as __sp::SyncModel>::Key, __sp::FieldError> {
                    ::core::result::Result::Ok((#(#parts,)*))
                }
            }
        }
    }
}

fn group_id(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let column = match (&spec.group, &spec.kind) {
        (Group::Column { field, .. }, _) => Some(*field),
        (Group::OwnId, Kind::Standard { id }) => Some(*id),
        _ => None,
    };
    let body = match column {
        Some(index) => {
            let ty = fields[index].ty;
            let ident = fields[index].ident;
            quote!(::core::option::Option::Some(<#ty as __sp::GroupValue>::to_id_string(&self.#ident)))
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        fn group_id(&self) -> ::core::option::Option<::std::string::String> {
            #body
        }
    }
}

fn write_row(spec: &Spec) -> TokenStream {
    let mut statements = Vec::new();
    let mut prefix = format!("{{\"__class\":{},", json_string(&spec.name));
    for field in &spec.model.fields {
        prefix.push_str(&json_string(&field.wire));
        prefix.push(':');
        let literal = bytes(&prefix);
        let ident = field.ident;
        let ty = field.ty;
        statements.push(quote! {
            out.extend_from_slice(#literal);
            <#ty as __sp::FieldCodec>::encode(&self.#ident, out);
        });
        prefix = ",".to_owned();
    }
    if let Kind::Composite { .. } = spec.kind {
        let literal = bytes(",\"id\":");
        statements.push(quote! {
            out.extend_from_slice(#literal);
            __sp::write_json_string(
                out,
                &<Self as __sp::SyncModel>::model_id(&<Self as __sp::SyncModel>::key(self)),
            );
        });
    }
    quote! {
        fn write_row(&self, out: &mut ::std::vec::Vec<u8>) {
            #(#statements)*
            out.push(b'}');
        }
    }
}

fn from_insert(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    if !spec.actions.insert {
        return quote! {
            fn from_insert(
                _key: <Self as __sp::SyncModel>::Key,
                _payload: &__sp::JsonMap,
                _now: __sp::chrono::DateTime<__sp::chrono::Utc>,
            ) -> ::core::result::Result<Self, __sp::FieldError> {
                // The model accepts no inserts; the runtime rejects them first.
                ::core::result::Result::Err(__sp::FieldError::expected("id", "a model that accepts inserts"))
            }
        };
    }
    let inits = fields.iter().zip(&spec.fills).map(|(field, fill)| {
        let ident = field.ident;
        let ty = field.ty;
        let wire = wire(field);
        let value = match fill {
            FieldFill::Key(None) => quote!(key),
            FieldFill::Key(Some(position)) => {
                let position = Index::from(*position);
                quote!(key.#position)
            }
            FieldFill::Payload => {
                quote_spanned!(ty.span()=> <#ty as __sp::FieldCodec>::decode_field(payload, #wire)?)
            }
            FieldFill::Group => quote! {
                match payload.get(#wire) {
                    ::core::option::Option::Some(value)
                        if !value.is_null() && value.as_str() != ::core::option::Option::Some("") =>
                    {
                        <#ty as __sp::FieldCodec>::decode(value, #wire)?
                    }
                    _ => return ::core::result::Result::Err(__sp::FieldError::missing_group(#wire)),
                }
            },
            // `= now`: the client's value when it sends one (PROTOCOL's
            // `dateNow`), else the server's clock.
            FieldFill::Now => {
                let now = if types::option_inner(ty).is_some() {
                    quote_spanned!(ty.span()=> ::core::option::Option::Some(now))
                } else {
                    quote_spanned!(ty.span()=> now)
                };
                quote_spanned! {ty.span()=>
                    match payload.get(#wire) {
                        ::core::option::Option::Some(value) if !value.is_null() => {
                            <#ty as __sp::FieldCodec>::decode(value, #wire)?
                        }
                        _ => #now,
                    }
                }
            }
            FieldFill::Default => quote_spanned!(ty.span()=> ::core::default::Default::default()),
            FieldFill::Null => quote_spanned!(ty.span()=> ::core::option::Option::None),
        };
        quote!(#ident: #value)
    });
    let uses_now = spec.fills.contains(&FieldFill::Now);
    let now = if uses_now { quote!(now) } else { quote!(_now) };
    let uses_payload = spec
        .fills
        .iter()
        .any(|f| matches!(f, FieldFill::Payload | FieldFill::Group | FieldFill::Now));
    let payload = if uses_payload {
        quote!(payload)
    } else {
        quote!(_payload)
    };
    quote! {
        fn from_insert(
            key: <Self as __sp::SyncModel>::Key,
            #payload: &__sp::JsonMap,
            #now: __sp::chrono::DateTime<__sp::chrono::Utc>,
        ) -> ::core::result::Result<Self, __sp::FieldError> {
            ::core::result::Result::Ok(Self {
                #(#inits,)*
            })
        }
    }
}

fn insert_data(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let inserts = spec.insert_data.iter().map(|&i| {
        let field = &fields[i];
        let ident = field.ident;
        let ty = field.ty;
        let wire = wire(field);
        quote! {
            data.insert(
                ::std::string::String::from(#wire),
                <#ty as __sp::FieldCodec>::to_json(&self.#ident),
            );
        }
    });
    quote! {
        fn insert_data(&self) -> __sp::JsonMap {
            let mut data = __sp::JsonMap::new();
            #(#inserts)*
            data
        }
    }
}

fn decode_changes(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let changes = changes_ident();
    if spec.update.is_empty() {
        return quote! {
            fn decode_changes(
                _payload: &__sp::JsonMap,
            ) -> ::core::result::Result<(#changes, __sp::JsonMap), __sp::FieldError> {
                ::core::result::Result::Ok((#changes {}, __sp::JsonMap::new()))
            }
        };
    }
    let group_field = match spec.group {
        Group::Column { field, .. } => Some(field),
        _ => None,
    };
    let empty = spec.update.iter().map(|&i| {
        let ident = fields[i].ident;
        quote!(#ident: ::core::option::Option::None)
    });
    let reads = spec.update.iter().map(|&i| {
        let field = &fields[i];
        let ident = field.ident;
        let ty = field.ty;
        let wire = wire(field);
        let check_group = (Some(i) == group_field).then(|| {
            quote! {
                if value.is_null() || value.as_str() == ::core::option::Option::Some("") {
                    return ::core::result::Result::Err(__sp::FieldError::missing_group(#wire));
                }
            }
        });
        quote! {
            if let ::core::option::Option::Some(value) = payload.get(#wire) {
                #check_group
                let value: #ty = <#ty as __sp::FieldCodec>::decode(value, #wire)?;
                data.insert(
                    ::std::string::String::from(#wire),
                    <#ty as __sp::FieldCodec>::to_json(&value),
                );
                changes.#ident = ::core::option::Option::Some(value);
            }
        }
    });
    quote! {
        fn decode_changes(
            payload: &__sp::JsonMap,
        ) -> ::core::result::Result<(#changes, __sp::JsonMap), __sp::FieldError> {
            let mut data = __sp::JsonMap::new();
            let mut changes = #changes { #(#empty,)* };
            #(#reads)*
            ::core::result::Result::Ok((changes, data))
        }
    }
}

fn changed_group(spec: &Spec) -> TokenStream {
    let changes = changes_ident();
    match spec.group {
        Group::Column {
            field,
            updatable: true,
        } => {
            let field = &spec.model.fields[field];
            let ident = field.ident;
            let ty = field.ty;
            quote! {
                fn changed_group(changes: &#changes) -> ::core::option::Option<::std::string::String> {
                    changes.#ident.as_ref().map(<#ty as __sp::GroupValue>::to_id_string)
                }
            }
        }
        _ => quote! {
            fn changed_group(_changes: &#changes) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::None
            }
        },
    }
}

fn changes_nothing(spec: &Spec) -> TokenStream {
    let changes = changes_ident();
    if spec.update.is_empty() {
        return quote! {
            fn changes_nothing(_changes: &#changes) -> bool {
                true
            }
        };
    }
    let checks = spec.update.iter().map(|&i| {
        let ident = spec.model.fields[i].ident;
        quote!(changes.#ident.is_none())
    });
    quote! {
        fn changes_nothing(changes: &#changes) -> bool {
            #(#checks)&&*
        }
    }
}
