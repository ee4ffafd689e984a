//! `live_schema!`: the one list of live tables, and the unions over them.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Token};

use crate::model::pascal;

/// `items: Item`
struct Entry {
    table: Ident,
    row: syn::Path,
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Entry> {
        let table: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let row: syn::Path = input.parse()?;
        Ok(Entry { table, row })
    }
}

struct Entries(Punctuated<Entry, Token![,]>);

impl Parse for Entries {
    fn parse(input: ParseStream) -> syn::Result<Entries> {
        Ok(Entries(Punctuated::parse_terminated(input)?))
    }
}

pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let entries = syn::parse2::<Entries>(input)?.0;
    if entries.is_empty() {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "live_schema! needs at least one table",
        ));
    }
    let s = quote!(::pglive_schema);
    let names: Vec<String> = entries.iter().map(|e| e.table.to_string()).collect();
    let variants: Vec<Ident> = names
        .iter()
        .map(|n| format_ident!("{}", pascal(n)))
        .collect();
    let queries: Vec<Ident> = names
        .iter()
        .map(|n| format_ident!("{}Query", pascal(n)))
        .collect();
    let rows: Vec<&syn::Path> = entries.iter().map(|e| &e.row).collect();

    let listed = entries.iter().enumerate().map(|(i, e)| {
        let (row, variant, query) = (&e.row, &variants[i], &queries[i]);
        quote! {
            impl #s::live::Listed for #row {
                fn query(query: &LiveQuery) -> ::std::option::Option<&#query> {
                    #[allow(unreachable_patterns)]
                    match query {
                        LiveQuery::#variant(q) => ::std::option::Option::Some(q),
                        _ => ::std::option::Option::None,
                    }
                }

                fn rows(rows: TableRows) -> ::std::option::Option<::std::vec::Vec<Self>> {
                    #[allow(unreachable_patterns)]
                    match rows {
                        TableRows::#variant { rows } => ::std::option::Option::Some(rows),
                        _ => ::std::option::Option::None,
                    }
                }

                fn changes(changes: TableChanges) -> ::std::option::Option<#s::live::Changed<Self>> {
                    #[allow(unreachable_patterns)]
                    match changes {
                        TableChanges::#variant { upserts, deletes } => ::std::option::Option::Some((upserts, deletes)),
                        _ => ::std::option::Option::None,
                    }
                }
            }
        }
    });
    let name_checks = entries.iter().enumerate().map(|(i, e)| {
        let row = &e.row;
        let name = &names[i];
        let message = format!("live_schema!: `{name}` must be the name given in the table's #[live_table(name = ...)]");
        quote!(::std::assert!(#s::live::same_str(<#row as #s::live::LiveTable>::NAME, #name), #message);)
    });

    Ok(quote! {
        /// A subscription's query: a table and, optionally, a filter, an order and
        /// a limit built from that table's own columns. `{"table":"items"}` is every
        /// row of `items`, ordered by its key.
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
        #[serde(tag = "table")]
        pub enum LiveQuery {
            #( #[serde(rename = #names)] #variants(#queries), )*
        }

        impl LiveQuery {
            /// Every live table's name, in declaration order.
            pub const TABLES: &'static [&'static str] = &[#(#names),*];

            /// The table this query reads.
            pub fn table(&self) -> &'static str {
                match self {
                    #( LiveQuery::#variants(_) => #names, )*
                }
            }

            /// Checks what serde cannot: lengths, ranges, and the limit cap.
            pub fn validate(&self, max_limit: u32) -> ::std::result::Result<(), #s::live::QueryError> {
                match self {
                    #( LiveQuery::#variants(q) => <#rows as #s::live::LiveTable>::validate(q, max_limit), )*
                }
            }

            /// The canonical form: queries that ask the same thing in different
            /// words normalize equal, so their subscribers share one group.
            pub fn normalized(&self) -> LiveQuery {
                match self {
                    #( LiveQuery::#variants(q) => LiveQuery::#variants(<#rows as #s::live::LiveTable>::normalized(q)), )*
                }
            }
        }

        /// A query result, typed by table.
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
        #[serde(tag = "table")]
        pub enum TableRows {
            #( #[serde(rename = #names)] #variants { rows: ::std::vec::Vec<#rows> }, )*
        }

        impl TableRows {
            /// The table these rows are from.
            pub fn table(&self) -> &'static str {
                match self {
                    #( TableRows::#variants { .. } => #names, )*
                }
            }
        }

        /// Keyed changes to a query result, typed by table: `deletes` holds
        /// the table's own key type.
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS, ::schemars::JsonSchema)]
        #[serde(tag = "table")]
        pub enum TableChanges {
            #(
                #[serde(rename = #names)]
                #variants {
                    upserts: ::std::vec::Vec<#s::wire::Placed<#rows>>,
                    deletes: ::std::vec::Vec<<#rows as #s::live::LiveTable>::Key>,
                },
            )*
        }

        impl TableChanges {
            /// The table these changes are to.
            pub fn table(&self) -> &'static str {
                match self {
                    #( TableChanges::#variants { .. } => #names, )*
                }
            }
        }

        #(#listed)*

        /// Calls `visitor` once for every live table, in declaration order.
        pub fn visit_tables<V: #s::live::TableVisitor>(visitor: &mut V) {
            #( visitor.visit::<#rows>(); )*
        }

        const _: () = {
            #(#name_checks)*
        };
    })
}
