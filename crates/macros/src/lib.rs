//! The table declaration behind pglive's contract.
//!
//! `#[live_table]` on a row struct declares one live table: its columns, key,
//! and what clients may do with each column. From that one declaration it
//! generates the row's derives and decoding, the typed query, filter and order
//! types, the REST bodies, and the `LiveTable` implementation (filters, order,
//! validation, normalization and the SQL of every read and write).
//! `live_schema!` lists the declared tables once and generates the unions that
//! make them one contract (`LiveQuery`, `TableRows`, `TableChanges`).
//!
//! The generated code names only `pglive_schema` items, so each filter
//! operator lives there, once: the macro knows none by name. It turns
//! `filter(is_null)` into the type `pglive_schema::ops::IsNull` and bounds
//! the code it generates by the column type's `ops::Supports<ops::IsNull>`,
//! so an operator on a column type it cannot filter is a compile error at
//! that column.

mod model;
mod schema;
mod table;

use proc_macro::TokenStream;

/// Declares a live table on its row struct. See `pglive_schema::tables`.
#[proc_macro_attribute]
pub fn live_table(attr: TokenStream, item: TokenStream) -> TokenStream {
    table::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Lists every live table: `live_schema! { items: Item, tasks: Task }`.
#[proc_macro]
pub fn live_schema(input: TokenStream) -> TokenStream {
    schema::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
