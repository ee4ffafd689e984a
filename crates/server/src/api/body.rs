//! A request's body: `application/json` for writes, at most `MAX_BODY`
//! bytes (refused by its declared length, or counted as it arrives when
//! chunked) and within `BODY_TIMEOUT`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::ready;
use futures_util::{Stream, StreamExt};
use warp::http::HeaderValue;
use warp::reject::{PayloadTooLarge, Rejection};
use warp::{Buf, Filter};

use super::rejection::Refused;

/// Largest accepted request body.
const MAX_BODY: usize = 16 * 1024;

/// Time a client has to send a request's whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Passes requests whose `Content-Type` is `application/json` (parameters
/// such as a charset allowed); refuses the others, and those without one.
pub(super) fn json() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::header::value("content-type")
        .or_else(|_| {
            ready(Err::<(HeaderValue,), _>(warp::reject::custom(
                Refused::NotJson,
            )))
        })
        .and_then(|value: HeaderValue| {
            ready(if is_json(&value) {
                Ok(())
            } else {
                Err(warp::reject::custom(Refused::NotJson))
            })
        })
        .untuple_one()
}

fn is_json(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The whole body, once it has arrived.
pub(super) fn whole() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Copy {
    declared_length().and(warp::body::stream()).and_then(read)
}

/// Passes a body whose declared length fits, and one without a declared
/// length (chunked, or none), which `read` counts instead.
fn declared_length() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    let undeclared = warp::header::optional::<u64>("content-length")
        .and_then(|length: Option<u64>| {
            ready(match length {
                None => Ok(()),
                Some(_) => Err(warp::reject::not_found()),
            })
        })
        .untuple_one();
    warp::body::content_length_limit(MAX_BODY as u64)
        .or(undeclared)
        .unify()
        .or_else(|rejection: Rejection| {
            ready(Err::<(), _>(
                if rejection.find::<PayloadTooLarge>().is_some() {
                    warp::reject::custom(Refused::TooLarge(MAX_BODY))
                } else {
                    rejection
                },
            ))
        })
}

/// Reads the whole body, refusing it once it passes `MAX_BODY`.
async fn read<S, B>(body: S) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|e| Refused::Unreadable(e.to_string()))?;
            if out.len() + chunk.remaining() > MAX_BODY {
                return Err(Refused::TooLarge(MAX_BODY));
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                out.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        Ok(Bytes::from(out))
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err(Refused::TooSlow))
        .map_err(warp::reject::custom)
}
