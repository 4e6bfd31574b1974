//! The typed model of the derive input. Every node keeps the syn node it
//! came from, so later stages can point errors at the user's tokens.

use syn::{Data, DeriveInput, Fields, Ident, Type};

use crate::attr;
use crate::ctxt::Ctxt;

/// A struct deriving `SyncModel`.
pub struct Model<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// Its container attributes.
    pub attrs: attr::Container,
    /// Its fields in declaration order.
    pub fields: Vec<Field<'a>>,
}

/// One named field.
pub struct Field<'a> {
    /// The field's name.
    pub ident: &'a Ident,
    /// The field's type.
    pub ty: &'a Type,
    /// Its field attributes.
    pub attrs: attr::Field,
    /// The diesel column it maps to (`column_name` or the field name).
    pub column: Ident,
    /// Its name on the wire: `rename`, else the camelCase of the field name.
    pub wire: String,
}

impl<'a> Model<'a> {
    /// Builds the model of `input`, or `None` (with errors in `cx`) when the
    /// input is not a non-generic struct with named fields.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = attr::Container::from_ast(cx, input);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(fields) => Some(fields),
                Fields::Unnamed(fields) => {
                    cx.error_spanned_by(
                        fields,
                        "#[derive(SyncModel)] needs a struct with named fields (one per column)\n\
                         help: write `struct Task { id: Uuid, title: String }`, not `struct Task(Uuid, String)`",
                    );
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        &input.ident,
                        "#[derive(SyncModel)] needs a struct with named fields (one per column); \
                         a unit struct has none\n\
                         help: write `struct Task { id: Uuid, title: String }`",
                    );
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "#[derive(SyncModel)] works on structs only: a synced model is one table row\n\
                     help: write `struct Task { id: Uuid, title: String }`",
                );
                None
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "#[derive(SyncModel)] works on structs only: a synced model is one table row",
                );
                None
            }
        };
        let generic = !input.generics.params.is_empty();
        if generic {
            cx.error_spanned_by(
                &input.generics,
                "#[derive(SyncModel)] does not support generic structs: a synced model is one \
                 concrete row type of one table\n\
                 help: remove the generic parameters",
            );
        }
        if generic {
            return None;
        }
        let fields = fields?
            .named
            .iter()
            .filter_map(|field| Field::from_ast(cx, field))
            .collect();
        Some(Model {
            ident: &input.ident,
            attrs,
            fields,
        })
    }

    /// The field named `name`.
    pub fn field(&self, name: &Ident) -> Option<usize> {
        self.fields.iter().position(|f| f.ident == name)
    }
}

impl<'a> Field<'a> {
    fn from_ast(cx: &Ctxt, field: &'a syn::Field) -> Option<Self> {
        let ident = field.ident.as_ref()?;
        let attrs = attr::Field::from_ast(cx, field);
        let name = ident_name(ident);
        let wire = match &attrs.rename {
            Some(lit) => lit.value(),
            None => camel_case(&name),
        };
        let column = attrs.column_name.clone().unwrap_or_else(|| ident.clone());
        Some(Field {
            ident,
            ty: &field.ty,
            attrs,
            column,
            wire,
        })
    }

    /// The column name as a string (for `FieldMeta::column`).
    pub fn column_name(&self) -> String {
        ident_name(&self.column)
    }
}

/// An identifier's name without any `r#`.
pub fn ident_name(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// `completed_at` → `completedAt`; leading underscores are kept.
pub fn camel_case(name: &str) -> String {
    let rest = name.trim_start_matches('_');
    let mut out = name[..name.len() - rest.len()].to_owned();
    let mut upper = false;
    for ch in rest.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Syntactic views of a field type.
pub mod types {
    use syn::{GenericArgument, PathArguments, Type};

    /// The last path segment's name (`DateTime` for `chrono::DateTime<Utc>`).
    pub fn last_ident(ty: &Type) -> Option<String> {
        match ty {
            Type::Path(path) if path.qself.is_none() => {
                path.path.segments.last().map(|s| s.ident.to_string())
            }
            Type::Group(group) => last_ident(&group.elem),
            Type::Paren(paren) => last_ident(&paren.elem),
            _ => None,
        }
    }

    /// `T` of `Option<T>`.
    pub fn option_inner(ty: &Type) -> Option<&Type> {
        let Type::Path(path) = ty else { return None };
        let last = path.path.segments.last()?;
        if last.ident != "Option" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        match args.args.first()? {
            GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
            _ => None,
        }
    }

    /// The type as the user would write it (`Option<DateTime<Utc>>`).
    pub fn display(ty: &Type) -> String {
        quote::ToTokens::to_token_stream(ty)
            .to_string()
            .replace(" <", "<")
            .replace("< ", "<")
            .replace(" >", ">")
            .replace(" ::", "::")
            .replace(":: ", "::")
            .replace(" ,", ",")
            .replace("& ", "&")
    }

    /// Whether the type is `DateTime<..>`.
    pub fn is_instant(ty: &Type) -> bool {
        last_ident(ty).as_deref() == Some("DateTime")
    }

    /// Whether the type is `NaiveDate`.
    pub fn is_date(ty: &Type) -> bool {
        last_ident(ty).as_deref() == Some("NaiveDate")
    }
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn camel_cases_snake_names() {
        assert_eq!(camel_case("completed_at"), "completedAt");
        assert_eq!(camel_case("id"), "id");
        assert_eq!(camel_case("a_b_c"), "aBC");
        assert_eq!(camel_case("_private"), "_private");
    }
}
