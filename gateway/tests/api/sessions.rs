use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = spawn_app().await;
    let first = app.user("alice").await;
    let second = app.sign_in("alice").await;
    let list: Value = app
        .get("/api/sessions", Some(&second.token))
        .await
        .json()
        .await
        .expect("json");
    let sessions = list["sessions"].as_array().expect("array");
    assert_eq!(sessions.len(), 2);
    for s in sessions {
        assert_eq!(s["current"], s["id"] == second.session_id.as_str(), "{s}");
        assert_eq!(s["ip"], "127.0.0.1");
    }
    assert!(
        sessions
            .iter()
            .any(|s| s["id"] == first.session_id.as_str())
    );
}

#[tokio::test]
async fn revoking_a_session_closes_its_sockets_with_4001_and_only_those() {
    let app = spawn_app().await;
    let phone = app.user("alice").await;
    let laptop = app.sign_in("alice").await;
    let mut phone_ws = app.ws(&phone).await;
    let mut laptop_ws = app.ws(&laptop).await;
    let r = app
        .delete(
            &format!("/api/sessions/{}", phone.session_id),
            &laptop.token,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(phone_ws.closed().await, 4001);
    assert_eq!(app.get("/api/me", Some(&phone.token)).await.status(), 401);
    let pong = laptop_ws.request(serde_json::json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "the other session stays connected");
}

#[tokio::test]
async fn a_user_cannot_revoke_someone_elses_session() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let r = app
        .delete(&format!("/api/sessions/{}", alice.session_id), &bob.token)
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.get("/api/me", Some(&alice.token)).await.status(), 200);
    let r = app.delete("/api/sessions/not-a-uuid", &bob.token).await;
    assert_eq!(r.status(), 400);
}
