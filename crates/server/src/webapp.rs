//! The built web app at `/`: files from one directory, and `index.html` for
//! the app's own routes. Never a dotfile, never a file outside the directory
//! (symlinks out of it included), `GET` and `HEAD` only.

use std::path::{Path, PathBuf};

use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::path::Tail;
use warp::reply::Response;
use warp::{Filter, Reply};

/// Largest file served; the built app's files are far smaller.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn not_found() -> Response {
    warp::reply::with_status("not found\n", StatusCode::NOT_FOUND).into_response()
}

/// The answer to the app's routes when `--web-dir` names a directory without
/// a built app (a fresh clone before `npm run build`): a newcomer who opens
/// the server's URL learns what to do instead of seeing a bare 404.
fn no_app(dir: &Path) -> Response {
    let dir = html_escape(&dir.display().to_string());
    let body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>pglive: no web app built</title>\
         <h1>pglive is running, but the web app is not built</h1>\
         <p>There is no <code>index.html</code> in <code>{dir}</code> (<code>--web-dir</code>).</p>\
         <ul><li>During development (<code>just dev</code>), open the Vite dev server instead: \
         <a href=\"http://127.0.0.1:5173\">http://127.0.0.1:5173</a>.</li>\
         <li>To have this server serve the app, build it: <code>cd web &amp;&amp; npm run build</code> \
         (or run <code>just serve</code>).</li></ul>\
         <p>The API is at <code>/api</code>, the WebSocket at <code>/ws</code>.</p>"
    );
    let mut response = warp::reply::html(body).into_response();
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The content type a file's extension implies.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// The file `tail` names inside `root` (already canonical), if it is one we
/// serve: no segment may start with a dot, and the resolved path (after
/// symlinks) must still be inside `root`.
pub fn resolve(root: &Path, tail: &str) -> Option<PathBuf> {
    let decoded = percent_decode(tail)?;
    let mut path = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains('\\') || segment.contains('\0') {
            return None;
        }
        path.push(segment);
    }
    let real = path.canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn serve(root: PathBuf, tail: Tail, method: Method) -> Response {
    serve_path(root, tail.as_str(), method).await
}

/// The answer for the path `tail` (below `/`, still percent-encoded).
async fn serve_path(root: PathBuf, tail: &str, method: Method) -> Response {
    let decoded = percent_decode(tail).unwrap_or_default();
    let file = match resolve(&root, tail) {
        Some(file) => file,
        // The app's own routes (no extension, no dotted segment) get the
        // app; anything else that is not a file here is not found.
        None if !decoded.split('/').any(|s| s.contains('.')) => {
            match resolve(&root, "index.html") {
                Some(index) => index,
                None => return no_app(&root),
            }
        }
        None => return not_found(),
    };
    let meta = match tokio::fs::metadata(&file).await {
        Ok(meta) if meta.len() <= MAX_FILE_BYTES => meta,
        _ => return not_found(),
    };
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        match tokio::fs::read(&file).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(error = %err, path = %file.display(), "cannot read a web app file");
                return not_found();
            }
        }
    };
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    // Vite names built assets by their content hash: they never change.
    let immutable = file
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "assets");
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response
}

/// `GET`/`HEAD` of the web app in `dir`, or a note when there is none.
pub fn routes(dir: Option<PathBuf>) -> BoxedFilter<(Response,)> {
    let read = warp::get().or(warp::head()).unify().and(warp::method());
    match dir.map(|d| d.canonicalize().unwrap_or(d)) {
        Some(root) => read
            .and(warp::path::tail())
            .then(move |method: Method, tail: Tail| serve(root.clone(), tail, method))
            .boxed(),
        None => read
            .and(warp::path::end())
            .map(|_| {
                warp::reply::html(
                    "<!doctype html><title>pglive</title><p>pglive is running. No web app directory was given \
                     (<code>--web-dir</code>); the WebSocket is at <code>/ws</code>.</p>",
                )
                .into_response()
            })
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_and_never_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("index.html"), "<p>app").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        std::fs::create_dir(root.join("assets")).unwrap();
        std::fs::write(root.join("assets/app.js"), "x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();

        assert!(resolve(&root, "index.html").is_some());
        assert!(resolve(&root, "assets/app.js").is_some());
        assert!(resolve(&root, ".env").is_none());
        assert!(resolve(&root, "%2eenv").is_none());
        assert!(resolve(&root, "../etc/passwd").is_none());
        assert!(resolve(&root, "assets/%2e%2e/%2e%2e/etc/passwd").is_none());
        assert!(
            resolve(&root, "out/secret.txt").is_none(),
            "a symlink out of the directory"
        );
        assert!(resolve(&root, "assets").is_none(), "a directory");
    }

    async fn body_of(response: Response) -> (StatusCode, String, String) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut body = Box::pin(response.into_body());
        let mut bytes = Vec::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| warp::hyper::body::Body::poll_frame(body.as_mut(), cx)).await
        {
            if let Ok(data) = frame.unwrap().into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        (status, content_type, String::from_utf8(bytes).unwrap())
    }

    #[tokio::test]
    async fn a_missing_app_explains_itself() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("dist");
        let (status, content_type, body) =
            body_of(serve_path(missing.clone(), "", Method::GET).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(body.contains("npm run build"), "{body}");
        assert!(body.contains("http://127.0.0.1:5173"), "{body}");
        assert!(body.contains(&*missing.display().to_string()), "{body}");
        // A file that is not there is still a plain 404.
        let (status, _, body) =
            body_of(serve_path(missing.clone(), "assets/app.js", Method::GET).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "not found\n");

        // With the app built, the same routes are the app.
        std::fs::create_dir(&missing).unwrap();
        std::fs::write(missing.join("index.html"), "<p>app").unwrap();
        let root = missing.canonicalize().unwrap();
        let (status, _, body) = body_of(serve_path(root, "tasks", Method::GET).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "<p>app");
    }
}
