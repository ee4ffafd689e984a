//! Every way a request under `/api/` is refused before (or instead of) a
//! write, as a warp rejection, and the one `recover` of the API's filter
//! tree ([`answer`]) that turns each into its typed `ApiError` answer.
//!
//! warp tries the routes in turn and combines the rejections of those that
//! did not match, so [`answer`] picks the one that decides, the most
//! specific first: a [`Refused`] request (it reached its route, or was
//! stopped at the gate before any route), then a [`WrongMethod`] on a route
//! that exists, then [`NoTable`], and otherwise no such route.

use std::convert::Infallible;

use pglive_schema::ErrorCode;
use pglive_schema::api::ApiError;
use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reject::{Reject, Rejection};
use warp::reply::Response;

use crate::auth::AuthError;

/// A JSON error response, for routes outside the write handlers.
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    api_error(status, code, message.into(), None)
}

/// A JSON error response, naming the field at fault if there is one.
pub(super) fn api_error(
    status: StatusCode,
    code: ErrorCode,
    message: String,
    field: Option<String>,
) -> Response {
    let body = ApiError {
        code,
        message,
        field,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// Why a request that reached the API was refused; it decides the answer.
#[derive(Debug)]
pub(super) enum Refused {
    /// A browser origin not allowed (403), which also stops cross-site form
    /// posts.
    Origin,
    /// Too many requests from one address (429).
    RateLimited,
    /// The request's token, or its lack of one (401, 403 or 503).
    Auth(AuthError),
    /// A body that is not `application/json` (415).
    NotJson,
    /// A body over this many bytes (413), declared or counted.
    TooLarge(usize),
    /// A body that did not arrive in time (408).
    TooSlow,
    /// A body that could not be read (400).
    Unreadable(String),
}

impl Reject for Refused {}

/// A method the route does not take (405); `allow` lists those it does.
#[derive(Debug)]
pub(super) struct WrongMethod {
    pub(super) method: Method,
    pub(super) allow: &'static str,
}

impl Reject for WrongMethod {}

/// A path whose first segment names no live table (404).
#[derive(Debug)]
pub(super) struct NoTable(pub(super) String);

impl Reject for NoTable {}

/// The answer to every rejection under `/api/`.
pub(super) async fn answer(rejection: Rejection) -> Result<Response, Infallible> {
    let response = if let Some(refused) = rejection.find::<Refused>() {
        refused.response()
    } else if let Some(wrong) = rejection.find::<WrongMethod>() {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!("{} does not apply here", wrong.method),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(wrong.allow));
        response
    } else if let Some(NoTable(table)) = rejection.find::<NoTable>() {
        error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!(
                "no live table {:?} to write",
                table.chars().take(64).collect::<String>()
            ),
        )
    } else {
        error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such API route",
        )
    };
    Ok(response)
}

impl Refused {
    fn response(&self) -> Response {
        let (status, code, message) = match self {
            Refused::Origin => (
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this origin may not use the API; the server allows its own origin and --allowed-origins".to_owned(),
            ),
            Refused::RateLimited => {
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    "too many requests from this address; slow down",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Refused::Auth(err) => return refused_token(err),
            Refused::NotJson => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as application/json".to_owned(),
            ),
            Refused::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                format!("the body is over {limit} bytes"),
            ),
            Refused::TooSlow => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::Validation,
                "the body did not arrive in time".to_owned(),
            ),
            Refused::Unreadable(err) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::Validation,
                format!("cannot read the body: {err}"),
            ),
        };
        error_response(status, code, message)
    }
}

/// A request whose token (or lack of one) gives it no security context.
pub(super) fn refused_token(err: &AuthError) -> Response {
    let (status, code) = match err {
        AuthError::RoleNotAllowed(_)
        | AuthError::UnknownRole(_)
        | AuthError::PrivilegedRole(..) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        AuthError::Unavailable | AuthError::PrivilegedLogin => {
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
        }
        AuthError::Expired => (StatusCode::UNAUTHORIZED, ErrorCode::TokenExpired),
        _ => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
    };
    let mut response = error_response(status, code, err.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
