//! The declaration, parsed and checked: a table and its columns.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Field, GenericArgument, Ident, ItemStruct, LitInt, LitStr, PathArguments, Type};

/// Who writes a column on INSERT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A client must give it.
    Required,
    /// A client may give it; otherwise the column default applies.
    Default,
    /// The database sets it (a serial key, a timestamp trigger); never written.
    Generated,
}

#[derive(Debug)]
pub struct Column {
    pub ident: Ident,
    /// The column's SQL name (the field name without `r#`).
    pub name: String,
    /// The field's type as declared (`Option<T>` for a nullable column).
    pub ty: Type,
    /// `T` for `Option<T>`, else the type itself.
    pub inner: Type,
    pub nullable: bool,
    pub is_key: bool,
    /// The operators named in `filter(...)`, as written. The macro knows
    /// none of them: each is the type `pglive_schema::ops::<CamelCase>`, and
    /// what it means and which columns it filters are defined there.
    pub ops: Vec<Ident>,
    pub order: bool,
    pub write: Write,
    /// Not changed by PATCH (the key always is).
    pub immutable: bool,
    pub text_max: Option<u32>,
    pub range: Option<(i64, i64)>,
    pub docs: Vec<syn::Attribute>,
}

impl Column {
    fn is_string(&self) -> bool {
        last_ident(&self.inner).is_some_and(|i| i == "String")
    }

    fn is_integer(&self) -> bool {
        last_ident(&self.inner).is_some_and(|i| matches!(i.as_str(), "i16" | "i32" | "Int8"))
    }

    pub fn patchable(&self) -> bool {
        !self.is_key && !self.immutable && self.write != Write::Generated
    }

    pub fn insertable(&self) -> bool {
        self.write != Write::Generated
    }
}

/// Which way a relation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// One-to-many: the target's `by` column holds this table's key.
    HasMany,
    /// Many-to-one: this table's `by` column holds the target's key.
    BelongsTo,
}

/// `has_many(comments = Comment, by = task_id)` or
/// `belongs_to(task = Task, by = task_id)`.
#[derive(Debug)]
pub struct Relation {
    /// The include field's name.
    pub name: Ident,
    pub kind: RelationKind,
    /// The related table's row type.
    pub target: syn::Path,
    /// The foreign-key column: the target's for `has_many`, this table's
    /// for `belongs_to`.
    pub by: Ident,
}

#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub schema: String,
    /// Tables whose changes can change what this table's policies let a
    /// context see (a policy with a subquery on them).
    pub depends_on: Vec<String>,
    /// Relations to other live tables, in declaration order.
    pub relations: Vec<Relation>,
    /// `tasks` → `Tasks`: the prefix of every generated query type.
    pub pascal: String,
    pub row: ItemStruct,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn key(&self) -> &Column {
        // `parse` guarantees exactly one key column.
        self.columns
            .iter()
            .find(|c| c.is_key)
            .unwrap_or(&self.columns[0])
    }
}

pub fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// `Option<T>` → `Some(T)`.
fn option_inner(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// Parses `#[live_table(name = "...", key = field, schema = "...")]` and the
/// struct it is on.
pub fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Table> {
    let mut name: Option<LitStr> = None;
    let mut schema: Option<LitStr> = None;
    let mut key: Option<Ident> = None;
    let mut depends_on: Vec<String> = Vec::new();
    let mut relations: Vec<Relation> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("schema") {
            schema = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("key") {
            key = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("depends_on") {
            meta.parse_nested_meta(|table| {
                let dependency = table
                    .path
                    .get_ident()
                    .map(Ident::to_string)
                    .unwrap_or_default();
                if dependency.is_empty() {
                    return Err(table.error("expected a table name"));
                }
                depends_on.push(dependency);
                Ok(())
            })?;
        } else if meta.path.is_ident("has_many") || meta.path.is_ident("belongs_to") {
            let kind = if meta.path.is_ident("has_many") {
                RelationKind::HasMany
            } else {
                RelationKind::BelongsTo
            };
            let mut named: Option<(Ident, syn::Path)> = None;
            let mut by: Option<Ident> = None;
            meta.parse_nested_meta(|part| {
                if part.path.is_ident("by") {
                    by = Some(part.value()?.parse()?);
                } else if let Some(name) = part.path.get_ident() {
                    named = Some((name.clone(), part.value()?.parse()?));
                } else {
                    return Err(part.error("expected `relation = RowType` or `by = column`"));
                }
                Ok(())
            })?;
            let (Some((name, target)), Some(by)) = (named, by) else {
                return Err(meta.error("a relation is `(relation = RowType, by = column)`"));
            };
            relations.push(Relation {
                name,
                kind,
                target,
                by,
            });
        } else {
            return Err(meta.error(
                "expected `name = \"table\"`, `key = column`, `schema = \"schema\"`, `depends_on(table, ...)`, `has_many(...)` or `belongs_to(...)`",
            ));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    let mut row: ItemStruct = syn::parse2(item)?;
    let name = name.ok_or_else(|| {
        syn::Error::new(Span::call_site(), "#[live_table] needs `name = \"table\"`")
    })?;
    let key = key
        .ok_or_else(|| syn::Error::new(Span::call_site(), "#[live_table] needs `key = column`"))?;
    if !row.generics.params.is_empty() {
        return Err(syn::Error::new(
            row.generics.span(),
            "a live table's row type cannot be generic",
        ));
    }
    let syn::Fields::Named(fields) = &mut row.fields else {
        return Err(syn::Error::new(
            row.span(),
            "a live table's row must be a struct with named fields",
        ));
    };
    let mut columns = Vec::new();
    for field in fields.named.iter_mut() {
        columns.push(column(field, &key)?);
    }
    let keys = columns.iter().filter(|c| c.is_key).count();
    if keys != 1 {
        return Err(syn::Error::new(
            key.span(),
            format!("`key = {key}` names no field of this struct"),
        ));
    }
    if columns.iter().any(|c| c.is_key && c.nullable) {
        return Err(syn::Error::new(
            key.span(),
            "the key column cannot be nullable",
        ));
    }
    let table = name.value();
    if table.is_empty()
        || !table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(syn::Error::new(
            name.span(),
            "table names are lower-case snake_case",
        ));
    }
    for relation in &relations {
        if relation.kind == RelationKind::BelongsTo
            && !columns.iter().any(|c| c.ident == relation.by)
        {
            return Err(syn::Error::new(
                relation.by.span(),
                format!("`by = {}` names no field of this struct", relation.by),
            ));
        }
        if columns.iter().any(|c| c.ident == relation.name)
            || relations.iter().filter(|r| r.name == relation.name).count() > 1
        {
            return Err(syn::Error::new(
                relation.name.span(),
                format!(
                    "relation `{}` is named twice (a column or another relation)",
                    relation.name
                ),
            ));
        }
    }
    Ok(Table {
        depends_on,
        relations,
        pascal: pascal(&table),
        name: table,
        schema: schema.map_or_else(|| "public".to_owned(), |s| s.value()),
        row,
        columns,
    })
}

fn column(field: &mut Field, key: &Ident) -> syn::Result<Column> {
    let ident = field
        .ident
        .clone()
        .ok_or_else(|| syn::Error::new(field.span(), "unnamed field"))?;
    let name = ident.to_string().trim_start_matches("r#").to_owned();
    let (inner, nullable) = match option_inner(&field.ty) {
        Some(inner) => (inner, true),
        None => (field.ty.clone(), false),
    };
    let mut col = Column {
        is_key: ident == *key,
        ident,
        name,
        ty: field.ty.clone(),
        inner,
        nullable,
        ops: Vec::new(),
        order: false,
        write: Write::Required,
        immutable: false,
        text_max: None,
        range: None,
        docs: field
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
    };
    if nullable {
        col.write = Write::Default;
    }
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut field.attrs) {
        if !attr.path().is_ident("live") {
            kept.push(attr);
            continue;
        }
        attr.parse_nested_meta(|meta| {
            let what = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
            match what.as_str() {
                "filter" => meta.parse_nested_meta(|op| {
                    let Some(name) = op.path.get_ident() else {
                        return Err(op.error("expected an operator name, e.g. `eq`"));
                    };
                    if col.ops.contains(name) {
                        return Err(op.error("operator listed twice"));
                    }
                    col.ops.push(name.clone());
                    Ok(())
                }),
                "order" => {
                    col.order = true;
                    Ok(())
                }
                "generated" => {
                    col.write = Write::Generated;
                    Ok(())
                }
                "default" => {
                    col.write = Write::Default;
                    Ok(())
                }
                "immutable" => {
                    col.immutable = true;
                    Ok(())
                }
                "text" => {
                    if !col.is_string() {
                        return Err(meta.error("`text(max = N)` applies to String columns only"));
                    }
                    meta.parse_nested_meta(|arg| {
                        if arg.path.is_ident("max") {
                            let n: LitInt = arg.value()?.parse()?;
                            col.text_max = Some(n.base10_parse()?);
                            Ok(())
                        } else {
                            Err(arg.error("expected `max = N`"))
                        }
                    })
                }
                "range" => {
                    if !col.is_integer() {
                        return Err(meta.error("`range(min = A, max = B)` applies to integer columns only"));
                    }
                    let (mut min, mut max) = (i64::MIN, i64::MAX);
                    meta.parse_nested_meta(|arg| {
                        let value = || -> syn::Result<i64> {
                            let expr: syn::Expr = arg.value()?.parse()?;
                            int_literal(&expr)
                        };
                        if arg.path.is_ident("min") {
                            min = value()?;
                        } else if arg.path.is_ident("max") {
                            max = value()?;
                        } else {
                            return Err(arg.error("expected `min = A` or `max = B`"));
                        }
                        Ok(())
                    })?;
                    col.range = Some((min, max));
                    Ok(())
                }
                _ => Err(meta.error(
                    "expected filter(...), order, text(max = N), range(min = A, max = B), generated, default or immutable",
                )),
            }
        })?;
    }
    field.attrs = kept;
    if col.is_key {
        col.order = true;
    }
    Ok(col)
}

fn int_literal(expr: &syn::Expr) -> syn::Result<i64> {
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(n),
            ..
        }) => n.base10_parse(),
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => int_literal(expr).map(|n| -n),
        other => Err(syn::Error::new(other.span(), "expected an integer literal")),
    }
}
