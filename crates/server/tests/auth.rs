//! Identity and row-level security: signed tokens, RLS-scoped groups,
//! authorized writes. Real PostgreSQL policies (the demo migration's tenant
//! policies), a real server, real WebSockets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pglive_schema::Task;
use pglive_server::config::Config;
use pglive_server::{Secret, unix_now};
use pglive_testkit::{Client, TestDb, TestServer, fresh_as, fresh_count, fresh_json};
use serde_json::{Value, json};

const SECRET: &str = "a test secret, long enough for HS256 keys";

fn secured(db: &TestDb) -> Config {
    // As the shipped setup runs: logged in as the authenticator, which may
    // only become the roles granted to it.
    let mut config = Config::new(db.authenticator_url());
    config.jwt_secret = Some(Secret::new(SECRET));
    config.jwt_roles = vec!["pglive_user".into(), "ghost_role".into()];
    config.auth_timeout_secs = 2;
    config
}

fn mint(claims: Value) -> String {
    pglive_testkit::mint_hs256(SECRET, &claims)
}

fn user(sub: &str, tenant: &str, ttl: u64) -> String {
    mint(json!({"sub":sub,"role":"pglive_user","tenant":tenant,"exp":unix_now() + ttl}))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

async fn seed(db: &TestDb) {
    db.exec(
        "INSERT INTO tasks (title, tenant) SELECT 'acme ' || g, 'acme' FROM generate_series(1, 3) g;
         INSERT INTO tasks (title, tenant) SELECT 'globex ' || g, 'globex' FROM generate_series(1, 2) g;
         INSERT INTO tasks (title) VALUES ('public one');",
    )
    .await;
}

fn tenants(rows: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = rows
        .iter()
        .map(|r| r["tenant"].as_str().unwrap().to_owned())
        .collect();
    t.dedup();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_nothing_is_read_and_the_socket_closes() {
    let db = TestDb::new().await;
    seed(&db).await;
    let server = TestServer::with_config(secured(&db)).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    let e = c.error("unauthenticated").await;
    assert_eq!(e.id.unwrap().0, "t");
    // A token in the URL is not a way in (and is never logged).
    let token = user("alice", "acme", 60);
    let url = format!("{}?token={token}&access_token={token}", server.ws_url());
    let mut u = Client::connect_url(&url).await;
    u.subscribe("t", json!({"table":"tasks"})).await;
    u.error("unauthenticated").await;
    // Silence past the deadline closes the connection with 4401.
    c.drain(Duration::from_secs(4)).await;
    assert_eq!(c.close_code, Some(pglive_server::CLOSE_UNAUTHENTICATED));
    assert!(c.subs.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_clear_answers_and_nothing_else() {
    let db = TestDb::new().await;
    seed(&db).await;
    let server = TestServer::with_config(secured(&db)).await;
    let now = unix_now();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"role":"pglive_user","tenant":"acme","exp":now + 60}),
        &EncodingKey::from_secret(b"not the server's secret, but as long").unwrap(),
    )
    .unwrap();
    let none = {
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let body = mint(json!({"role":"pglive_user","tenant":"acme","exp":now + 60}));
        let payload = body.split('.').nth(1).unwrap().to_owned();
        format!("{header}.{payload}.")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("forged signature", forged, "unauthenticated"),
        ("alg none", none, "unauthenticated"),
        (
            "expired",
            mint(json!({"role":"pglive_user","exp":now - 100})),
            "token_expired",
        ),
        (
            "not yet valid",
            mint(json!({"role":"pglive_user","exp":now + 100,"nbf":now + 80})),
            "unauthenticated",
        ),
        (
            "no exp",
            mint(json!({"role":"pglive_user"})),
            "unauthenticated",
        ),
        (
            "role not allowed",
            mint(json!({"role":"postgres","exp":now + 60})),
            "forbidden",
        ),
        (
            "role that does not exist",
            mint(json!({"role":"ghost_role","exp":now + 60})),
            "forbidden",
        ),
        ("garbage", "x.y.z".to_owned(), "unauthenticated"),
    ];
    for (what, token, code) in cases {
        let mut c = Client::connect(&server).await;
        c.auth(&token).await;
        let e = c.error(code).await;
        assert!(!e.message.contains(&token), "{what}: the token came back");
        c.subscribe("t", json!({"table":"tasks"})).await;
        c.error("unauthenticated").await;
        assert!(c.subs.is_empty(), "{what}: rows were sent");
    }
    // A megabyte of claims never gets that far.
    let mut c = Client::connect(&server).await;
    let huge = mint(json!({"role":"pglive_user","exp":now + 60,"pad":"x".repeat(1024 * 1024)}));
    c.auth(&huge).await;
    c.drain(Duration::from_secs(2)).await;
    assert!(c.subs.is_empty());
    server.stop().await;

    // Public-key verification: an RS256 token verifies; an HS256 token
    // "signed" with the public key (algorithm confusion) does not.
    let mut config = Config::new(db.authenticator_url());
    config.jwt_key_file = Some(fixture("rsa_public.pem"));
    config.jwt_algorithm = Some(Algorithm::RS256);
    let server = TestServer::with_config(config).await;
    let claims = json!({"role":"pglive_user","tenant":"acme","exp":now + 60});
    let private = std::fs::read(fixture("rsa_private.pem")).unwrap();
    let good = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    let public = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&public).unwrap(),
    )
    .unwrap();
    let mut c = Client::connect(&server).await;
    c.auth(&confused).await;
    c.error("unauthenticated").await;
    c.auth(&good).await;
    assert!(c.until(|c| !c.authenticated.is_empty()).await);
    assert_eq!(c.authenticated[0].role, "pglive_user");
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("t") == 3).await);
    server.stop().await;

    // EdDSA from a PEM key file.
    let mut config = Config::new(db.authenticator_url());
    config.jwt_key_file = Some(fixture("ed_public.pem"));
    let server = TestServer::with_config(config).await;
    let private = std::fs::read(fixture("ed_private.pem")).unwrap();
    let ed = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_pem(&private).unwrap(),
    )
    .unwrap();
    let mut c = Client::connect_bearer(&server, &ed).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(
        c.until(|c| c.len("t") == 3).await,
        "bearer header on the upgrade"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_context_sees_only_its_rows_and_leaving_rows_are_deletes() {
    contexts_see_only_their_rows(false).await;
}

/// The demo's tasks are watched with `partition => 'tenant'`: a write to one
/// tenant's rows reads for that tenant's context only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_hint_reads_only_for_the_partitions_a_change_touched() {
    contexts_see_only_their_rows(true).await;
}

async fn contexts_see_only_their_rows(hint: bool) {
    let db = TestDb::new().await;
    seed(&db).await;
    if !hint {
        db.exec("SELECT pglive_watch('tasks')").await;
    }
    let mut config = secured(&db);
    config.jwt_context_claims = vec!["tenant".into()];
    let server = TestServer::with_config(config).await;
    let mut acme = Client::connect(&server).await;
    acme.auth(&user("alice", "acme", 60)).await;
    acme.subscribe("t", json!({"table":"tasks","order":{"by":"title"}}))
        .await;
    let mut acme2 = Client::connect(&server).await;
    acme2.auth(&user("ann", "acme", 60)).await;
    acme2
        .subscribe("t", json!({"table":"tasks","order":{"by":"title"}}))
        .await;
    let mut globex = Client::connect(&server).await;
    globex.auth(&user("bob", "globex", 60)).await;
    globex
        .subscribe("t", json!({"table":"tasks","order":{"by":"title"}}))
        .await;
    assert!(acme.until(|c| c.len("t") == 3).await);
    assert!(acme2.until(|c| c.len("t") == 3).await);
    assert!(globex.until(|c| c.len("t") == 2).await);
    // Two tenants, two contexts: alice and ann share one group.
    assert_eq!(server.metric("pglive_groups").await, 2);

    // One write: one changed-row read per context with groups on the table,
    // or, with the hint, only for the context of the row's tenant.
    let before = server.metric("pglive_refreshes_keyed_total").await;
    let skipped = server
        .metric("pglive_reads_skipped_by_partition_total")
        .await;
    db.exec("UPDATE tasks SET title = 'acme moved' WHERE title = 'acme 1'")
        .await;
    assert!(
        acme.until(|c| c.rows("t").iter().any(|r| r["title"] == "acme moved"))
            .await
    );
    let (reads, skips) = if hint { (1, 1) } else { (2, 0) };
    // The other context's read may still be under way.
    server
        .wait_metric("pglive_refreshes_keyed_total", before + reads)
        .await;
    assert_eq!(
        server
            .metric("pglive_reads_skipped_by_partition_total")
            .await
            - skipped,
        skips
    );

    // A row moving to another tenant is a delete for one and an insert for
    // the other (the notice names both partitions); nobody ever sees
    // another tenant's row.
    let before = server.metric("pglive_refreshes_keyed_total").await;
    db.exec("UPDATE tasks SET tenant = 'globex' WHERE title = 'acme moved'")
        .await;
    assert!(acme.until(|c| c.len("t") == 2).await);
    assert!(globex.until(|c| c.len("t") == 3).await);
    server
        .wait_metric("pglive_refreshes_keyed_total", before + 2)
        .await;
    db.exec("DELETE FROM tasks WHERE title = 'acme moved'")
        .await;
    assert!(globex.until(|c| c.len("t") == 2).await);
    acme.drain(Duration::from_millis(300)).await;
    globex.drain(Duration::from_millis(300)).await;
    assert_eq!(tenants(&acme.seen), ["acme"]);
    assert!(globex.seen.iter().all(|r| r["tenant"] == "globex"));
    assert_eq!(acme.len("t"), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_subscriptions_expiry_stops_them_and_a_new_context_moves_them() {
    let db = TestDb::new().await;
    seed(&db).await;
    let server = TestServer::with_config(secured(&db)).await;
    let mut c = Client::connect(&server).await;
    c.auth(&user("alice", "acme", 60)).await;
    c.subscribe("t", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("t") == 3).await);
    // A fresh token for the same context: acknowledged, nothing re-sent.
    c.auth(&user("alice", "acme", 3)).await;
    assert!(c.until(|c| c.authenticated.len() == 2).await);
    db.exec("INSERT INTO tasks (title, tenant) VALUES ('acme new', 'acme')")
        .await;
    assert!(c.until(|c| c.len("t") == 4).await);
    assert_eq!(c.subs["t"].snapshots, 1, "no re-download on refresh");
    assert_eq!(c.subs["t"].diffs, 1);
    // That token runs out: the client is told and its subscription stops.
    let e = c.error("token_expired").await;
    assert!(e.id.is_none());
    db.exec("INSERT INTO tasks (title, tenant) VALUES ('acme later', 'acme')")
        .await;
    c.drain(Duration::from_millis(500)).await;
    assert_eq!(c.len("t"), 4, "no change arrives after expiry");
    c.subscribe("u", json!({"table":"tasks"})).await;
    c.error("unauthenticated").await;

    // Another person, another tenant: every subscription moves, gap-free.
    let mut d = Client::connect(&server).await;
    d.auth(&user("alice", "acme", 60)).await;
    d.subscribe("t", json!({"table":"tasks","order":{"by":"title"}}))
        .await;
    assert!(d.until(|c| c.len("t") == 5).await);
    d.auth(&user("bob", "globex", 60)).await;
    assert!(
        d.until(|c| c.subs["t"].snapshots == 2 && c.len("t") == 2)
            .await
    );
    db.exec(
        "INSERT INTO tasks (title, tenant) VALUES ('globex new', 'globex'), ('acme again', 'acme')",
    )
    .await;
    assert!(d.until(|c| c.len("t") == 3).await);
    d.drain(Duration::from_millis(300)).await;
    assert!(d.rows("t").iter().all(|r| r["tenant"] == "globex"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_writes_run_as_the_token_and_policies_decide() {
    let db = TestDb::new().await;
    seed(&db).await;
    let mut config = secured(&db);
    config.anon_role = Some("pglive_anon".into());
    config.jwt_roles.push("pglive_anon".into());
    let server = TestServer::with_config(config).await;
    let alice = user("alice", "acme", 60);
    let bob = user("bob", "globex", 60);
    let mut acme = Client::connect(&server).await;
    acme.auth(&alice).await;
    acme.subscribe("t", json!({"table":"tasks"})).await;
    let mut globex = Client::connect(&server).await;
    globex.auth(&bob).await;
    globex.subscribe("t", json!({"table":"tasks"})).await;
    // No token: the anonymous role reads the public tenant only.
    let mut anon = Client::connect(&server).await;
    anon.subscribe("t", json!({"table":"tasks"})).await;
    assert!(acme.until(|c| c.len("t") == 3).await);
    assert!(globex.until(|c| c.len("t") == 2).await);
    assert!(anon.until(|c| c.len("t") == 1).await);

    let post = |token: &str, body: &str| {
        let token = token.to_owned();
        let body = body.to_owned();
        let server = &server;
        async move {
            let auth = format!("Bearer {token}");
            server
                .raw_request(
                    "POST",
                    "/api/tasks",
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ],
                    Some(&body),
                )
                .await
        }
    };
    // Writing into another tenant: refused by WITH CHECK, nothing written.
    let (status, body) = post(&alice, r#"{"title":"sneaky","tenant":"globex"}"#).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "forbidden"
    );
    assert!(
        fresh_json(&db, "SELECT * FROM tasks WHERE title = 'sneaky'")
            .await
            .is_empty()
    );
    // Allowed: the tenant defaults to the token's, and only acme sees it.
    let (status, body) = post(&alice, r#"{"title":"acme via rest"}"#).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["tenant"],
        "acme"
    );
    assert!(acme.until(|c| c.len("t") == 4).await);
    globex.drain(Duration::from_millis(300)).await;
    anon.drain(Duration::from_millis(100)).await;
    assert_eq!(globex.len("t"), 2);
    assert_eq!(anon.len("t"), 1);
    // Another tenant's row cannot even be found.
    let id = fresh_json(&db, "SELECT id FROM tasks WHERE tenant = 'globex' LIMIT 1").await[0]["id"]
        .clone();
    let (status, _) = server
        .raw_request(
            "PATCH",
            &format!("/api/tasks/{id}"),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {alice}")),
            ],
            Some(r#"{"title":"hijacked"}"#),
        )
        .await;
    assert_eq!(status, 404);
    // No token and the anonymous role cannot write; a bad token is 401.
    let (status, _) = server
        .request("POST", "/api/tasks", Some(r#"{"title":"anon"}"#))
        .await;
    assert_eq!(status, 403);
    let (status, body) = post("not.a.token", r#"{"title":"x"}"#).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        fresh_json(
            &db,
            "SELECT * FROM tasks WHERE title IN ('anon','x','hijacked')"
        )
        .await
        .is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_raises_fails_only_its_own_group() {
    let db = TestDb::new().await;
    seed(&db).await;
    db.exec(
        "CREATE FUNCTION boom() RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             IF pglive_claim('tenant') = 'boom' THEN RAISE EXCEPTION 'boom'; END IF;
             RETURN true;
         END $$;
         CREATE POLICY tasks_boom ON tasks AS RESTRICTIVE TO pglive_user USING (boom());
         INSERT INTO tasks (title, tenant) VALUES ('a row the policy trips on', 'boom');",
    )
    .await;
    let server = TestServer::with_config(secured(&db)).await;
    let mut boom = Client::connect(&server).await;
    boom.auth(&user("eve", "boom", 60)).await;
    boom.subscribe("t", json!({"table":"tasks"})).await;
    let mut acme = Client::connect(&server).await;
    acme.auth(&user("alice", "acme", 60)).await;
    acme.subscribe("t", json!({"table":"tasks"})).await;
    let e = boom.error("query_failed").await;
    assert!(
        !e.message.contains("boom"),
        "no database text: {}",
        e.message
    );
    assert!(acme.until(|c| c.len("t") == 3).await);
    db.exec("INSERT INTO tasks (title, tenant) VALUES ('still live', 'acme')")
        .await;
    assert!(acme.until(|c| c.len("t") == 4).await);
    server.stop().await;
}

/// Users in several tenants subscribe to random queries while random writes
/// (rows moving between tenants among them) go on. No frame ever carries a
/// row of another tenant, and after quiescence every client's rows equal a
/// fresh run of its query as that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_writes_never_leak_across_tenants() {
    use pglive_testkit::random::{self, Spec};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("PGLIVE_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let db = TestDb::new().await;
    let mut config = secured(&db);
    config.jwt_context_claims = vec!["tenant".into()];
    let server = TestServer::with_config(config).await;
    let spec = Spec::of::<Task>();
    let tenants = ["a", "b", "zz"];
    let mut conn = db.conn().await;
    let rows: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "INSERT INTO tasks (title, tenant) VALUES ('t{i}', '{}')",
                tenants[i % 3]
            )
        })
        .collect();
    random::transaction(&mut conn, &rows).await;
    let mut clients = Vec::new();
    for i in 0..9 {
        let tenant = tenants[i % 3];
        let q = random::counted_query(&mut rng, &spec);
        let mut c = Client::connect(&server).await;
        c.auth(&user(&format!("u{i}"), tenant, 600)).await;
        c.subscribe("p", q.json.clone()).await;
        clients.push((c, tenant, q.json, q.sql, q.count_sql));
    }
    for step in 0..150 {
        let mut batch = vec![random::write(&mut rng, &spec)];
        if rng.random_bool(0.3) {
            let to = tenants[rng.random_range(0..3)];
            batch.push(format!(
                "UPDATE tasks SET tenant = '{to}' WHERE id IN (SELECT id FROM tasks ORDER BY id OFFSET {} LIMIT 2)",
                rng.random_range(0..30)
            ));
        }
        random::transaction(&mut conn, &batch).await;
        if step % 10 == 0 {
            for (c, ..) in &mut clients {
                c.drain(Duration::from_millis(1)).await;
            }
        }
    }
    for (c, tenant, query, sql, count_sql) in &mut clients {
        let claims = json!({"tenant": tenant}).to_string();
        let want = fresh_as::<Task>(&db, "pglive_user", &claims, sql).await;
        // A live count counts only what the user may see.
        let count = match count_sql {
            Some(sql) => Some(fresh_count(&db, Some(("pglive_user", &claims)), sql).await),
            None => None,
        };
        let ok = c
            .until(|c| c.has("p") && c.rows("p") == want && c.count("p") == count)
            .await;
        assert!(
            ok,
            "seed {seed}: {tenant} {query} diverged:\n got {:?} (count {:?})\nwant {:?} (count {count:?})",
            c.rows("p"),
            c.count("p"),
            want
        );
        let leaked: Vec<&Value> = c.seen.iter().filter(|r| r["tenant"] != *tenant).collect();
        assert!(
            leaked.is_empty(),
            "seed {seed}: tenant {tenant} received {leaked:?}"
        );
        assert!(c.errors.is_empty(), "{:?}", c.errors);
    }
    server.stop().await;
}

/// Comments are visible when their task is (a policy with a subquery on
/// tasks, declared with `depends_on(tasks)`): a task changing tenant takes
/// its comments along, although no comment changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_whose_visibility_depends_on_another_table_follow_it() {
    let db = TestDb::new().await;
    seed(&db).await;
    db.exec(
        "INSERT INTO comments (task_id, author, body)
         SELECT id, 'alice', 'on ' || title FROM tasks WHERE title IN ('acme 1', 'acme 2')",
    )
    .await;
    let server = TestServer::with_config(secured(&db)).await;
    let mut acme = Client::connect(&server).await;
    acme.auth(&user("alice", "acme", 60)).await;
    acme.subscribe("c", json!({"table":"comments"})).await;
    let mut globex = Client::connect(&server).await;
    globex.auth(&user("bob", "globex", 60)).await;
    globex.subscribe("c", json!({"table":"comments"})).await;
    assert!(acme.until(|c| c.len("c") == 2).await);
    assert!(globex.until(|c| c.has("c")).await);
    assert_eq!(globex.len("c"), 0);
    db.exec("UPDATE tasks SET tenant = 'globex' WHERE title = 'acme 1'")
        .await;
    assert!(
        acme.until(|c| c.len("c") == 1).await,
        "the moved task's comment left: {:?}",
        acme.rows("c")
    );
    assert!(
        globex.until(|c| c.len("c") == 1).await,
        "and arrived where the task went"
    );
    server.stop().await;
}
