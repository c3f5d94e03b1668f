use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_registered_user_can_log_in_and_read_me() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/auth/register",
            json!({"username": "alice", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["username"], "alice");
    let alice = app.sign_in("alice").await;
    let me: Value = app
        .get("/api/me", Some(&alice.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["id"], created["id"]);
}

#[tokio::test]
async fn registration_rejects_bad_input_and_taken_names() {
    let app = spawn_app().await;
    for (username, password) in [
        ("ab", PASSWORD),
        ("bad name", PASSWORD),
        ("okname", "short"),
        ("okname", &"p".repeat(129)[..]),
    ] {
        let r = app
            .post(
                "/api/auth/register",
                json!({"username": username, "password": password}),
                None,
            )
            .await;
        assert_eq!(r.status(), 400, "{username}/{password}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "bad_request");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    app.user("alice").await;
    let r = app
        .post(
            "/api/auth/register",
            json!({"username": "alice", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], "conflict");
}

#[tokio::test]
async fn malformed_bodies_get_a_json_bad_request() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "bad_request"
    );
    let r = app
        .post("/api/auth/register", json!({"username": "alice"}), None)
        .await;
    assert_eq!(r.status(), 400, "missing password");
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_look_the_same() {
    let app = spawn_app().await;
    app.user("alice").await;
    let wrong = app.login("alice", "wrong password").await;
    let unknown = app.login("nobody", "wrong password").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let (wrong, unknown): (Value, Value) = (
        wrong.json().await.expect("json"),
        unknown.json().await.expect("json"),
    );
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["code"], "unauthorized");
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized() {
    let app = spawn_app().await;
    for token in [None, Some("garbage")] {
        let r = app.get("/api/me", token).await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.expect("json")["code"],
            "unauthorized"
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let r = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().await.expect("json");
    assert_eq!(pair["session_id"], alice.session_id);
    assert_ne!(pair["refresh_token"], json!(alice.refresh));
    let new_access = pair["access_token"].as_str().expect("access");
    assert_eq!(app.get("/api/me", Some(new_access)).await.status(), 200);

    // Replaying the old refresh token: refused, and the whole session dies.
    let r = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": pair["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(r.status(), 401, "the rotated token died with the session");
    assert_eq!(app.get("/api/me", Some(new_access)).await.status(), 401);
    let r = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": "not-a-token"}),
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn logout_ends_the_session_and_closes_its_sockets() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws(&alice).await;
    let r = app
        .post(
            "/api/auth/logout",
            json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(ws.closed().await, 4001);
    assert_eq!(app.get("/api/me", Some(&alice.token)).await.status(), 401);
    let r = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .post(
            "/api/auth/logout",
            json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), 401, "a logged-out token cannot log out again");
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_username() {
    let app = spawn_app_with(|s| {
        s.rate_login_user_per_min = 1.0;
        s.rate_login_user_burst = 2;
    })
    .await;
    app.user("alice").await; // one attempt used by sign-in
    app.login("alice", "wrong password").await;
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "rate_limited"
    );
    assert_eq!(
        app.login("bob_other", "x").await.status(),
        401,
        "other usernames are not limited"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_last_forwarded_address_is_the_client() {
    let app = spawn_app_with(|s| {
        s.trust_forwarded_for = true;
        s.rate_login_ip_per_min = 1.0;
        s.rate_login_ip_burst = 2;
    })
    .await;
    let login = |forwarded: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/api/auth/login"))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"username": "nobody", "password": "whatever1"}))
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    // One real client (appended last by the proxy) forging the earlier entries.
    assert_eq!(login("1.1.1.1, 203.0.113.7").await, 401);
    assert_eq!(login("2.2.2.2, 203.0.113.7").await, 401);
    assert_eq!(
        login("3.3.3.3, 203.0.113.7").await,
        429,
        "forged entries must not reset the limit"
    );
    assert_eq!(
        login("203.0.113.8").await,
        401,
        "another client has its own allowance"
    );
}
