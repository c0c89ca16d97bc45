//! Operation dispatch, encodings and error conventions (api.md §3).

use axum::body::Body;
use axum::http::Request;

use crate::support::{HOST, TestRegion, p};

#[tokio::test]
async fn unknown_ops_methods_and_endpoints() {
    let t = TestRegion::new().await;
    let reply = t.get("machines/", p().op("frobnicate")).await;
    reply.expect(400);
    assert_eq!(
        reply.text(),
        "Unrecognised signature: method=GET op=frobnicate"
    );
    let reply = t.get("maas/", p()).await;
    reply.expect(400);
    assert_eq!(reply.text(), "Unrecognised signature: method=GET op=None");
    let reply = t.put("machines/", p().text("x", "1")).await;
    reply.expect(405);
    assert_eq!(reply.headers.get("allow").unwrap(), "GET, POST");
    let reply = t.get("nope/", p()).await;
    reply.expect(404);
    assert_eq!(reply.text(), "Unknown API endpoint: /MAAS/api/2.0/nope/.");
    let reply = t.get("machines/zzzzzz/", p()).await;
    reply.expect(404);
    assert_eq!(reply.text(), "No Machine matches the given query.");
}

#[tokio::test]
async fn every_response_has_a_content_type_and_the_api_hash() {
    let t = TestRegion::new().await;
    let describe = t.call("GET", "describe/", p(), None).await;
    let hash = describe.json()["hash"].as_str().unwrap().to_owned();
    let zone = t.post("zones/", p().text("name", "gone-soon")).await;
    zone.expect(200);
    let replies = [
        t.get("users/", p().op("whoami")).await,
        t.get("nope/", p()).await,
        t.call("GET", "users/", p(), None).await,
        t.delete("zones/gone-soon/", p()).await,
        t.get("version/", p()).await,
    ];
    for reply in &replies {
        assert!(
            !reply.content_type().is_empty(),
            "status {} has no content type",
            reply.status
        );
        assert_eq!(
            reply
                .headers
                .get("x-maas-api-hash")
                .unwrap()
                .to_str()
                .unwrap(),
            hash
        );
    }
    assert_eq!(replies[3].status.as_u16(), 204);
    assert!(replies[3].body.is_empty());
}

#[tokio::test]
async fn bare_posts_and_libmaas_empty_multipart() {
    let t = TestRegion::new().await;
    // maascli: no body, no content type.
    t.post("account/", p().op("create_authorisation_token"))
        .await
        .expect(200);
    // libmaas: a multipart body with one headerless empty part.
    let ts = {
        use maas_region::Clock;
        (t.clock.now_millis() / 1000) as u64
    };
    let request = Request::post("/MAAS/api/2.0/account/?op=create_authorisation_token")
        .header("host", HOST)
        .header(
            "authorization",
            t.admin.authorization_header("libmaas-empty", ts),
        )
        .header(
            "content-type",
            "multipart/form-data; boundary=\"===============1234==\"",
        )
        .body(Body::from(
            "--===============1234==\r\n\r\n--===============1234==--",
        ))
        .unwrap();
    let reply = t.raw(request).await;
    reply.expect(200);
    assert_eq!(reply.json()["name"], "MAAS consumer");
}

#[tokio::test]
async fn malformed_bodies_are_400_not_500() {
    let t = TestRegion::new().await;
    let ts = {
        use maas_region::Clock;
        (t.clock.now_millis() / 1000) as u64
    };
    for (i, (content_type, body)) in [
        ("multipart/form-data", "--x--"),
        ("multipart/form-data; boundary=b", "garbage"),
        ("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated"),
        ("multipart/form-data; boundary=b", "--b\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n***\r\n--b--"),
    ]
    .into_iter()
    .enumerate()
    {
        let request = Request::post("/MAAS/api/2.0/zones/")
            .header("host", HOST)
            .header("authorization", t.admin.authorization_header(&format!("bad-body-{i}"), ts))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let reply = t.raw(request).await;
        reply.expect(400);
        assert!(reply.text().starts_with("Malformed request body"), "{}", reply.text());
    }
}

#[tokio::test]
async fn urlencoded_bodies_and_repeated_keys() {
    let t = TestRegion::new().await;
    let ts = {
        use maas_region::Clock;
        (t.clock.now_millis() / 1000) as u64
    };
    let request = Request::post("/MAAS/api/2.0/machines/")
        .header("host", HOST)
        .header("authorization", t.admin.authorization_header("urlenc", ts))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("architecture=amd64&mac_addresses=52:54:00:00:00:01&mac_addresses=52:54:00:00:00:02&commission=false"))
        .unwrap();
    let reply = t.raw(request).await;
    reply.expect(200);
    let machine = reply.json();
    assert_eq!(machine["interface_set"].as_array().unwrap().len(), 2);
    assert_eq!(machine["architecture"], "amd64/generic");
}

#[tokio::test]
async fn legacy_paths_redirects_and_op_suffixes() {
    let t = TestRegion::new().await;
    let reply = t
        .raw(
            Request::get("/MAAS/api/version/")
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.text(), "2.0");
    t.raw(
        Request::get("/MAAS/api/1.0/nodes/")
            .header("host", HOST)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .expect(410);
    let reply = t
        .raw(
            Request::get("/MAAS/api/2.0/machines?x=1")
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    reply.expect(301);
    assert_eq!(
        reply.headers.get("location").unwrap(),
        "/MAAS/api/2.0/machines/?x=1"
    );
    let reply = t.get("users/op-whoami", p()).await;
    reply.expect(200);
    assert_eq!(reply.json()["username"], "admin");
}
