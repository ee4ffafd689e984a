//! `POST /api/dev/token` (served with `--dev-tokens`): a token signed with
//! the server's secret, for development only.

use bytes::Bytes;
use pglive_schema::ErrorCode;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;

use super::rejection::{error_response, refused_token};
use crate::auth::{Authenticator, unix_now};

/// Longest a development token lives, in seconds (and the default, an hour).
const MAX_TTL_SECS: u64 = 86_400;
const DEFAULT_TTL_SECS: u64 = 3600;

/// `POST /api/dev/token` `{"sub":..,"role":..,"claims":{..},"ttl_secs":..}`:
/// a token signed with the server's secret, for development only. Its role
/// passes the same check as a token's at use (no superuser, no `BYPASSRLS`,
/// not the server's own, no table owner, unless `--jwt-roles` names it), so
/// the endpoint never mints a token the server would refuse.
pub(super) async fn mint(
    auth: Option<&Authenticator>,
    pool: &Pool<AsyncPgConnection>,
    body: &Bytes,
) -> Response {
    let Some(auth) = auth else {
        return error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "authentication is off",
        );
    };
    let Ok(serde_json::Value::Object(mut request)) =
        serde_json::from_slice::<serde_json::Value>(body)
    else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::Validation,
            "send a JSON object",
        );
    };
    let ttl = request
        .get("ttl_secs")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(DEFAULT_TTL_SECS)
        .min(MAX_TTL_SECS);
    let mut claims = match request.remove("claims") {
        Some(serde_json::Value::Object(claims)) => claims,
        _ => serde_json::Map::new(),
    };
    for name in ["sub", "role"] {
        if let Some(value) = request.remove(name) {
            claims.insert(name.to_owned(), value);
        }
    }
    if let Some(role) = claims.get("role").and_then(serde_json::Value::as_str)
        && let Err(err) = match auth.admits(role) {
            Ok(()) => auth.check_role(pool, role).await,
            Err(err) => Err(err),
        }
    {
        return refused_token(&err);
    }
    claims.insert("exp".into(), serde_json::Value::from(unix_now() + ttl));
    match auth.mint(&claims) {
        Some(token) => warp::reply::json(&serde_json::json!({ "token": token })).into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "development tokens need --jwt-secret",
        ),
    }
}
