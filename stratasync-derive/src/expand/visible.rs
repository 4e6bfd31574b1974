//! The writes that check the caller's access in the statement itself:
//! `UPDATE` / `DELETE ... WHERE <key> AND <group> IN (<held groups>) AND
//! <scope> RETURNING <group>`, one round trip instead of a read and a write;
//! and the read of a row's group under the same conditions, for the writes
//! that need the check first (hooks run between the two).

use proc_macro2::TokenStream;
use quote::quote;

use super::from_id;
use crate::valid::{Group, Kind, Spec};

/// The row's group column as the write returns it: its column, type and
/// the map to the group's string (`None` for a global model, whose
/// statements return their first key column).
pub struct Returned<'a> {
    pub column: &'a syn::Ident,
    pub ty: &'a syn::Type,
    pub map: TokenStream,
}

/// `find_visible_group`, `update_visible`, `delete_visible` and
/// `set_archived_visible`; `by_key` selects the row with `key`.
pub fn visible_writes(spec: &Spec, by_key: &TokenStream, returned: &Returned<'_>) -> TokenStream {
    let table = &spec.table;
    let fields = &spec.model.fields;
    let held = match (&spec.group, &spec.kind) {
        (Group::Column { field, .. }, _) | (Group::OwnId, Kind::Standard { id: field }) => {
            let field = &fields[*field];
            let (column, ty, from) = (&field.column, field.ty, from_id(field));
            quote! {
                .filter(#table::#column.eq_any(
                    ctx.authorized_group_ids
                        .iter()
                        .filter_map(|group| #from(group))
                        .map(__sp::Bind)
                        .collect::<::std::vec::Vec<__sp::Bind<#ty>>>(),
                ))
            }
        }
        _ => TokenStream::new(),
    };
    let scoped = super::diesel::scope_filter(spec, quote!(ctx))
        .map(|filter| quote!(.filter(#filter)))
        .unwrap_or_default();
    let visible = quote!(#by_key #held #scoped);
    let Returned { column, ty, map } = returned;
    let returning = quote! {
        .get_result::<#ty>(conn)
        .await
        .optional()?;
        ::core::result::Result::Ok(found.map(#map))
    };
    let found = quote! {
        __sp::diesel::QueryResult<
            ::core::option::Option<::core::option::Option<::std::string::String>>,
        >
    };
    let nothing = quote! {
        ::std::boxed::Box::pin(async { ::core::result::Result::Ok(::core::option::Option::None) })
    };

    let update = if spec.update.is_empty() {
        nothing.clone()
    } else {
        let sets = spec.update.iter().map(|&i| {
            let column = &fields[i].column;
            let ident = fields[i].ident;
            quote!(changes.#ident.map(|value| #table::#column.eq(__sp::Bind(value))))
        });
        quote! {
            ::std::boxed::Box::pin(async move {
                let found = __sp::BySql(
                    __sp::diesel::update(#visible)
                        .set((#(#sets,)*))
                        .returning(#table::#column),
                )
                #returning
            })
        }
    };
    let set_archived = match spec.archived_at {
        Some(index) if spec.actions.archive || spec.actions.unarchive => {
            let archived = &fields[index].column;
            quote! {
                ::std::boxed::Box::pin(async move {
                    let found = __sp::BySql(
                        __sp::diesel::update(#visible)
                            .set(#table::#archived.eq(__sp::Bind(at)))
                            .returning(#table::#column),
                    )
                    #returning
                })
            }
        }
        _ => nothing,
    };
    quote! {
        fn find_visible_group<'a>(
            conn: &'a mut $conn,
            key: &'a <Self as __sp::SyncModel>::Key,
            ctx: &'a __sp::FilterContext,
        ) -> __sp::BoxFuture<'a, #found> {
            ::std::boxed::Box::pin(async move {
                let found = #visible
                    .select(#table::#column)
                    .first::<#ty>(conn)
                    .await
                    .optional()?;
                ::core::result::Result::Ok(found.map(#map))
            })
        }

        fn update_visible<'a>(
            conn: &'a mut $conn,
            key: &'a <Self as __sp::SyncModel>::Key,
            changes: <Self as __sp::SyncModel>::Changes,
            ctx: &'a __sp::FilterContext,
        ) -> __sp::BoxFuture<'a, #found> {
            let _ = (&conn, &key, &changes, &ctx);
            #update
        }

        fn delete_visible<'a>(
            conn: &'a mut $conn,
            key: &'a <Self as __sp::SyncModel>::Key,
            ctx: &'a __sp::FilterContext,
        ) -> __sp::BoxFuture<'a, #found> {
            ::std::boxed::Box::pin(async move {
                let found = __sp::diesel::delete(#visible)
                    .returning(#table::#column)
                    #returning
            })
        }

        fn set_archived_visible<'a>(
            conn: &'a mut $conn,
            key: &'a <Self as __sp::SyncModel>::Key,
            at: ::core::option::Option<__sp::chrono::DateTime<__sp::chrono::Utc>>,
            ctx: &'a __sp::FilterContext,
        ) -> __sp::BoxFuture<'a, #found> {
            let _ = (&conn, &key, &at, &ctx);
            #set_archived
        }
    }
}
