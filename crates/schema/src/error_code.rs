//! The closed set of error codes the server reports, on the WebSocket
//! (`error` messages) and in REST bodies ([`crate::api::ApiError`]). It sits
//! below both, so that neither imports the other for it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Every error the server reports, on the WebSocket and in REST bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a known message shape.
    BadFrame,
    /// The frame is larger than the server accepts.
    FrameTooLarge,
    /// Binary frames are not part of the protocol.
    BinaryFrame,
    /// The query names a table the server does not serve live.
    UnknownTable,
    /// The query's filter, order or limit is invalid.
    InvalidQuery,
    /// A subscription with this id is already active on this connection.
    DuplicateId,
    /// No subscription with this id is active on this connection.
    UnknownId,
    /// The subscription id is empty or too long.
    InvalidId,
    /// This connection has as many subscriptions as the server allows.
    TooManySubscriptions,
    /// The client sent more messages per second than the server allows.
    RateLimited,
    /// The subscription's query failed in the database; it was dropped.
    QueryFailed,
    /// The query's result has more rows than the server serves live; add a
    /// filter or a limit.
    ResultTooLarge,
    /// The server holds as many live queries or rows as it may; try later.
    ServerBusy,
    /// No valid token: authenticate first (`auth`, or `Authorization:
    /// Bearer` for REST), or the token was refused (the message says why).
    Unauthenticated,
    /// The connection's token expired before a fresh one arrived; its
    /// subscriptions were stopped. Authenticate again and resubscribe.
    TokenExpired,
    /// A REST request body or parameter is invalid.
    Validation,
    /// The REST resource does not exist.
    NotFound,
    /// The request is not allowed: a browser origin the server does not
    /// serve, or a write the database's policies refuse.
    Forbidden,
    /// The REST method does not apply to this resource.
    MethodNotAllowed,
    /// The REST request body is larger than the server accepts.
    TooLarge,
    /// The REST request body is not `application/json`.
    UnsupportedMediaType,
    /// The write conflicts with the current state.
    Conflict,
    /// The database is unreachable right now; retry later.
    Unavailable,
    /// An unexpected server error; details are in the server log.
    Internal,
}
