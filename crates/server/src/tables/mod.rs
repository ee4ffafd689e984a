//! The demo tables made live. Each is one [`LiveTable`](crate::table::LiveTable)
//! implementation and one line in [`registry`]; nothing else in the server
//! names them.

mod items;
mod tasks;

pub use items::Items;
pub use tasks::Tasks;

use crate::table::Registry;

/// Every live table this server serves.
pub fn registry() -> Registry {
    Registry::default().register::<Items>().register::<Tasks>()
}

/// Escapes `LIKE` wildcards so a filter matches its text literally.
fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Keys that fit the table's `integer` primary key; others cannot exist.
fn int4_keys(keys: &[crate::table::Key]) -> Vec<i32> {
    keys.iter().filter_map(|k| i32::try_from(*k).ok()).collect()
}
