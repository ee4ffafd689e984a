//! `#[live_table]`: everything one table declaration generates.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use crate::model::{self, Column, RelationKind, Table, Write};

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let table = model::parse(attr, item)?;
    let g = Gen::new(&table);
    let row = g.row_struct();
    let decode = g.decode();
    let query = g.query_types();
    let writes = g.write_types();
    let live = g.live_impl();
    let names = g.operator_names();
    Ok(quote! {
        #row
        #decode
        #query
        #writes
        #live
        #names
    })
}

/// Names and paths shared by the generators.
struct Gen<'a> {
    t: &'a Table,
    /// `::pglive_schema`
    s: TokenStream,
    row: &'a Ident,
    query: Ident,
    filter: Ident,
    order: Ident,
    order_by: Ident,
    new: Ident,
    patch: Ident,
    /// `CommentWindow`: what a `has_many` include of this table asks for.
    window: Ident,
    /// `TasksInclude`, `TasksRelated`: only for a table with relations.
    include: Ident,
    related: Ident,
}

/// One filter field: a column and one of its operators.
struct FilterField<'a> {
    col: &'a Column,
    /// The operator as the declaration names it (`is_null`).
    name: &'a Ident,
    /// Its type, `::pglive_schema::ops::IsNull`.
    op: TokenStream,
    field: Ident,
    wire: String,
}

impl<'a> Gen<'a> {
    fn new(t: &'a Table) -> Gen<'a> {
        let row = &t.row.ident;
        Gen {
            t,
            s: quote!(::pglive_schema),
            row,
            query: format_ident!("{}Query", t.pascal),
            filter: format_ident!("{}Filter", t.pascal),
            order: format_ident!("{}Order", t.pascal),
            order_by: format_ident!("{}OrderBy", t.pascal),
            new: format_ident!("New{}", row),
            patch: format_ident!("{}Patch", row),
            window: format_ident!("{}Window", row),
            include: format_ident!("{}Include", t.pascal),
            related: format_ident!("{}Related", t.pascal),
        }
    }

    fn filters(&self) -> Vec<FilterField<'a>> {
        let mut out = Vec::new();
        for col in &self.t.columns {
            for name in &col.ops {
                let wire = format!("{}_{}", col.name, name);
                out.push(FilterField {
                    col,
                    name,
                    op: operator(name),
                    field: format_ident!("{}", wire),
                    wire,
                });
            }
        }
        out
    }

    fn ordered(&self) -> Vec<(&'a Column, Ident)> {
        self.t
            .columns
            .iter()
            .filter(|c| c.order)
            .map(|c| (c, format_ident!("{}", model::pascal(&c.name))))
            .collect()
    }

    /// Each operator's name is the one its type gives (`Op::name`): the
    /// filter field's wire suffix is written from the declaration, the
    /// metadata's from the type, and clients build one from the other.
    fn operator_names(&self) -> TokenStream {
        let s = &self.s;
        let checks = self.filters().into_iter().map(|f| {
            let (op, name) = (&f.op, f.name.to_string());
            let message = format!(
                "filter({name}): the type `pglive_schema::ops::{}` is not named `{name}` in `Op::name`",
                model::pascal(&name)
            );
            quote! {
                ::std::assert!(#s::live::same_str(<#op as #s::ops::Operator>::OP.name(), #name), #message);
            }
        });
        quote! {
            const _: () = {
                #(#checks)*
            };
        }
    }

    /// The column type's implementation of the operator, which holds its
    /// SQL and Rust meanings: `<Option<String> as ops::Supports<ops::IsNull>>`.
    /// It is spanned at the column, so that a pair `pglive_schema::ops` does
    /// not implement (`contains` on an `i32`) is reported there, once.
    fn supports(&self, f: &FilterField) -> TokenStream {
        let (ty, op) = (&f.col.ty, &f.op);
        quote_spanned!(f.col.ident.span() => <#ty as ::pglive_schema::ops::Supports<#op>>)
    }

    /// What a client gives the operator for this column, from the
    /// operator's type: `<ops::In as ops::Operator>::Operand<i32>` is
    /// `Vec<i32>`. It names no column type's `Supports`, so that a pair
    /// without one is reported only where `supports` is.
    fn operand_type(&self, f: &FilterField) -> TokenStream {
        let s = &self.s;
        let (inner, op) = (&f.col.inner, &f.op);
        quote!(<#op as #s::ops::Operator>::Operand<#inner>)
    }

    fn column_sql(&self, col: &Column) -> TokenStream {
        let s = &self.s;
        let ident = format!("\"{}\"", col.name);
        let inner = &col.inner;
        quote!(#s::ops::ColumnSql { ident: #ident, text: <#inner as #s::scalar::Scalar>::TEXT })
    }

    /// The row's value for `col` as `Option<&T>` (NULL is `None`).
    fn value(&self, row: TokenStream, col: &Column) -> TokenStream {
        let ident = &col.ident;
        if col.nullable {
            quote!(#row.#ident.as_ref())
        } else {
            quote!(::std::option::Option::Some(&#row.#ident))
        }
    }

    fn table_sql(&self) -> String {
        format!("\"{}\".\"{}\"", self.t.schema, self.t.name)
    }

    fn column_list(&self) -> String {
        self.t
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn row_struct(&self) -> TokenStream {
        let row = &self.t.row;
        quote! {
            #[derive(
                Debug,
                Clone,
                PartialEq,
                ::serde::Serialize,
                ::serde::Deserialize,
                ::ts_rs::TS,
                ::schemars::JsonSchema
            )]
            #row
        }
    }

    /// Rows are read by column name, whatever the statement's column order.
    fn decode(&self) -> TokenStream {
        let s = &self.s;
        let row = self.row;
        let fields = self.t.columns.iter().map(|c| {
            let ident = &c.ident;
            let name = &c.name;
            let inner = &c.inner;
            let ty = &c.ty;
            let sql = if c.nullable {
                quote!(::diesel::sql_types::Nullable<<#inner as #s::scalar::Scalar>::Sql>)
            } else {
                quote!(<#inner as #s::scalar::Scalar>::Sql)
            };
            quote!(#ident: ::diesel::row::NamedRow::get::<#sql, #ty>(row, #name)?)
        });
        quote! {
            impl ::diesel::deserialize::QueryableByName<::diesel::pg::Pg> for #row {
                fn build<'__a>(
                    row: &impl ::diesel::row::NamedRow<'__a, ::diesel::pg::Pg>,
                ) -> ::diesel::deserialize::Result<Self> {
                    ::std::result::Result::Ok(#row { #(#fields,)* })
                }
            }
        }
    }

    fn query_types(&self) -> TokenStream {
        let s = &self.s;
        let vis = &self.t.row.vis;
        let (query, filter, order, order_by) =
            (&self.query, &self.filter, &self.order, &self.order_by);
        let table = &self.t.name;
        let key = self.t.key();
        let filter_fields = self.filters().into_iter().map(|f| {
            let field = &f.field;
            let ty = self.operand_type(&f);
            let (name, col) = (f.name, &f.col.name);
            quote! {
                #[doc = #s::ops::filter_doc!(#name, #col)]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub #field: ::std::option::Option<#ty>,
            }
        });
        let variants = self.ordered().into_iter().map(|(c, v)| {
            let name = &c.name;
            let default = if c.is_key {
                quote!(#[default])
            } else {
                quote!()
            };
            quote! {
                #default
                #[serde(rename = #name)]
                #v,
            }
        });
        let query_doc = format!(
            " A live query over `{table}`. `{{\"table\":\"{table}\"}}` is every row, ordered by `{}`.",
            key.name
        );
        let filter_doc = format!(" Conditions on `{table}`; every given condition must hold.");
        let window = &self.window;
        let (include_field, relation_types) = self.relation_types();
        let order_by_doc = format!(
            " Columns `{table}` can be ordered by. Ties are broken by `{}` in the same direction.",
            key.name
        );
        quote! {
            #[doc = #query_doc]
            #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            #vis struct #query {
                #[serde(default, deserialize_with = "::pglive_schema::live::object", skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub filter: ::std::option::Option<#filter>,
                #[serde(default, deserialize_with = "::pglive_schema::live::object", skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub order: ::std::option::Option<#order>,
                /// At most this many rows (after ordering).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub limit: ::std::option::Option<u32>,
                /// Also keep the number of rows that pass the filter, whatever
                /// the limit, live: snapshots and diffs then carry `count`.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub count: ::std::option::Option<bool>,
                #include_field
            }

            #relation_types

            /// What a `has_many` include of this table asks for: the related
            /// rows that pass `filter`, in `order`, at most `limit` of them
            /// (required), and with `count: true` how many pass the filter.
            #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            #vis struct #window {
                #[serde(default, deserialize_with = "::pglive_schema::live::object", skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub filter: ::std::option::Option<#filter>,
                #[serde(default, deserialize_with = "::pglive_schema::live::object", skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub order: ::std::option::Option<#order>,
                /// At most this many related rows per row (1 to 100).
                pub limit: u32,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub count: ::std::option::Option<bool>,
            }

            impl ::std::convert::From<#window> for #query {
                #[allow(clippy::needless_update)]
                fn from(w: #window) -> #query {
                    #query {
                        filter: w.filter,
                        order: w.order,
                        limit: ::std::option::Option::Some(w.limit),
                        count: w.count,
                        ..#query::default()
                    }
                }
            }

            impl ::std::convert::From<#query> for #window {
                fn from(q: #query) -> #window {
                    #window {
                        filter: q.filter,
                        order: q.order,
                        limit: q.limit.unwrap_or(1),
                        count: q.count,
                    }
                }
            }

            #[doc = #filter_doc]
            #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            #vis struct #filter {
                #(#filter_fields)*
            }

            #[doc = #order_by_doc]
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #vis enum #order_by {
                #(#variants)*
            }

            /// The order of a query's rows; ascending when `dir` is omitted.
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            #vis struct #order {
                pub by: #order_by,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub dir: ::std::option::Option<#s::live::Direction>,
            }
        }
    }

    /// The target's `Window` type: `Comment` → `CommentWindow`, at the
    /// same path.
    fn target_window(target: &syn::Path) -> syn::Path {
        let mut path = target.clone();
        if let Some(last) = path.segments.last_mut() {
            last.ident = format_ident!("{}Window", last.ident);
        }
        path
    }

    /// For a table with relations: the query's `include` field, the
    /// `Include` type it has, and the `Related` type that describes what
    /// clients receive per row (for TypeScript).
    fn relation_types(&self) -> (TokenStream, TokenStream) {
        let relations = &self.t.relations;
        if relations.is_empty() {
            return (quote!(), quote!());
        }
        let vis = &self.t.row.vis;
        let (include, related) = (&self.include, &self.related);
        let table = &self.t.name;
        let include_fields = relations.iter().map(|r| {
            let name = &r.name;
            match r.kind {
                RelationKind::HasMany => {
                    let window = Self::target_window(&r.target);
                    let doc = format!(" The related `{name}` rows of each row (`has_many`).");
                    quote! {
                        #[doc = #doc]
                        #[serde(default, deserialize_with = "::pglive_schema::live::object", skip_serializing_if = "Option::is_none")]
                        #[ts(optional)]
                        pub #name: ::std::option::Option<#window>,
                    }
                }
                RelationKind::BelongsTo => {
                    let doc = format!(" `true`: each row's `{name}` row (`belongs_to`), or null.");
                    quote! {
                        #[doc = #doc]
                        #[serde(default, skip_serializing_if = "Option::is_none")]
                        #[ts(optional)]
                        pub #name: ::std::option::Option<bool>,
                    }
                }
            }
        });
        let related_fields = relations.iter().map(|r| {
            let (name, target) = (&r.name, &r.target);
            match r.kind {
                RelationKind::HasMany => {
                    let count = format_ident!("{}_count", name);
                    quote! {
                        #[ts(optional)]
                        pub #name: ::std::option::Option<::std::vec::Vec<#target>>,
                        #[ts(optional, type = "number")]
                        pub #count: ::std::option::Option<u64>,
                    }
                }
                RelationKind::BelongsTo => quote! {
                    #[ts(optional)]
                    pub #name: ::std::option::Option<::std::option::Option<#target>>,
                },
            }
        });
        let include_doc = format!(" The relations a query over `{table}` includes in each row.");
        let related_doc = format!(
            " What an included relation adds to a row of `{table}` in the client: the related rows (and `<relation>_count` with `count: true`)."
        );
        (
            quote! {
                /// Related rows to keep live with each row.
                #[serde(default, deserialize_with = "::pglive_schema::live::object", skip_serializing_if = "Option::is_none")]
                #[ts(optional)]
                pub include: ::std::option::Option<#include>,
            },
            quote! {
                #[doc = #include_doc]
                #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
                #[serde(deny_unknown_fields)]
                #vis struct #include {
                    #(#include_fields)*
                }

                #[doc = #related_doc]
                #[derive(Debug, Clone, Default, PartialEq, ::ts_rs::TS)]
                #vis struct #related {
                    #(#related_fields)*
                }
            },
        )
    }

    /// `LiveTable`'s relation parts: the `RELATIONS` constant, the body of
    /// `includes`, the include checks of `validate` and the `include` field
    /// of `normalized`.
    fn relation_impl(&self) -> (TokenStream, TokenStream, TokenStream, TokenStream) {
        let s = &self.s;
        let relations = &self.t.relations;
        let key = self.t.key();
        let (key_ident, key_name, key_ty) = (&key.ident, &key.name, &key.inner);
        let metas = relations.iter().map(|r| {
            let name = r.name.to_string();
            let target = &r.target;
            let by = r.by.to_string();
            match r.kind {
                RelationKind::HasMany => quote! {
                    #s::live::Relation {
                        name: #name,
                        kind: #s::live::RelationKind::HasMany,
                        target: <#target as #s::live::LiveTable>::NAME,
                        local: #key_name,
                        remote: #by,
                    }
                },
                RelationKind::BelongsTo => quote! {
                    #s::live::Relation {
                        name: #name,
                        kind: #s::live::RelationKind::BelongsTo,
                        target: <#target as #s::live::LiveTable>::NAME,
                        local: #by,
                        remote: <#target as #s::live::LiveTable>::KEY,
                    }
                },
            }
        });
        let meta = quote!(&[#(#metas),*]);
        if relations.is_empty() {
            return (meta, quote!(), quote!(), quote!());
        }
        let include = &self.include;
        let visits = relations.iter().enumerate().map(|(i, r)| {
            let (name, target, by) = (&r.name, &r.target, &r.by);
            match r.kind {
                RelationKind::HasMany => quote! {
                    if let ::std::option::Option::Some(w) = &include.#name {
                        visitor.include::<#target, #key_ty>(
                            &Self::RELATIONS[#i],
                            |row: &Self| ::std::option::Option::Some(::std::clone::Clone::clone(&row.#key_ident)),
                            |r: &#target| ::std::convert::From::from(::std::clone::Clone::clone(&r.#by)),
                            ::std::convert::From::from(::std::clone::Clone::clone(w)),
                            w.limit,
                        );
                    }
                },
                RelationKind::BelongsTo => quote! {
                    if include.#name == ::std::option::Option::Some(true) {
                        visitor.include::<#target, <#target as #s::live::LiveTable>::Key>(
                            &Self::RELATIONS[#i],
                            |row: &Self| ::std::convert::From::from(::std::clone::Clone::clone(&row.#by)),
                            |r: &#target| ::std::option::Option::Some(#s::live::LiveTable::key(r)),
                            ::std::default::Default::default(),
                            1,
                        );
                    }
                },
            }
        });
        let checks = relations
            .iter()
            .filter(|r| r.kind == RelationKind::HasMany)
            .map(|r| {
                let (name, target) = (&r.name, &r.target);
                let at = format!("include.{name}.");
                quote! {
                    if let ::std::option::Option::Some(w) = &include.#name {
                        <#target as #s::live::LiveTable>::validate(
                            &::std::convert::From::from(::std::clone::Clone::clone(w)),
                            #s::live::MAX_INCLUDE_LIMIT,
                        )
                        .map_err(|e| #s::live::QueryError(::std::format!("{}{}", #at, e.0)))?;
                    }
                }
            });
        let normalize = relations.iter().map(|r| {
            let (name, target) = (&r.name, &r.target);
            match r.kind {
                RelationKind::HasMany => quote! {
                    #name: include.#name.as_ref().map(|w| {
                        ::std::convert::From::from(<#target as #s::live::LiveTable>::normalized(
                            &::std::convert::From::from(::std::clone::Clone::clone(w)),
                        ))
                    }),
                },
                RelationKind::BelongsTo => quote! {
                    #name: include.#name.filter(|b| *b),
                },
            }
        });
        (
            meta,
            quote! {
                let ::std::option::Option::Some(include) = &query.include else {
                    return;
                };
                #(#visits)*
            },
            quote! {
                if let ::std::option::Option::Some(include) = &query.include {
                    #(#checks)*
                }
            },
            quote! {
                include: query
                    .include
                    .as_ref()
                    .map(|include| #include { #(#normalize)* })
                    .filter(|i| *i != #include::default()),
            },
        )
    }

    fn write_types(&self) -> TokenStream {
        let s = &self.s;
        let vis = &self.t.row.vis;
        let (new, patch) = (&self.new, &self.patch);
        let table = &self.t.name;
        let new_fields = self.t.columns.iter().filter(|c| c.insertable()).map(|c| {
            let ident = &c.ident;
            let inner = &c.inner;
            let docs = &c.docs;
            if c.write == Write::Required {
                quote! { #(#docs)* pub #ident: #inner, }
            } else {
                quote! {
                    #(#docs)*
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    #[ts(optional)]
                    pub #ident: ::std::option::Option<#inner>,
                }
            }
        });
        let patch_fields = self.t.columns.iter().filter(|c| c.patchable()).map(|c| {
            let ident = &c.ident;
            let inner = &c.inner;
            let docs = &c.docs;
            if c.nullable {
                let with = format!("Option<{}>", quote!(#inner));
                quote! {
                    #(#docs)*
                    #[serde(default, deserialize_with = "::pglive_schema::api::present", skip_serializing_if = "Option::is_none")]
                    #[ts(optional)]
                    #[schemars(with = #with)]
                    pub #ident: ::std::option::Option<::std::option::Option<#inner>>,
                }
            } else {
                quote! {
                    #(#docs)*
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    #[ts(optional)]
                    pub #ident: ::std::option::Option<#inner>,
                }
            }
        });
        let new_doc =
            format!(" Body of `POST /api/{table}`. Omitted fields take the column defaults.");
        let patch_doc = format!(
            " Body of `PATCH /api/{table}/{{key}}`. A missing field is left alone; `null` clears a nullable one."
        );
        let _ = s;
        quote! {
            #[doc = #new_doc]
            #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            #vis struct #new {
                #(#new_fields)*
            }

            #[doc = #patch_doc]
            #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            #vis struct #patch {
                #(#patch_fields)*
            }
        }
    }

    fn column_meta(&self) -> TokenStream {
        let s = &self.s;
        let cols = self.t.columns.iter().map(|c| {
            let name = &c.name;
            let inner = &c.inner;
            let nullable = c.nullable;
            let key = c.is_key;
            let order = c.order;
            let ops = c.ops.iter().map(|name| {
                let op = operator(name);
                quote!(<#op as #s::ops::Operator>::OP)
            });
            let write = match c.write {
                Write::Required => quote!(#s::live::Write::Required),
                Write::Default => quote!(#s::live::Write::Default),
                Write::Generated => quote!(#s::live::Write::Generated),
            };
            let patchable = c.patchable();
            let text_max = match c.text_max {
                Some(n) => quote!(::std::option::Option::Some(#n)),
                None => quote!(::std::option::Option::None),
            };
            // check_value refuses blank text exactly where a text rule is.
            let not_blank = c.text_max.is_some();
            let (min, max) = match c.range {
                Some((a, b)) => (
                    quote!(::std::option::Option::Some(#a)),
                    quote!(::std::option::Option::Some(#b)),
                ),
                None => (
                    quote!(::std::option::Option::None),
                    quote!(::std::option::Option::None),
                ),
            };
            quote! {
                #s::live::Column {
                    name: #name,
                    kind: <#inner as #s::scalar::Scalar>::KIND,
                    values: <#inner as #s::scalar::Scalar>::VALUES,
                    nullable: #nullable,
                    key: #key,
                    filters: &[#(#ops),*],
                    order: #order,
                    write: #write,
                    patchable: #patchable,
                    text_max: #text_max,
                    not_blank: #not_blank,
                    min: #min,
                    max: #max,
                }
            }
        });
        quote!(&[#(#cols),*])
    }

    fn live_impl(&self) -> TokenStream {
        let s = &self.s;
        let row = self.row;
        let (query, filter, order_by, new, patch) = (
            &self.query,
            &self.filter,
            &self.order_by,
            &self.new,
            &self.patch,
        );
        let (schema, name) = (&self.t.schema, &self.t.name);
        let depends_on = &self.t.depends_on;
        let key = self.t.key();
        let (key_ident, key_name, key_ty) = (&key.ident, &key.name, &key.inner);
        let key_sql = self.column_sql(key);
        let filters = self.filters();
        let columns = self.column_meta();
        let head = format!("SELECT {} FROM {}", self.column_list(), self.table_sql());
        let count_head = format!("SELECT count(*) AS n FROM {}", self.table_sql());
        let returning = format!(" RETURNING {}", self.column_list());
        let table_sql = self.table_sql();
        let key_quoted = format!("\"{key_name}\"");
        let column_list = self.column_list();
        let related_ty = if self.t.relations.is_empty() {
            quote!(())
        } else {
            let related = &self.related;
            quote!(#related)
        };
        let (relations_meta, includes, include_checks, include_normalized) = self.relation_impl();

        let matches = filters.iter().map(|f| {
            let field = &f.field;
            let op = self.supports(f);
            let ident = &f.col.ident;
            quote! {
                if let ::std::option::Option::Some(v) = &f.#field {
                    if !#op::test(&row.#ident, v) {
                        return false;
                    }
                }
            }
        });
        let checks = filters.iter().map(|f| {
            let field = &f.field;
            let op = self.supports(f);
            let wire = format!("filter.{}", f.wire);
            quote! {
                if let ::std::option::Option::Some(v) = &f.#field {
                    #op::check(v).map_err(|m| #s::live::QueryError::at(#wire, m))?;
                }
            }
        });
        let normalize = filters.iter().map(|f| {
            let field = &f.field;
            let op = self.supports(f);
            quote! {
                if let ::std::option::Option::Some(v) = f.#field.as_mut() {
                    #op::normalize(v);
                }
            }
        });
        let conditions: Vec<_> = filters
            .iter()
            .map(|f| {
                let field = &f.field;
                let op = self.supports(f);
                let col = self.column_sql(f.col);
                quote! {
                    if let ::std::option::Option::Some(v) = &f.#field {
                        sql.condition(first);
                        #op::sql(&#col, v, sql);
                    }
                }
            })
            .collect();
        let ordered = self.ordered();
        let compare_arms = ordered.iter().map(|(c, v)| {
            if c.is_key {
                quote!(#order_by::#v => ::std::cmp::Ordering::Equal,)
            } else {
                let a = self.value(quote!(a), c);
                let b = self.value(quote!(b), c);
                quote!(#order_by::#v => #s::live::cmp_nullable(#a, #b),)
            }
        });
        let order_arms = ordered.iter().map(|(c, v)| {
            if c.is_key {
                quote!(#order_by::#v => {})
            } else {
                let col = self.column_sql(c);
                let nullable = c.nullable;
                quote!(#order_by::#v => {
                    #s::live::order_term(sql, &#col, #nullable, dir);
                    sql.push(", ");
                })
            }
        });
        let inserts = self.t.columns.iter().filter(|c| c.insertable()).map(|c| {
            let ident = &c.ident;
            let quoted = format!("\"{}\"", c.name);
            if c.write == Write::Required {
                quote!(insert.value(#quoted, ::std::option::Option::Some(#s::scalar::Scalar::to_sql(&new.#ident)));)
            } else {
                quote! {
                    if let ::std::option::Option::Some(v) = &new.#ident {
                        insert.value(#quoted, ::std::option::Option::Some(#s::scalar::Scalar::to_sql(v)));
                    }
                }
            }
        });
        let sets = self.t.columns.iter().filter(|c| c.patchable()).map(|c| {
            let ident = &c.ident;
            let quoted = format!("\"{}\"", c.name);
            if c.nullable {
                quote! {
                    if let ::std::option::Option::Some(v) = &patch.#ident {
                        update.set(#quoted, v.as_ref().map(#s::scalar::Scalar::to_sql));
                    }
                }
            } else {
                quote! {
                    if let ::std::option::Option::Some(v) = &patch.#ident {
                        update.set(#quoted, ::std::option::Option::Some(#s::scalar::Scalar::to_sql(v)));
                    }
                }
            }
        });
        let rules = |c: &Column| {
            let text_max = match c.text_max {
                Some(n) => quote!(::std::option::Option::Some(#n)),
                None => quote!(::std::option::Option::None),
            };
            let range = match c.range {
                Some((a, b)) => quote!(::std::option::Option::Some((#a, #b))),
                None => quote!(::std::option::Option::None),
            };
            (text_max, range)
        };
        let new_checks = self.t.columns.iter().filter(|c| c.insertable()).map(|c| {
            let ident = &c.ident;
            let name = &c.name;
            let (text_max, range) = rules(c);
            if c.write == Write::Required {
                quote!(#s::live::check_value(#name, &new.#ident, #text_max, #range)?;)
            } else {
                quote! {
                    if let ::std::option::Option::Some(v) = &new.#ident {
                        #s::live::check_value(#name, v, #text_max, #range)?;
                    }
                }
            }
        });
        let patch_checks = self.t.columns.iter().filter(|c| c.patchable()).map(|c| {
            let ident = &c.ident;
            let name = &c.name;
            let (text_max, range) = rules(c);
            if c.nullable {
                quote! {
                    if let ::std::option::Option::Some(::std::option::Option::Some(v)) = &patch.#ident {
                        #s::live::check_value(#name, v, #text_max, #range)?;
                    }
                }
            } else {
                quote! {
                    if let ::std::option::Option::Some(v) = &patch.#ident {
                        #s::live::check_value(#name, v, #text_max, #range)?;
                    }
                }
            }
        });

        quote! {
            impl #s::live::LiveTable for #row {
                const SCHEMA: &'static str = #schema;
                const NAME: &'static str = #name;
                const KEY: &'static str = #key_name;
                const COLUMNS: &'static [#s::live::Column] = #columns;
                const DEPENDS_ON: &'static [&'static str] = &[#(#depends_on),*];
                const RELATIONS: &'static [#s::live::Relation] = #relations_meta;
                const TABLE_SQL: &'static str = #table_sql;
                const SELECT_LIST: &'static str = #column_list;
                type Key = #key_ty;
                type Query = #query;
                type Related = #related_ty;
                type New = #new;
                type Patch = #patch;

                fn key(&self) -> #key_ty {
                    ::std::clone::Clone::clone(&self.#key_ident)
                }

                fn limit(query: &#query) -> ::std::option::Option<u32> {
                    query.limit
                }

                #[allow(unused_variables)]
                fn matches(query: &#query, row: &Self) -> bool {
                    let ::std::option::Option::Some(f) = &query.filter else {
                        return true;
                    };
                    #(#matches)*
                    true
                }

                fn compare(query: &#query, a: &Self, b: &Self) -> ::std::cmp::Ordering {
                    let order = query.order.unwrap_or_default();
                    let by = match order.by {
                        #(#compare_arms)*
                    };
                    #s::live::directed(
                        order.dir.unwrap_or_default(),
                        by.then_with(|| #s::scalar::Scalar::pg_cmp(&a.#key_ident, &b.#key_ident)),
                    )
                }

                #[allow(unused_variables)]
                fn validate(query: &#query, max_limit: u32) -> ::std::result::Result<(), #s::live::QueryError> {
                    if let ::std::option::Option::Some(f) = &query.filter {
                        #(#checks)*
                    }
                    #include_checks
                    #s::live::check_limit(query.limit, max_limit)
                }

                #[allow(unused_variables)]
                fn includes<__V: #s::live::IncludeVisitor<Self>>(query: &#query, visitor: &mut __V) {
                    #includes
                }

                #[allow(unused_variables)]
                fn conditions(query: &#query, sql: &mut #s::sql::Sql, first: &mut bool) {
                    if let ::std::option::Option::Some(f) = &query.filter {
                        #(#conditions)*
                    }
                }

                fn order_by(query: &#query, sql: &mut #s::sql::Sql) {
                    let order = query.order.unwrap_or_default();
                    let dir = order.dir.unwrap_or_default();
                    match order.by {
                        #(#order_arms)*
                    }
                    #s::live::order_term(sql, &#key_sql, false, dir);
                }

                #[allow(unused_mut)]
                fn normalized(query: &#query) -> #query {
                    let filter = query
                        .filter
                        .clone()
                        .map(|mut f| {
                            #(#normalize)*
                            f
                        })
                        .filter(|f| *f != #filter::default());
                    let mut order = query.order.unwrap_or_default();
                    order.dir = ::std::option::Option::Some(order.dir.unwrap_or_default());
                    #query {
                        filter,
                        order: ::std::option::Option::Some(order),
                        limit: query.limit,
                        count: query.count.filter(|c| *c),
                        #include_normalized
                    }
                }

                fn counted(query: &#query) -> bool {
                    query.count == ::std::option::Option::Some(true)
                }

                #[allow(unused_variables, unused_mut)]
                fn count(query: &#query) -> #s::sql::Sql {
                    let mut sql = #s::sql::Sql::new(#count_head);
                    Self::conditions(query, &mut sql, &mut true);
                    sql
                }

                #[allow(unused_variables, unused_mut)]
                fn select(query: &#query, limit: i64) -> #s::sql::Sql {
                    let mut sql = #s::sql::Sql::new(#head);
                    Self::conditions(query, &mut sql, &mut true);
                    sql.push(" ORDER BY ");
                    Self::order_by(query, &mut sql);
                    sql.push(" LIMIT ");
                    sql.bind(#s::sql::SqlValue::Int8(limit));
                    sql
                }

                fn fetch(keys: &[#key_ty]) -> #s::sql::Sql {
                    let mut sql = #s::sql::Sql::new(#head);
                    sql.push(" WHERE ");
                    sql.push(#key_quoted);
                    sql.push(" = ANY(");
                    sql.bind(<#key_ty as #s::scalar::Scalar>::array(keys));
                    sql.push(")");
                    sql
                }

                fn insert(new: &#new) -> #s::sql::Sql {
                    let mut insert = #s::sql::Insert::new(#table_sql);
                    #(#inserts)*
                    insert.finish(#returning)
                }

                #[allow(unused_mut)]
                fn update(key: &#key_ty, patch: &#patch) -> ::std::option::Option<#s::sql::Sql> {
                    let mut update = #s::sql::Update::new(#table_sql);
                    #(#sets)*
                    update.finish(#key_quoted, #s::scalar::Scalar::to_sql(key), #returning)
                }

                fn delete(key: &#key_ty) -> #s::sql::Sql {
                    let mut sql = #s::sql::Sql::new(::std::concat!("DELETE FROM ", #table_sql, " WHERE ", #key_quoted, " = "));
                    sql.bind(#s::scalar::Scalar::to_sql(key));
                    sql.push(#returning);
                    sql
                }

                fn validate_new(new: &#new) -> ::std::result::Result<(), #s::api::Invalid> {
                    #(#new_checks)*
                    ::std::result::Result::Ok(())
                }

                fn validate_patch(patch: &#patch) -> ::std::result::Result<(), #s::api::Invalid> {
                    if *patch == #patch::default() {
                        return ::std::result::Result::Err(#s::api::Invalid::nothing_to_update());
                    }
                    #(#patch_checks)*
                    ::std::result::Result::Ok(())
                }
            }
        }
    }
}

/// The operator type a name in `filter(...)` stands for, by a fixed rule
/// (snake_case to CamelCase): `is_null` is `::pglive_schema::ops::IsNull`.
/// Spanned at the name, so that an unknown one is reported there.
fn operator(name: &Ident) -> TokenStream {
    let ty = format_ident!("{}", model::pascal(&name.to_string()), span = name.span());
    quote_spanned!(name.span() => ::pglive_schema::ops::#ty)
}
