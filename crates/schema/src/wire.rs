//! WebSocket wire messages (JSON text frames) between the server and clients.
//!
//! Client → server: [`ClientMessage`]. Server → client: [`ServerMessage`].
//! Rows stay typed per table: [`TableRows`] and [`TableChanges`] are unions
//! discriminated by `table`, flattened into the snapshot and diff messages, so
//! TypeScript narrows `msg.rows` to `Item[]` once it has checked `msg.table`.
//!
//! Versions are `u64` in Rust and `number` in TypeScript on purpose: a group's
//! version grows by one per published change and cannot reach 2^53 in practice,
//! so `number` is exact and avoids `bigint` in every client.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use crate::error_code::ErrorCode;
use crate::tables::{LiveQuery, TableChanges, TableRows};

/// A subscription id, chosen by the client and unique per connection: 1 to
/// 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, TS, JsonSchema)]
#[serde(transparent)]
pub struct SubscriptionId(#[schemars(length(min = 1, max = 128))] pub String);

/// Longest accepted subscription id, in characters.
pub const MAX_SUBSCRIPTION_ID: usize = 128;

impl<'de> Deserialize<'de> for SubscriptionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        let len = id.chars().count();
        if len == 0 || len > MAX_SUBSCRIPTION_ID {
            return Err(serde::de::Error::custom(format!(
                "a subscription id must be 1 to {MAX_SUBSCRIPTION_ID} characters"
            )));
        }
        Ok(SubscriptionId(id))
    }
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Start receiving `query`'s rows under `id`: a snapshot, then diffs.
    /// With `since` (what the client still has from an earlier connection),
    /// the server sends only what changed since, when it still can
    /// (`resumed`, then diffs), and a snapshot otherwise.
    Subscribe {
        id: SubscriptionId,
        #[serde(deserialize_with = "crate::decoding::object_required")]
        query: Box<LiveQuery>,
        #[serde(
            default,
            deserialize_with = "crate::decoding::object",
            skip_serializing_if = "Option::is_none"
        )]
        #[ts(optional)]
        since: Option<Since>,
    },
    /// Stop receiving `id`.
    Unsubscribe { id: SubscriptionId },
    /// Authenticate, or refresh the token before it expires, without
    /// touching subscriptions. A token for another security context moves
    /// every subscription to that context (each gets a new snapshot).
    Auth { token: String },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Snapshot(Snapshot),
    Diff(Diff),
    Error(ErrorMessage),
    Authenticated(Authenticated),
    Resumed(Resumed),
    Status(Status),
}

/// A version of a subscription's result: which result (`epoch`: this
/// server process and this incarnation of the query's group) and how far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Since {
    pub epoch: String,
    #[ts(type = "number")]
    pub version: u64,
}

/// The answer to a `subscribe` with `since` that the server could serve from
/// memory: the client keeps its rows at version `from`; the diffs up to `to`
/// follow, then live diffs as usual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Resumed {
    pub id: SubscriptionId,
    pub epoch: String,
    #[ts(type = "number")]
    pub from: u64,
    #[ts(type = "number")]
    pub to: u64,
}

/// Whether changes reach clients right now. Sent when a connection opens and
/// whenever it changes: `delayed` means rows shown may be stale until the
/// server says `live` again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Status {
    /// With `id`, the status of that subscription only (its query keeps
    /// failing and is being retried); without, of the whole connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub id: Option<SubscriptionId>,
    pub state: LiveState,
    /// Why changes are delayed; absent when live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reason: Option<DelayReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    Live,
    Delayed,
}

/// Why changes may not reach clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DelayReason {
    /// The server cannot learn of changes (its capture connection is down).
    CaptureDown,
    /// The server cannot reach the database.
    DatabaseUnreachable,
    /// This subscription's query failed and is being retried (it ends with
    /// `query_failed` if it keeps failing).
    QueryFailing,
}

/// A token was accepted: the connection now reads as `role`, until
/// `expires_at` (Unix seconds) unless a fresh token arrives first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Authenticated {
    pub role: String,
    #[ts(type = "number")]
    pub expires_at: u64,
}

/// The complete result of a subscription's query at `version`, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Snapshot {
    pub id: SubscriptionId,
    /// Which result this is, for resuming later (see [`Since`]).
    pub epoch: String,
    #[ts(type = "number")]
    pub version: u64,
    /// With `count: true` in the query: how many rows pass its filter,
    /// whatever its limit, at this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub count: Option<u64>,
    /// With `include` in the query: the related rows of the rows below,
    /// one entry per relation and value (see [`Related`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub related: Option<Vec<Related>>,
    #[serde(flatten)]
    pub rows: TableRows,
}

/// The related rows of one relation for one value of its local column:
/// for `has_many` the rows of every result row whose key is `of`, for
/// `belongs_to` the row (at most one) of every result row whose foreign
/// key is `of`. An entry replaces the one with the same `relation` and
/// `of`; a result row whose value has no entry has no related rows (an
/// empty list, `null` for `belongs_to`, a count of 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Related {
    /// The include's name.
    pub relation: String,
    /// The local column's value, as the row carries it.
    #[ts(type = "string | number")]
    pub of: serde_json::Value,
    /// With `count: true` in the include: how many related rows pass its
    /// filter, whatever its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub count: Option<u64>,
    #[serde(flatten)]
    pub rows: TableRows,
}

/// Turns the result at version `from` into the result at version `to`.
///
/// To apply: remove every key in `deletes` and every key of an upserted row,
/// then insert the upserted rows in ascending `at` order, each at index `at`.
/// Rows not mentioned keep their relative order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Diff {
    pub id: SubscriptionId,
    #[ts(type = "number")]
    pub from: u64,
    #[ts(type = "number")]
    pub to: u64,
    /// When the server learned of the earliest change in this diff, in
    /// milliseconds since the Unix epoch by the server's clock: a client on
    /// a synchronized clock can tell how long a change took to reach it.
    /// Absent when the diff came from re-running the query as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub noticed_at: Option<u64>,
    /// With `count: true` in the query: the new count, when it changed
    /// (absent: the count at `from` still holds). A diff may change only
    /// the count, with no upserts or deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub count: Option<u64>,
    /// With `include` in the query: related entries that changed (each
    /// replaces its `relation` and `of`). A parent's upsert does not resend
    /// unchanged related rows, and a related row's change does not resend
    /// its parent. A diff may change only related entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub related: Option<Vec<Related>>,
    #[serde(flatten)]
    pub changes: TableChanges,
}

/// A row and its index in the new result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Placed<R> {
    pub at: u32,
    pub row: R,
}

/// A refusal or failure. With `id`, it concerns that subscription (which is
/// then not active); without, the connection as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ErrorMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub id: Option<SubscriptionId>,
    pub code: ErrorCode,
    /// A human-readable explanation; never internal error text.
    pub message: String,
}
