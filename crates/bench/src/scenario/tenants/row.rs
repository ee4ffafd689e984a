//! An `items` row as RLS and RECONNECT decode it, and its signature: what
//! a client keeps of each row, and what the final read is compared by.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use pglive_schema::Int8;
use serde::Deserialize;

/// An `items` row as it travels (the contract's `Item`), its text borrowed
/// from the frame when it has no escapes.
#[derive(Debug, Deserialize)]
pub struct Row<'a> {
    pub id: Int8,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub tenant: Cow<'a, str>,
    #[serde(borrow)]
    pub created_at: Cow<'a, str>,
    #[serde(borrow)]
    pub updated_at: Cow<'a, str>,
}

/// A row's key and content, hashed: two rows are equal when their hashes are.
pub fn row_sig(row: &Row<'_>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    row.id.0.hash(&mut h);
    row.name.hash(&mut h);
    row.tenant.hash(&mut h);
    row.created_at.hash(&mut h);
    row.updated_at.hash(&mut h);
    h.finish()
}
