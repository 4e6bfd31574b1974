//! What the derive emits when the input has errors: the errors, plus stub
//! impls so the rest of the user's code type-checks and the user sees the
//! attribute errors alone, not a cascade of "`Task` is not a synced model".

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Path};

/// The `compile_error!`s of `errors` and stub impls for `input`.
pub fn expand(input: &DeriveInput, krate: &Path, errors: &[syn::Error]) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    if !input.generics.params.is_empty() {
        // A stub would need the generics the error is about.
        return quote!(#(#errors)*);
    }
    let ident = &input.ident;
    quote! {
        #(#errors)*

        const _: () = {
            use #krate::__private as __sp;

            #[automatically_derived]
            impl __sp::SyncModel for #ident {
                const META: __sp::ModelMeta = __sp::ModelMeta {
                    name: "",
                    fields: &[],
                    group: __sp::GroupKey::Global,
                    composite: false,
                    actions: __sp::ActionSet::EMPTY,
                    indexed: &[],
                    load_strategy: __sp::LoadStrategy::Instant,
                };
                type Key = ();
                type Cursor = ();
                type Changes = ();
                fn key(&self) {}
                fn cursor(&self) {}
                fn model_id(_: &()) -> ::std::string::String {
                    ::core::unreachable!()
                }
                fn key_from_request(
                    _: &str,
                    _: &__sp::JsonMap,
                ) -> ::core::result::Result<(), __sp::FieldError> {
                    ::core::unreachable!()
                }
                fn group_id(&self) -> ::core::option::Option<::std::string::String> {
                    ::core::unreachable!()
                }
                fn write_row(&self, _: &mut ::std::vec::Vec<u8>) {
                    ::core::unreachable!()
                }
                fn from_insert(
                    _: (),
                    _: &__sp::JsonMap,
                    _: __sp::chrono::DateTime<__sp::chrono::Utc>,
                ) -> ::core::result::Result<Self, __sp::FieldError> {
                    ::core::unreachable!()
                }
                fn insert_data(&self) -> __sp::JsonMap {
                    ::core::unreachable!()
                }
                fn decode_changes(
                    _: &__sp::JsonMap,
                ) -> ::core::result::Result<((), __sp::JsonMap), __sp::FieldError> {
                    ::core::unreachable!()
                }
                fn changed_group(_: &()) -> ::core::option::Option<::std::string::String> {
                    ::core::unreachable!()
                }
                fn changes_nothing(_: &()) -> bool {
                    ::core::unreachable!()
                }
            }

            // Models referencing this one see it as grouped: its own
            // errors are the ones to read.
            #[automatically_derived]
            impl __sp::Grouped for #ident {}

            macro_rules! __stratasync_backend {
                ($conn:ty, $backend:ty) => {
                    #[automatically_derived]
                    impl __sp::DieselModel<$conn> for #ident {
                        fn load_page<'a>(
                            _: &'a mut $conn,
                            _: &'a __sp::RowScope,
                            _: ::core::option::Option<&'a ()>,
                            _: i64,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::std::vec::Vec<Self>>> {
                            ::core::unreachable!()
                        }
                        fn count<'a>(
                            _: &'a mut $conn,
                            _: &'a __sp::RowScope,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<i64>> {
                            ::core::unreachable!()
                        }
                        fn find_group<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                        ) -> __sp::BoxFuture<
                            'a,
                            __sp::diesel::QueryResult<
                                ::core::option::Option<::core::option::Option<::std::string::String>>,
                            >,
                        > {
                            ::core::unreachable!()
                        }
                        fn find<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::core::option::Option<Self>>> {
                            ::core::unreachable!()
                        }
                        fn insert<'a>(
                            _: &'a mut $conn,
                            _: &'a Self,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                            ::core::unreachable!()
                        }
                        fn update<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                            _: (),
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                            ::core::unreachable!()
                        }
                        fn delete<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                            ::core::unreachable!()
                        }
                        fn set_archived<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                            _: ::core::option::Option<__sp::chrono::DateTime<__sp::chrono::Utc>>,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<usize>> {
                            ::core::unreachable!()
                        }
                        fn find_visible_group<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                            _: &'a __sp::FilterContext,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::core::option::Option<::core::option::Option<::std::string::String>>>> {
                            ::core::unreachable!()
                        }
                        fn update_visible<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                            _: (),
                            _: &'a __sp::FilterContext,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::core::option::Option<::core::option::Option<::std::string::String>>>> {
                            ::core::unreachable!()
                        }
                        fn delete_visible<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                            _: &'a __sp::FilterContext,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::core::option::Option<::core::option::Option<::std::string::String>>>> {
                            ::core::unreachable!()
                        }
                        fn set_archived_visible<'a>(
                            _: &'a mut $conn,
                            _: &'a (),
                            _: ::core::option::Option<__sp::chrono::DateTime<__sp::chrono::Utc>>,
                            _: &'a __sp::FilterContext,
                        ) -> __sp::BoxFuture<'a, __sp::diesel::QueryResult<::core::option::Option<::core::option::Option<::std::string::String>>>> {
                            ::core::unreachable!()
                        }
                    }
                };
            }

            __sp::for_each_backend!(__stratasync_backend);
        };
    }
}
