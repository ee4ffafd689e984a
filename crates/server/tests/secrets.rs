//! No token and no secret ever reaches a log line: this test binary captures
//! every event the server emits, at every level, through a whole
//! authenticated session (good, refreshed, refused and expired tokens, over
//! the WebSocket and REST, and a token in the URL).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pglive_server::config::Config;
use pglive_server::{Authenticator, Secret, unix_now};
use pglive_testkit::{Client, TestDb, TestServer};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

const SECRET: &str = "the-secret-that-must-never-be-logged-0123456789";

fn lines() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut text = Text(format!(
            "{} {}",
            event.metadata().level(),
            event.metadata().target()
        ));
        event.record(&mut text);
        lines().lock().unwrap().push(text.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_authenticated_session_logs_no_token_and_no_secret() {
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture));
    let db = TestDb::new().await;
    let mut config = Config::new(db.authenticator_url());
    config.jwt_secret = Some(Secret::new(SECRET));
    config.auth_timeout_secs = 2;
    let authenticator = Authenticator::new(&config.auth_config()).unwrap().unwrap();
    let mint = |claims: serde_json::Value| authenticator.mint(claims.as_object().unwrap()).unwrap();
    let good =
        mint(json!({"sub":"alice","role":"pglive_user","tenant":"acme","exp":unix_now() + 60}));
    let short =
        mint(json!({"sub":"alice","role":"pglive_user","tenant":"acme","exp":unix_now() + 2}));
    let expired = mint(json!({"role":"pglive_user","exp":unix_now() - 100}));
    let stranger = mint(json!({"role":"postgres","exp":unix_now() + 60}));
    let server = TestServer::with_config(config).await;

    let mut c = Client::connect(&server).await;
    c.auth(&good).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.has("t")).await);
    c.auth(&expired).await;
    c.auth(&stranger).await;
    c.auth(&short).await;
    c.drain(Duration::from_secs(3)).await;
    let url = format!("{}?token={good}", server.ws_url());
    let mut u = Client::connect_url(&url).await;
    u.subscribe("t", json!({"table":"tasks"})).await;
    u.drain(Duration::from_millis(300)).await;
    let mut b = Client::connect_bearer(&server, &good).await;
    b.subscribe("t", json!({"table":"items"})).await;
    assert!(b.until(|c| c.has("t")).await);
    for token in [&good, &expired, &stranger] {
        let auth = format!("Bearer {token}");
        server
            .raw_request(
                "POST",
                "/api/items",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                Some(r#"{"name":"from rest"}"#),
            )
            .await;
    }
    server.get(&format!("/?token={good}")).await;
    server.stop().await;

    let lines = lines().lock().unwrap().clone();
    assert!(!lines.is_empty(), "the capture saw the server's events");
    for secret in [SECRET, &good, &short, &expired, &stranger] {
        // Any recognisable part counts: a token's signature is its last segment.
        let part = secret.rsplit('.').next().unwrap();
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(part)).collect();
        assert!(leaks.is_empty(), "logged: {leaks:?}");
    }
}
