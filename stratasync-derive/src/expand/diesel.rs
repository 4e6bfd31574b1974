//! `impl DieselModel<Conn>` for every backend the runtime is built with.
//!
//! The impls are written once inside a local `macro_rules!` that the
//! runtime's `for_each_backend!` invokes with each connection and backend
//! type. Values are bound with `Bind` so portable SQL types work.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Index;
use syn::spanned::Spanned;

use super::{from_id, referenced, to_id, wire};
use crate::valid::{Group, Kind, Spec};

/// The key of a row as a bindable reference, per key column.
fn key_refs(spec: &Spec) -> Vec<TokenStream> {
    match &spec.kind {
        Kind::Standard { .. } => vec![quote!(key)],
        Kind::Composite { keys } => (0..keys.len())
            .map(|position| {
                let position = Index::from(position);
                quote!(&key.#position)
            })
            .collect(),
    }
}

/// `.filter(col.eq(Bind(key)))` for each key column.
fn key_filter(spec: &Spec) -> TokenStream {
    let table = &spec.table;
    let filters = spec.keys().into_iter().zip(key_refs(spec)).map(|(i, key)| {
        let column = &spec.model.fields[i].column;
        quote!(.filter(#table::#column.eq(__sp::Bind(#key))))
    });
    quote!(#table::table #(#filters)*)
}

/// The keyset condition `row > after` over the cursor columns.
fn after_condition(spec: &Spec) -> TokenStream {
    let table = &spec.table;
    let columns: Vec<_> = spec
        .cursor
        .iter()
        .map(|&i| &spec.model.fields[i].column)
        .collect();
    if columns.len() == 1 {
        let column = columns[0];
        return quote!(#table::#column.gt(__sp::Bind(after)));
    }
    let mut condition = TokenStream::new();
    for (position, column) in columns.iter().enumerate().rev() {
        let index = Index::from(position);
        let greater = quote!(#table::#column.gt(__sp::Bind(&after.#index)));
        condition = if condition.is_empty() {
            greater
        } else {
            quote!(#greater.or(#table::#column.eq(__sp::Bind(&after.#index)).and(#condition)))
        };
    }
    condition
}

/// The filter of the model's scope function for the `FilterContext` `ctx`
/// (an expression), spanned at the function's path so that rustc checks its
/// signature there.
pub(super) fn scope_filter(spec: &Spec, ctx: TokenStream) -> Option<TokenStream> {
    let table = &spec.table;
    spec.scope.as_ref().map(|path| {
        quote_spanned! {path.span()=>
            __sp::scope_filter::<#table::table, $backend, _>(#path, #ctx)
        }
    })
}

/// The body of `__scoped`: the boxed query of the rows in scope.
fn scope_body(spec: &Spec) -> TokenStream {
    let table = &spec.table;
    let fields = &spec.model.fields;
    let group_column = match (&spec.group, &spec.kind) {
        (Group::Column { field, .. }, _) => Some(*field),
        (Group::OwnId, Kind::Standard { id }) => Some(*id),
        _ => None,
    };
    let group_filter = group_column.map(|i| {
        let ty = fields[i].ty;
        let from = from_id(&fields[i]);
        let column = &fields[i].column;
        quote! {
            let groups: ::std::vec::Vec<__sp::Bind<#ty>> = scope
                .groups
                .iter()
                .filter_map(|group| #from(group))
                .map(__sp::Bind)
                .collect();
            query = query.filter(#table::#column.eq_any(groups));
        }
    });
    let index_filter = if spec.indexed.is_empty() {
        quote! {
            if scope.index.is_some() {
                return ::core::option::Option::None;
            }
        }
    } else {
        let arms = spec.indexed.iter().map(|&i| {
            let from = from_id(&fields[i]);
            let column = &fields[i].column;
            let wire = wire(&fields[i]);
            quote! {
                #wire => {
                    let value = #from(value)?;
                    query = query.filter(#table::#column.eq(__sp::Bind(value)));
                }
            }
        });
        quote! {
            if let ::core::option::Option::Some((key, value)) = &scope.index {
                match key.as_str() {
                    #(#arms)*
                    _ => return ::core::option::Option::None,
                }
            }
        }
    };
    let read_scope = scope_filter(spec, quote!(&scope.context())).map(|filter| {
        quote! {
            query = query.filter(#filter);
        }
    });
    let binding = if group_filter.is_some() || read_scope.is_some() || !spec.indexed.is_empty() {
        quote!(mut query)
    } else {
        quote!(query)
    };
    quote! {
        let #binding = #table::table.into_boxed::<$backend>();
        #group_filter
        #read_scope
        #index_filter
        ::core::option::Option::Some(query)
    }
}

/// `reference_target` of a standard model whose rows belong to groups: its
/// rows with some ids in one group.
fn reference_target(spec: &Spec) -> Option<TokenStream> {
    let table = &spec.table;
    let fields = &spec.model.fields;
    let Kind::Standard { id } = spec.kind else {
        return None;
    };
    let group = match spec.group {
        Group::Column { field, .. } => field,
        Group::OwnId => id,
        Group::Global => return None,
    };
    let id_column = &fields[id].column;
    let id_ty = fields[id].ty;
    let group_column = &fields[group].column;
    let from_group = from_id(&fields[group]);
    Some(quote! {
        fn reference_target(
            keys: ::std::vec::Vec<<Self as __sp::SyncModel>::Key>,
            group: &str,
        ) -> ::core::option::Option<__sp::ReferenceTarget<$backend>> {
            let group = #from_group(group)?;
            let rows = keys.len();
            let keys: ::std::vec::Vec<__sp::Bind<#id_ty>> =
                keys.into_iter().map(__sp::Bind).collect();
            ::core::option::Option::Some(__sp::ReferenceTarget::new(
                #table::table,
                #table::#id_column
                    .eq_any(keys)
                    .and(#table::#group_column.eq(__sp::Bind(group))),
                rows,
            ))
        }
    })
}

/// `references_in_group` of a model with `references(...)`: one check of
/// every referenced model, grouped by model as written.
fn references_in_group(spec: &Spec) -> Option<TokenStream> {
    if spec.references.is_empty() {
        return None;
    }
    let fields = &spec.model.fields;
    let mut models: Vec<(&syn::Path, Vec<usize>)> = Vec::new();
    for (index, model) in &spec.references {
        let name = quote!(#model).to_string();
        match models
            .iter_mut()
            .find(|(m, _)| quote!(#m).to_string() == name)
        {
            Some((_, indexes)) => indexes.push(*index),
            None => models.push((model, vec![*index])),
        }
    }
    let adds = models.iter().map(|(model, indexes)| {
        let values = indexes.iter().map(|&i| {
            let ident = fields[i].ident;
            let read = referenced(fields[i].ty, model);
            quote!(#read(&row.#ident))
        });
        quote! {
            check.add::<#model, $conn>(
                [#(#values),*].into_iter().flatten().cloned().collect(),
                &group,
            );
        }
    });
    Some(quote! {
        fn references_in_group<'a>(
            conn: &'a mut $conn,
            row: &'a Self,
        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<bool>> {
            ::std::boxed::Box::pin(async move {
                let ::core::option::Option::Some(group) = <Self as __sp::SyncModel>::group_id(row) else {
                    return ::core::result::Result::Ok(false);
                };
                let mut check = __sp::ReferenceCheck::<$backend>::default();
                #(#adds)*
                match check.finish() {
                    ::core::result::Result::Err(()) => ::core::result::Result::Ok(false),
                    ::core::result::Result::Ok(::core::option::Option::None) => {
                        ::core::result::Result::Ok(true)
                    }
                    ::core::result::Result::Ok(::core::option::Option::Some((query, rows))) => {
                        let found = __sp::diesel_async::RunQueryDsl::load::<i32>(query, conn).await?;
                        ::core::result::Result::Ok(found.len() == rows)
                    }
                }
            })
        }
    })
}

/// The `macro_rules!` that implements `DieselModel` and its invocation.
pub fn diesel_model(spec: &Spec) -> TokenStream {
    let ident = spec.model.ident;
    let table = &spec.table;
    let fields = &spec.model.fields;
    let scope_body = scope_body(spec);
    let after = after_condition(spec);
    let order = {
        let columns = spec.cursor.iter().map(|&i| &fields[i].column);
        if spec.cursor.len() == 1 {
            quote!(#(#table::#columns.asc())*)
        } else {
            quote!((#(#table::#columns.asc(),)*))
        }
    };
    let by_key = key_filter(spec);
    let reference_target = reference_target(spec);
    let references_in_group = references_in_group(spec);
    let (group_column, group_ty, group_map) = match (&spec.group, &spec.kind) {
        (Group::Column { field, .. }, _) | (Group::OwnId, Kind::Standard { id: field }) => {
            let to = to_id(&fields[*field]);
            (
                &fields[*field].column,
                fields[*field].ty,
                quote!(|group| ::core::option::Option::Some(#to(&group))),
            )
        }
        _ => {
            let first = spec.keys()[0];
            (
                &fields[first].column,
                fields[first].ty,
                quote!(|_| ::core::option::Option::None),
            )
        }
    };

    let visible_writes = super::visible::visible_writes(
        spec,
        &by_key,
        &super::visible::Returned {
            column: group_column,
            ty: group_ty,
            map: group_map.clone(),
        },
    );

    let insert_values = fields.iter().map(|field| {
        let column = &field.column;
        let ident = field.ident;
        quote!(#table::#column.eq(__sp::Bind(&row.#ident)))
    });

    let update = if spec.update.is_empty() {
        quote! {
            fn update<'a>(
                _conn: &'a mut $conn,
                _key: &'a <Self as __sp::SyncModel>::Key,
                _changes: <Self as __sp::SyncModel>::Changes,
            ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                ::std::boxed::Box::pin(async { ::core::result::Result::Ok(0) })
            }
        }
    } else {
        let sets = spec.update.iter().map(|&i| {
            let column = &fields[i].column;
            let ident = fields[i].ident;
            quote!(changes.#ident.map(|value| #table::#column.eq(__sp::Bind(value))))
        });
        quote! {
            fn update<'a>(
                conn: &'a mut $conn,
                key: &'a <Self as __sp::SyncModel>::Key,
                changes: <Self as __sp::SyncModel>::Changes,
            ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                ::std::boxed::Box::pin(async move {
                    __sp::BySql(__sp::diesel::update(#by_key).set((#(#sets,)*)))
                        .execute(conn)
                        .await
                })
            }
        }
    };

    let set_archived = match spec.archived_at {
        Some(index) if spec.actions.archive || spec.actions.unarchive => {
            let column = &fields[index].column;
            quote! {
                fn set_archived<'a>(
                    conn: &'a mut $conn,
                    key: &'a <Self as __sp::SyncModel>::Key,
                    at: ::core::option::Option<__sp::chrono::DateTime<__sp::chrono::Utc>>,
                ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                    ::std::boxed::Box::pin(async move {
                        __sp::BySql(
                            __sp::diesel::update(#by_key).set(#table::#column.eq(__sp::Bind(at))),
                        )
                        .execute(conn)
                        .await
                    })
                }
            }
        }
        _ => quote! {
            fn set_archived<'a>(
                _conn: &'a mut $conn,
                _key: &'a <Self as __sp::SyncModel>::Key,
                _at: ::core::option::Option<__sp::chrono::DateTime<__sp::chrono::Utc>>,
            ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                ::std::boxed::Box::pin(async { ::core::result::Result::Ok(0) })
            }
        },
    };

    quote! {
        macro_rules! __stratasync_backend {
            ($conn:ty, $backend:ty) => {
                const _: () = {
                    #[allow(unused_imports)]
                    use __sp::diesel::{
                        BoolExpressionMethods as _, ExpressionMethods as _,
                        OptionalExtension as _, QueryDsl as _,
                    };
                    #[allow(unused_imports)]
                    use __sp::diesel_async::RunQueryDsl as _;

                    /// The rows in `scope`; `None` when the scope cannot match a row.
                    fn __scoped(
                        scope: &__sp::RowScope,
                    ) -> ::core::option::Option<#table::BoxedQuery<'static, $backend>> {
                        #scope_body
                    }

                    #[automatically_derived]
                    impl __sp::DieselModel<$conn> for #ident {
                        fn load_page<'a>(
                            conn: &'a mut $conn,
                            scope: &'a __sp::RowScope,
                            after: ::core::option::Option<&'a <Self as __sp::SyncModel>::Cursor>,
                            limit: i64,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::std::vec::Vec<Self>>> {
                            ::std::boxed::Box::pin(async move {
                                let ::core::option::Option::Some(mut query) = __scoped(scope) else {
                                    return ::core::result::Result::Ok(::std::vec::Vec::new());
                                };
                                if let ::core::option::Option::Some(after) = after {
                                    query = query.filter(#after);
                                }
                                query
                                    .order(#order)
                                    .limit(limit)
                                    .select(<Self as __sp::diesel::SelectableHelper<$backend>>::as_select())
                                    .load::<Self>(conn)
                                    .await
                            })
                        }

                        fn count<'a>(
                            conn: &'a mut $conn,
                            scope: &'a __sp::RowScope,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<i64>> {
                            ::std::boxed::Box::pin(async move {
                                let ::core::option::Option::Some(query) = __scoped(scope) else {
                                    return ::core::result::Result::Ok(0);
                                };
                                query.count().get_result::<i64>(conn).await
                            })
                        }

                        fn find_group<'a>(
                            conn: &'a mut $conn,
                            key: &'a <Self as __sp::SyncModel>::Key,
                        ) -> __sp::BoxFuture<
                            'a,
                            __sp::diesel::QueryResult<
                                ::core::option::Option<::core::option::Option<::std::string::String>>,
                            >,
                        > {
                            ::std::boxed::Box::pin(async move {
                                let found = #by_key
                                    .select(#table::#group_column)
                                    .first::<#group_ty>(conn)
                                    .await
                                    .optional()?;
                                ::core::result::Result::Ok(found.map(#group_map))
                            })
                        }

                        fn find<'a>(
                            conn: &'a mut $conn,
                            key: &'a <Self as __sp::SyncModel>::Key,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::core::option::Option<Self>>> {
                            ::std::boxed::Box::pin(async move {
                                #by_key
                                    .select(<Self as __sp::diesel::SelectableHelper<$backend>>::as_select())
                                    .first::<Self>(conn)
                                    .await
                                    .optional()
                            })
                        }

                        fn insert<'a>(
                            conn: &'a mut $conn,
                            row: &'a Self,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                            ::std::boxed::Box::pin(async move {
                                __sp::diesel::insert_into(#table::table)
                                    .values((#(#insert_values,)*))
                                    .execute(conn)
                                    .await
                            })
                        }

                        #update

                        fn delete<'a>(
                            conn: &'a mut $conn,
                            key: &'a <Self as __sp::SyncModel>::Key,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                            ::std::boxed::Box::pin(async move {
                                __sp::diesel::delete(#by_key).execute(conn).await
                            })
                        }

                        #set_archived

                        #visible_writes

                        #reference_target

                        #references_in_group
                    }
                };
            };
        }

        __sp::for_each_backend!(__stratasync_backend);
    }
}
