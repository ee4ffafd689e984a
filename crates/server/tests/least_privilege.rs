//! Least privilege: the roles a token may name, what the server refuses to
//! start as, the demo tables' forced row-level security, every identity's
//! fair share of the global budgets, and `exp` values at the edge of `u64`.
//!
//! Each test reproduces a finding of a probe against the release build
//! (issue 20): they fail on the server before it and pass after. Real
//! PostgreSQL (its own database per test, from the migrated template),
//! a real server, real WebSockets and HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use pglive_server::config::Config;
use pglive_server::{Secret, unix_now};
use pglive_testkit::{Client, TestDb, TestServer, fresh_json, run_command, start_error};
use serde_json::{Value, json};

const SECRET: &str = "a test secret, long enough for HS256 keys";

fn mint(claims: Value) -> String {
    pglive_testkit::mint_hs256(SECRET, &claims)
}

fn token(role: &str, tenant: &str) -> String {
    mint(
        json!({"sub":format!("{role}-{tenant}"),"role":role,"tenant":tenant,"exp":unix_now() + 60}),
    )
}

/// A server with authentication as the bench and the probe ran it: logged
/// in as the cluster's superuser (allowed explicitly), no `--jwt-roles`.
fn as_superuser(db: &TestDb) -> Config {
    let mut config = Config::new(db.url.clone());
    config.jwt_secret = Some(Secret::new(SECRET));
    config.allow_privileged_login = true;
    config.dev_tokens = true;
    config.auth_timeout_secs = 2;
    config.group_linger_secs = 0;
    config
}

/// The shipped setup: logged in as `pglive_authenticator`.
fn as_authenticator(db: &TestDb) -> Config {
    let mut config = Config::new(db.authenticator_url());
    config.jwt_secret = Some(Secret::new(SECRET));
    config.dev_tokens = true;
    config.auth_timeout_secs = 2;
    config.group_linger_secs = 0;
    config
}

async fn seed(db: &TestDb) {
    db.exec(
        "INSERT INTO tasks (title, tenant) SELECT 'acme ' || g, 'acme' FROM generate_series(1, 3) g;
         INSERT INTO tasks (title, tenant) SELECT 'globex ' || g, 'globex' FROM generate_series(1, 2) g;
         INSERT INTO tasks (title) VALUES ('public one');",
    )
    .await;
}

/// Roles cluster-wide, so named after the test's database.
async fn create_role(db: &TestDb, name: &str, attributes: &str) -> String {
    let role = format!("{name}_{}", db.name);
    db.exec(&format!("CREATE ROLE {role} {attributes}")).await;
    role
}

async fn drop_roles(db: &TestDb, roles: &[&str]) {
    for role in roles {
        db.exec(&format!(
            "REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE {role}"
        ))
        .await;
    }
}

/// Finding 1: a token naming a superuser, a `BYPASSRLS` role, the server's
/// own role or a table owner's read every tenant's rows and wrote into
/// others'; `/api/dev/token` minted such tokens. Now each is refused the
/// same way over WebSocket, REST and the dev-token endpoint, while
/// ordinary tokens keep working and `--jwt-roles` can still name one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_roles_are_refused_over_websocket_rest_and_dev_tokens() {
    let db = TestDb::new().await;
    seed(&db).await;
    let superuser = create_role(&db, "su", "SUPERUSER").await;
    let bypass = create_role(&db, "byp", "BYPASSRLS").await;
    db.exec(&format!("GRANT pglive_user TO {bypass}")).await;
    let owner = create_role(&db, "own", "NOLOGIN").await;
    db.exec(&format!("ALTER TABLE comments OWNER TO {owner}"))
        .await;
    let server = TestServer::with_config(as_superuser(&db)).await;

    for role in [
        "postgres",
        superuser.as_str(),
        bypass.as_str(),
        owner.as_str(),
    ] {
        let bad = token(role, "acme");
        // WebSocket: the token is refused, and nothing is read.
        let mut c = Client::connect(&server).await;
        c.auth(&bad).await;
        let e = c.error("forbidden").await;
        assert!(e.message.contains(role), "{role}: {}", e.message);
        c.subscribe("t", json!({"table":"tasks"})).await;
        c.error("unauthenticated").await;
        assert!(c.subs.is_empty(), "{role}: rows were sent");
        // The upgrade's bearer header: the same.
        let mut c = Client::connect_bearer(&server, &bad).await;
        c.subscribe("t", json!({"table":"tasks"})).await;
        assert!(!c.until(|c| c.has("t")).await, "{role}: bearer read rows");
        // REST: no write into another tenant.
        let (status, body) = server
            .raw_request(
                "POST",
                "/api/tasks",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {bad}")),
                ],
                Some(r#"{"title":"planted","tenant":"globex"}"#),
            )
            .await;
        assert_eq!(status, 403, "{role}: {body}");
        assert!(body.contains("forbidden"), "{role}: {body}");
        // The dev-token endpoint never mints it.
        let (status, body) = server
            .request(
                "POST",
                "/api/dev/token",
                Some(&json!({"role":role,"claims":{"tenant":"acme"}}).to_string()),
            )
            .await;
        assert_eq!(status, 403, "{role}: {body}");
    }
    let planted = fresh_json(&db, "SELECT id FROM tasks WHERE title = 'planted'").await;
    assert!(planted.is_empty(), "a refused token wrote {planted:?}");

    // An ordinary token on the same server: its own tenant only.
    let mut c = Client::connect(&server).await;
    c.auth(&token("pglive_user", "acme")).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("t") == 3).await);
    assert!(c.rows("t").iter().all(|r| r["tenant"] == "acme"));
    let (status, body) = server
        .request(
            "POST",
            "/api/dev/token",
            Some(r#"{"role":"pglive_user","claims":{"tenant":"acme"}}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;

    // Named by --jwt-roles, a privileged role is the operator's choice.
    let mut config = as_superuser(&db);
    config.jwt_roles = vec![bypass.clone(), "pglive_user".into()];
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    c.auth(&token(&bypass, "acme")).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("t") == 6).await, "BYPASSRLS reads all");
    server.stop().await;
    drop_roles(&db, &[&superuser, &bypass, &owner]).await;
}

/// The server's own login role is never a token's role, even when it is
/// an ordinary one: as the authenticator, a token naming
/// `pglive_authenticator` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_role_is_not_a_tokens() {
    let db = TestDb::new().await;
    seed(&db).await;
    let server = TestServer::with_config(as_authenticator(&db)).await;
    let mut c = Client::connect(&server).await;
    c.auth(&token("pglive_authenticator", "acme")).await;
    c.error("forbidden").await;
    let mut c = Client::connect(&server).await;
    c.auth(&token("pglive_user", "globex")).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("t") == 2).await);
    server.stop().await;
}

/// Finding 1, the start: a privileged login with authentication on, and
/// serving without authentication beyond loopback, are refused with what
/// to do; a privileged or unknown anonymous role too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_privileged_logins_and_unprotected_addresses() {
    let db = TestDb::new().await;
    // A superuser login with authentication on.
    let mut config = as_superuser(&db);
    config.allow_privileged_login = false;
    let err = start_error(config, "127.0.0.1:0").await.expect("refused");
    assert!(err.contains("superuser"), "{err}");
    assert!(err.contains("CREATE ROLE pglive_authenticator"), "{err}");
    assert!(err.contains("--allow-privileged-login"), "{err}");
    // A BYPASSRLS login, not a superuser.
    let bypass = create_role(&db, "bylogin", "LOGIN BYPASSRLS").await;
    db.exec(&format!("GRANT pglive_user TO {bypass}")).await;
    let mut config = as_superuser(&db);
    config.database_url = Some(db.url_as(&bypass));
    config.allow_privileged_login = false;
    let err = start_error(config, "127.0.0.1:0").await.expect("refused");
    assert!(err.contains("BYPASSRLS"), "{err}");
    // Allowed explicitly, it starts.
    let mut config = as_superuser(&db);
    config.database_url = Some(db.url_as(&bypass));
    assert_eq!(start_error(config, "127.0.0.1:0").await, None);

    // Protected mode: no authentication, an address other than loopback.
    let open = Config::new(db.url.clone());
    let err = start_error(open, "0.0.0.0:0").await.expect("refused");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("--no-auth"), "{err}");
    let mut open = Config::new(db.url.clone());
    open.no_auth = true;
    assert_eq!(start_error(open, "0.0.0.0:0").await, None);
    // On loopback, no authentication is the development default.
    assert_eq!(
        start_error(Config::new(db.url.clone()), "127.0.0.1:0").await,
        None
    );

    // The anonymous role passes the tokens' rule at start.
    let mut config = as_authenticator(&db);
    config.anon_role = Some("postgres".into());
    let err = start_error(config, "127.0.0.1:0").await.expect("refused");
    assert!(err.contains("postgres"), "{err}");
    let mut config = as_superuser(&db);
    config.anon_role = Some(bypass.clone());
    let err = start_error(config, "127.0.0.1:0").await.expect("refused");
    assert!(err.contains("BYPASSRLS"), "{err}");
    let mut config = as_authenticator(&db);
    config.anon_role = Some("pglive_anon".into());
    assert_eq!(start_error(config, "127.0.0.1:0").await, None);
    drop_roles(&db, &[&bypass]).await;
}

/// Finding 1, the tables: their owner no longer bypasses the demo's
/// policies (FORCE ROW LEVEL SECURITY), so neither a server logged in as
/// the owner nor psql as the owner sees other tenants' rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_cannot_bypass_the_demos_row_level_security() {
    let db = TestDb::new().await;
    seed(&db).await;
    let owner = create_role(&db, "tables", "LOGIN").await;
    db.exec(&format!(
        "ALTER TABLE items OWNER TO {owner}; ALTER TABLE tasks OWNER TO {owner};
         ALTER TABLE comments OWNER TO {owner}; ALTER TABLE pglive_settings OWNER TO {owner};
         GRANT pglive_user TO {owner}"
    ))
    .await;
    for table in ["items", "tasks", "comments"] {
        let forced = fresh_json(
            &db,
            &format!(
                "SELECT relforcerowsecurity AS f FROM pg_class WHERE oid = '{table}'::regclass"
            ),
        )
        .await;
        assert_eq!(forced[0]["f"], true, "{table}");
    }
    // As the owner, outside any policy: nothing.
    let as_owner =
        pglive_testkit::fresh_at::<pglive_schema::Task>(&db.url_as(&owner), "SELECT * FROM tasks")
            .await;
    assert!(as_owner.is_empty(), "the owner read {as_owner:?}");
    // A server logged in as the owner, tokens of one tenant: that tenant.
    let mut config = as_authenticator(&db);
    config.database_url = Some(db.url_as(&owner));
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    c.auth(&token("pglive_user", "acme")).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("t") == 3).await);
    c.drain(Duration::from_millis(300)).await;
    assert!(c.rows("t").iter().all(|r| r["tenant"] == "acme"));
    // And the owner's role is not a token's.
    let mut d = Client::connect(&server).await;
    d.auth(&token(&owner, "acme")).await;
    d.error("forbidden").await;
    server.stop().await;
    drop_roles(&db, &[&owner]).await;
}

/// Finding 2: one identity took every group (and every row held) and the
/// next got `server_busy`. Now each identity is sure of its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_cannot_lock_another_out_of_groups_or_rows_held() {
    let db = TestDb::new().await;
    db.exec(
        "INSERT INTO items (name, tenant) SELECT 'a' || g, 'acme' FROM generate_series(1, 1000) g;
         INSERT INTO items (name, tenant) SELECT 'g' || g, 'globex' FROM generate_series(1, 1000) g;",
    )
    .await;
    let mut config = as_authenticator(&db);
    config.max_groups = 100;
    config.messages_per_second = 1000;
    let server = TestServer::with_config(config).await;
    let alice = token("pglive_user", "acme");
    let bob = token("pglive_user", "globex");
    // Alice, on two sockets, asks for every group there is.
    let mut a1 = Client::connect(&server).await;
    a1.auth(&alice).await;
    let mut a2 = Client::connect(&server).await;
    a2.auth(&alice).await;
    for i in 0..50 {
        a1.subscribe(&format!("l{i}"), json!({"table":"items","limit":i + 1}))
            .await;
    }
    assert!(a1.until(|c| (0..50).all(|i| c.has(&format!("l{i}")))).await);
    for i in 0..50 {
        a2.subscribe(&format!("l{i}"), json!({"table":"items","limit":i + 51}))
            .await;
    }
    // Her second socket runs out of her room, not the server's.
    a2.error("server_busy").await;
    a1.drain(Duration::from_millis(300)).await;
    assert!(a1.errors.is_empty(), "{:?}", a1.errors);
    let held = server.metric("pglive_groups").await;
    assert!(held <= 90, "alice holds {held} of 100 groups");
    // Bob still gets his share.
    let mut b = Client::connect(&server).await;
    b.auth(&bob).await;
    for i in 0..10 {
        b.subscribe(&format!("b{i}"), json!({"table":"items","limit":i + 1}))
            .await;
    }
    assert!(
        b.until(|c| (0..10).all(|i| c.has(&format!("b{i}")))).await,
        "bob was locked out: {:?}",
        b.errors
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    drop((a1, a2, b));
    server.wait_metric("pglive_groups", 0).await;
    server.stop().await;

    // Rows held: alice's windows fill the budget up to the others' share.
    let mut config = as_authenticator(&db);
    config.max_rows_held = 2_000;
    let server = TestServer::with_config(config).await;
    let mut a = Client::connect(&server).await;
    a.auth(&alice).await;
    for i in 0..8 {
        a.subscribe(&format!("r{i}"), json!({"table":"items","limit":300 + i}))
            .await;
    }
    a.error("server_busy").await;
    assert!(server.metric("pglive_rows_held").await <= 1_800);
    let mut b = Client::connect(&server).await;
    b.auth(&bob).await;
    b.subscribe("b", json!({"table":"items","limit":150})).await;
    assert!(
        b.until(|c| c.len("b") == 150).await,
        "bob was locked out: {:?}",
        b.errors
    );
    server.stop().await;
}

/// Finding 3: `exp` = 2^64−1 overflowed the deadline and panicked the
/// connection's task. Clamped, such a token is simply long-lived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp_at_the_edge_of_u64_is_a_long_life_not_a_panic() {
    let db = TestDb::new().await;
    seed(&db).await;
    let server = TestServer::with_config(as_authenticator(&db)).await;
    for exp in [u64::MAX, 1u64 << 63] {
        let t = mint(json!({"sub":"far","role":"pglive_user","tenant":"acme","exp":exp}));
        let mut c = Client::connect(&server).await;
        c.auth(&t).await;
        assert!(
            c.until(|c| !c.authenticated.is_empty()).await,
            "exp {exp}: {:?}",
            c.errors
        );
        c.subscribe("t", json!({"table":"tasks"})).await;
        assert!(c.until(|c| c.len("t") == 3).await, "exp {exp}");
        // Still served after the token's deadline was computed: a change arrives.
        db.exec("INSERT INTO tasks (title, tenant) VALUES ('later', 'acme')")
            .await;
        assert!(c.until(|c| c.len("t") == 4).await, "exp {exp}");
        db.exec("DELETE FROM tasks WHERE title = 'later'").await;
        assert!(c.until(|c| c.len("t") == 3).await, "exp {exp}");
        // On the upgrade, and over REST.
        let mut c = Client::connect_bearer(&server, &t).await;
        c.subscribe("t", json!({"table":"tasks"})).await;
        assert!(c.until(|c| c.len("t") == 3).await, "bearer exp {exp}");
        let (status, body) = server
            .raw_request(
                "POST",
                "/api/tasks",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {t}")),
                ],
                Some(r#"{"title":"far future"}"#),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert!(body.contains(r#""tenant":"acme""#), "{body}");
        db.exec("DELETE FROM tasks WHERE title = 'far future'")
            .await;
    }
    server.stop().await;
}

/// Finding 6: every context with a group on a table costs a changed-row
/// read per write, so `/metrics` shows how many there are per table:
/// every claim makes a context by default; `--jwt-context-claims tenant`
/// folds the users of one tenant into one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_contexts_each_table_reads_for() {
    let db = TestDb::new().await;
    seed(&db).await;
    const TASKS: &str = r#"pglive_contexts{table="tasks"}"#;
    for (claims, want) in [(vec![], 3), (vec!["tenant".to_owned()], 2)] {
        let mut config = as_authenticator(&db);
        config.jwt_context_claims = claims;
        let server = TestServer::with_config(config).await;
        let mut clients = Vec::new();
        for (sub, tenant) in [("alice", "acme"), ("carol", "acme"), ("bob", "globex")] {
            let t =
                mint(json!({"sub":sub,"role":"pglive_user","tenant":tenant,"exp":unix_now() + 60}));
            let mut c = Client::connect(&server).await;
            c.auth(&t).await;
            c.subscribe("t", json!({"table":"tasks"})).await;
            assert!(c.until(|c| c.has("t")).await);
            clients.push(c);
        }
        server.wait_metric(TASKS, want).await;
        db.exec("INSERT INTO tasks (title, tenant) VALUES ('one write', 'acme')")
            .await;
        for c in &mut clients {
            assert!(
                c.until(|c| c.rows("t").iter().any(|r| r["title"] == "one write"))
                    .await
                    || c.rows("t").iter().all(|r| r["tenant"] == "globex")
            );
        }
        db.exec("DELETE FROM tasks WHERE title = 'one write'").await;
        drop(clients);
        server.wait_metric(TASKS, 0).await;
        server.stop().await;
    }
}

/// `pglive token` mints by the same rule, checked against PostgreSQL when it
/// has a database URL; an enormous `--ttl-secs` saturates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pglive_token_refuses_privileged_roles() {
    let db = TestDb::new().await;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_pglive"));
    let url = db.authenticator_url();
    let args = |role: &'static str, ttl: &'static str| {
        vec![
            "--database-url",
            url.as_str(),
            "--jwt-secret",
            SECRET,
            "token",
            "--role",
            role,
            "--ttl-secs",
            ttl,
        ]
    };
    for role in ["postgres", "pglive_authenticator"] {
        let (ok, out, err) = run_command(bin, &args(role, "60")).await;
        assert!(!ok, "{role}: minted {out}");
        assert!(err.contains(role), "{role}: {err}");
        assert!(out.is_empty(), "{role}: {out}");
    }
    let (ok, out, err) = run_command(bin, &args("pglive_user", "18446744073709551615")).await;
    assert!(ok, "{err}");
    let token = out.trim();
    // The server accepts it: a long life, not an overflow.
    let server = TestServer::with_config(as_authenticator(&db)).await;
    let mut c = Client::connect(&server).await;
    c.auth(token).await;
    assert!(
        c.until(|c| !c.authenticated.is_empty()).await,
        "{:?}",
        c.errors
    );
    server.stop().await;
}
