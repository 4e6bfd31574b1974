//! Code generation from a validated [`Spec`].
//!
//! Everything is emitted inside one `const _: () = { ... };` and reaches the
//! runtime only through `<crate>::__private`, imported as `__sp`.

mod diesel;
mod model;

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
    quote! {
        const _: () = {
            use #krate::__private as __sp;
            #assertions
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
fn assertions(spec: &Spec) -> TokenStream {
    let fields = &spec.model.fields;
    let mut checks = Vec::new();
    for field in fields {
        let ty = field.ty;
        checks.push(quote_spanned!(ty.span()=> __codec::<#ty>();));
    }
    let mut ids = spec.keys();
    if let Group::Column { field, .. } = spec.group {
        ids.push(field);
    }
    ids.extend(&spec.indexed);
    ids.sort_unstable();
    ids.dedup();
    for index in ids {
        let ty = fields[index].ty;
        checks.push(quote_spanned!(ty.span()=> __id::<#ty>();));
    }
    for &index in &spec.cursor {
        let ty = fields[index].ty;
        checks.push(quote_spanned!(ty.span()=> __ord::<#ty>();));
    }
    quote! {
        const _: fn() = || {
            fn __codec<T: __sp::FieldCodec>() {}
            fn __id<T: __sp::GroupValue>() {}
            fn __ord<T: ::core::cmp::Ord>() {}
            #(#checks)*
        };
    }
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
