//! Code generation from a validated [`Spec`].
//!
//! Everything is emitted inside one `const _: () = { ... };` and reaches the
//! runtime only through `<crate>::__private`, imported as `__sp`.

mod diesel;
mod model;
mod visible;

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::Field;
use crate::valid::{Group, Spec};

/// The whole expansion of a valid model.
pub fn expand(spec: &Spec) -> TokenStream {
    let krate = &spec.krate;
    let assertions = assertions(spec);
    let changes = model::changes_struct(spec);
    let sync_model = model::sync_model(spec);
    let diesel_model = diesel::diesel_model(spec);
    let grouped = grouped(spec);
    quote! {
        const _: () = {
            use #krate::__private as __sp;
            #assertions
            #grouped
            #changes
            #sync_model
            #diesel_model
        };
    }
}

/// Type checks at the user's spans: every field has a codec, every key,
/// group and indexed column has a canonical string form, cursor columns are
/// ordered. rustc reports a failure at the field's type with the runtime
/// trait's `on_unimplemented` note.
///
/// The checks name the traits exactly as the rest of the expansion does
/// (`<Type as Trait>::method`, spanned at the type), so rustc folds every
/// use into the one error. The diesel impls never name these traits; they
/// call the `__to_id_*` / `__from_id_*` helpers emitted here.
fn assertions(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let mut checks = Vec::new();
    for field in fields {
        let ty = field.ty;
        checks.push(quote_spanned!(ty.span()=> let _ = <#ty as __sp::FieldCodec>::encode;));
    }
    for index in id_columns(spec) {
        let ty = fields[index].ty;
        checks.push(quote_spanned!(ty.span()=> let _ = <#ty as __sp::GroupValue>::to_id_string;));
    }
    for &index in &spec.cursor {
        let ty = fields[index].ty;
        checks.push(quote_spanned!(ty.span()=> __cursor::<#ty>();));
    }
    for (index, model) in &spec.references {
        let ty = fields[*index].ty;
        checks.push(quote_spanned!(model.span()=> __sp::assert_grouped::<#model>();));
        let referenced = referenced(ty, model);
        checks.push(quote!(let _ = #referenced;));
    }
    let helpers = id_columns(spec).into_iter().map(|index| {
        let ty = fields[index].ty;
        let to = to_id(&fields[index]);
        let from = from_id(&fields[index]);
        quote! {
            #[allow(dead_code)]
            fn #to(value: &#ty) -> ::std::string::String {
                <#ty as __sp::GroupValue>::to_id_string(value)
            }
            #[allow(dead_code)]
            fn #from(value: &str) -> ::core::option::Option<#ty> {
                <#ty as __sp::GroupValue>::from_id_str(value)
            }
        }
    });
    quote! {
        #[diagnostic::on_unimplemented(
            message = "`{Self}` cannot be a cursor column",
            label = "bootstrap pages by this column, so its values must be totally ordered",
            note = "page by the id or by a NOT NULL integer, string, UUID, NaiveDate or DateTime<Utc> column"
        )]
        trait __CursorColumn {}
        impl<T: ::core::cmp::Ord> __CursorColumn for T {}

        const _: fn() = || {
            fn __cursor<T: __CursorColumn>() {}
            #(#checks)*
        };

        #(#helpers)*
    }
}

/// `<FieldType as ReferenceValue<Model's key>>::referenced`, spanned at the
/// field's type: the one path through which generated code reads a
/// referencing field, so a type that cannot hold the id is one error.
fn referenced(ty: &syn::Type, model: &syn::Path) -> TokenStream {
    quote_spanned! {ty.span()=>
        <#ty as __sp::ReferenceValue<<#model as __sp::SyncModel>::Key>>::referenced
    }
}

/// `impl Grouped` for a model whose rows belong to groups, which other
/// models may then reference.
fn grouped(spec: &Spec) -> TokenStream {
    let ident = spec.model.ident;
    match spec.group {
        Group::Global => TokenStream::new(),
        Group::Column { .. } | Group::OwnId => quote! {
            #[automatically_derived]
            impl __sp::Grouped for #ident {}
        },
    }
}

/// The fields used as ids: keys, the group column, indexed fields.
fn id_columns(spec: &Spec) -> Vec<usize> {
    let mut ids = spec.keys();
    if let Group::Column { field, .. } = spec.group {
        ids.push(field);
    }
    ids.extend(&spec.indexed);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The helper turning a value of an id field into its string form.
fn to_id(field: &Field) -> syn::Ident {
    quote::format_ident!("__to_id_{}", crate::ast::ident_name(field.ident))
}

/// The helper parsing the string form of an id field.
fn from_id(field: &Field) -> syn::Ident {
    quote::format_ident!("__from_id_{}", crate::ast::ident_name(field.ident))
}

/// A string as a JSON string literal's contents plus quotes, as bytes.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A byte string literal.
fn bytes(s: &str) -> Literal {
    Literal::byte_string(s.as_bytes())
}

/// The tuple type of some fields' types (or the type itself for one field).
fn tuple_type(spec: &Spec, indexes: &[usize]) -> TokenStream {
    let tys = indexes.iter().map(|&i| spec.model.fields[i].ty);
    if indexes.len() == 1 {
        quote!(#(#tys)*)
    } else {
        quote!((#(#tys,)*))
    }
}

/// The tuple of some fields of `self`, cloned (or the one field).
fn tuple_value(spec: &Spec, indexes: &[usize]) -> TokenStream {
    let values = indexes.iter().map(|&i| {
        let ident = spec.model.fields[i].ident;
        quote!(::core::clone::Clone::clone(&self.#ident))
    });
    if indexes.len() == 1 {
        quote!(#(#values)*)
    } else {
        quote!((#(#values,)*))
    }
}

/// The wire name of a field as a string literal.
fn wire(field: &Field) -> Literal {
    Literal::string(&field.wire)
}
