//! OAuth 1.0 PLAINTEXT and password login (api.md §2).

use axum::body::Body;
use axum::http::Request;
use maas_client::Credentials;

use crate::support::{HOST, TestRegion, p};

#[tokio::test]
async fn whoami_with_a_valid_key() {
    let t = TestRegion::new().await;
    let reply = t.get("users/", p().op("whoami")).await;
    reply.expect(200);
    assert_eq!(reply.json()["username"], "admin");
    assert_eq!(reply.json()["is_superuser"], true);
}

async fn whoami_with_header(t: &TestRegion, header: &str) -> crate::support::Reply {
    let request = Request::get("/MAAS/api/2.0/users/?op=whoami")
        .header("host", HOST)
        .header("authorization", header)
        .body(Body::empty())
        .unwrap();
    t.raw(request).await
}

fn now_secs(t: &TestRegion) -> u64 {
    use maas_region::Clock;
    (t.clock.now_millis() / 1000) as u64
}

#[tokio::test]
async fn libmaas_header_with_realm_is_accepted() {
    let t = TestRegion::new().await;
    let header = t
        .admin
        .authorization_header("n-realm", now_secs(&t))
        .replacen("OAuth ", "OAuth realm=\"OAuth\", ", 1);
    whoami_with_header(&t, &header).await.expect(200);
}

#[tokio::test]
async fn bad_keys_are_401_with_maas_messages() {
    let t = TestRegion::new().await;
    let ts = now_secs(&t);
    let unknown_consumer = Credentials::parse(&format!(
        "nope:{}:{}",
        t.admin.token_key(),
        t.admin.token_secret()
    ))
    .unwrap();
    let reply = whoami_with_header(&t, &unknown_consumer.authorization_header("n1", ts)).await;
    reply.expect(401);
    assert_eq!(reply.text(), "Authorization Error: Invalid API key.");
    assert_eq!(
        reply.headers.get("www-authenticate").unwrap(),
        "OAuth realm=\"OAuth\""
    );

    let unknown_token = Credentials::parse(&format!(
        "{}:nope:{}",
        t.admin.consumer_key(),
        t.admin.token_secret()
    ))
    .unwrap();
    let reply = whoami_with_header(&t, &unknown_token.authorization_header("n2", ts)).await;
    reply.expect(401);
    assert_eq!(
        reply.text(),
        "Authorization Error: 'Invalid access token: nope'"
    );

    let wrong_secret = Credentials::parse(&format!(
        "{}:{}:wrong",
        t.admin.consumer_key(),
        t.admin.token_key()
    ))
    .unwrap();
    let reply = whoami_with_header(&t, &wrong_secret.authorization_header("n3", ts)).await;
    reply.expect(401);
    assert!(
        reply
            .text()
            .starts_with("Authorization Error: Invalid signature"),
        "{}",
        reply.text()
    );

    let reply = whoami_with_header(
        &t,
        &t.admin
            .authorization_header("n4", ts)
            .replace("PLAINTEXT", "HMAC-SHA1"),
    )
    .await;
    reply.expect(401);
}

#[tokio::test]
async fn expired_timestamps_and_reused_nonces_are_refused() {
    let t = TestRegion::new().await;
    let ts = now_secs(&t);
    whoami_with_header(&t, &t.admin.authorization_header("same", ts))
        .await
        .expect(200);
    let reply = whoami_with_header(&t, &t.admin.authorization_header("same", ts)).await;
    reply.expect(401);
    assert!(
        reply.text().contains("Nonce already used"),
        "{}",
        reply.text()
    );
    // Five minutes old is fine; a second more is not. The future is fine.
    whoami_with_header(&t, &t.admin.authorization_header("old-ok", ts - 300))
        .await
        .expect(200);
    whoami_with_header(&t, &t.admin.authorization_header("too-old", ts - 301))
        .await
        .expect(401);
    whoami_with_header(&t, &t.admin.authorization_header("future", ts + 3600))
        .await
        .expect(200);
    let reply = whoami_with_header(
        &t,
        &t.admin
            .authorization_header("bad-ts", ts)
            .replace(&format!("\"{ts}\""), "\"soon\""),
    )
    .await;
    reply.expect(401);
}

#[tokio::test]
async fn oauth_parameters_in_the_query_string() {
    let t = TestRegion::new().await;
    let ts = now_secs(&t);
    let uri = format!(
        "/MAAS/api/2.0/users/?op=whoami&oauth_consumer_key={}&oauth_token={}&oauth_signature=%26{}&oauth_signature_method=PLAINTEXT&oauth_timestamp={ts}&oauth_nonce=q1",
        t.admin.consumer_key(),
        t.admin.token_key(),
        t.admin.token_secret()
    );
    let reply = t
        .raw(
            Request::get(uri)
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.json()["username"], "admin");
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let t = TestRegion::new().await;
    let created = t
        .post(
            "account/",
            p().op("create_authorisation_token").text("name", "laptop"),
        )
        .await;
    created.expect(200);
    let body = created.json();
    assert_eq!(body["name"], "laptop");
    let key = Credentials::parse(&format!(
        "{}:{}:{}",
        body["consumer_key"].as_str().unwrap(),
        body["token_key"].as_str().unwrap(),
        body["token_secret"].as_str().unwrap()
    ))
    .unwrap();
    t.call("GET", "users/", p().op("whoami"), Some(&key))
        .await
        .expect(200);
    t.post(
        "account/",
        p().op("delete_authorisation_token")
            .text("token_key", key.token_key()),
    )
    .await
    .expect(204);
    t.call("GET", "users/", p().op("whoami"), Some(&key))
        .await
        .expect(401);
}

#[tokio::test]
async fn anonymous_access_rules() {
    let t = TestRegion::new().await;
    let reply = t.call("GET", "users/", p().op("whoami"), None).await;
    reply.expect(401);
    let reply = t.call("GET", "version/", p(), None).await;
    reply.expect(200);
    let capabilities = reply.json()["capabilities"].clone();
    assert!(
        capabilities
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "authenticate-api")
    );
    assert_eq!(reply.json()["version"], "3.5.0");
    assert_eq!(reply.json()["subversion"], "");
    // libmaas signs anon calls too.
    t.get("version/", p()).await.expect(200);
    // Allowed method, op not exported on the anonymous handler: 400, not 401.
    let reply = t.call("POST", "machines/", p().op("allocate"), None).await;
    reply.expect(400);
    assert_eq!(
        reply.text(),
        "Unrecognised signature: method=POST op=allocate"
    );
    t.call("POST", "machines/", p().op("accept"), None)
        .await
        .expect(401);
    let reply = t
        .call(
            "GET",
            "nodes/",
            p().op("is_registered")
                .text("mac_address", "52:54:00:00:00:01"),
            None,
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.json(), false);
}

#[tokio::test]
async fn non_admins_are_kept_out_of_admin_operations() {
    let t = TestRegion::new().await;
    let bob = t.user("bob").await;
    let reply = t
        .call(
            "POST",
            "users/",
            p().text("username", "x")
                .text("email", "x@y")
                .text("password", "p")
                .text("is_superuser", "0"),
            Some(&bob),
        )
        .await;
    reply.expect(403);
    assert_eq!(reply.text(), "This method is reserved for admin users.");
    t.call("POST", "zones/", p().text("name", "z"), Some(&bob))
        .await
        .expect(403);
    t.call(
        "POST",
        "maas/",
        p().op("set_config")
            .text("name", "maas_name")
            .text("value", "x"),
        Some(&bob),
    )
    .await
    .expect(403);
    let reply = t
        .call(
            "GET",
            "maas/",
            p().op("get_config").text("name", "maas_name"),
            Some(&bob),
        )
        .await;
    reply.expect(200);
}

async fn authenticate(t: &TestRegion, body: &str) -> crate::support::Reply {
    let request = Request::post("/MAAS/accounts/authenticate/")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    t.raw(request).await
}

#[tokio::test]
async fn password_login_hands_out_tokens() {
    let t = TestRegion::new().await;
    let reply = authenticate(&t, "username=admin&password=admin-pw&consumer=me%40laptop").await;
    reply.expect(200);
    let first = reply.json();
    assert_eq!(first["name"], "me@laptop");
    for key in ["consumer_key", "token_key", "token_secret"] {
        assert!(first[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    // Same consumer name: the same token again.
    let again = authenticate(&t, "username=admin&password=admin-pw&consumer=me%40laptop")
        .await
        .json();
    assert_eq!(again["token_key"], first["token_key"]);
    // No consumer: the oldest token, the one made with the user.
    let oldest = authenticate(&t, "username=admin&password=admin-pw")
        .await
        .json();
    assert_eq!(oldest["token_key"], t.admin.token_key());
    let reply = authenticate(&t, "username=admin&password=wrong").await;
    reply.expect(403);
    assert!(reply.body.is_empty());
    authenticate(&t, "username=ghost&password=x")
        .await
        .expect(403);
    let reply = t
        .raw(
            Request::get("/MAAS/accounts/authenticate/")
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    reply.expect(405);
}
