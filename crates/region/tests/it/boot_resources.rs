//! `boot-resources`, `boot-sources` and selections (api.md §12), the chunk upload, the
//! import from the signed test mirror, the files and manifest racks fetch, and the deploy
//! image check.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use maas_client::Credentials;
use maas_client::http::Params;
use maas_store::{BootResourceType, NewBootResource, NewBootResourceFile};
use serde_json::Value;
use sha2::Digest;

use crate::mirror::{MirrorServer, mirror};
use crate::support::{HOST, Reply, TestRegion, p};

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that look like nothing in particular.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `maas admin boot-resources create name=… architecture=… filetype=… content@=…` sends
/// this first: the fields sorted by name, `sha256` and `size` instead of the content.
fn announce(name: &str, filetype: &str, bytes: &[u8]) -> Params {
    p().text("architecture", "amd64/generic")
        .text("filetype", filetype)
        .text("name", name)
        .text("sha256", sha256_hex(bytes))
        .text("size", bytes.len().to_string())
        .text("title", "VMware ESXi 6.7")
}

/// The single file of the newest set, as maascli and python-libmaas pick it.
fn newest_file(resource: &Value) -> &Value {
    let sets = resource["sets"].as_object().expect("sets");
    let newest = sets.keys().max().expect("a set");
    let files = sets[newest]["files"].as_object().expect("files");
    assert_eq!(files.len(), 1, "exactly one file: {resource}");
    files.values().next().expect("file")
}

impl TestRegion {
    /// `PUT <upload_uri>` with one chunk, as the CLI sends it.
    async fn put_chunk(
        &self,
        uri: &str,
        chunk: &[u8],
        credentials: &Credentials,
        content_length: Option<usize>,
    ) -> Reply {
        let request = Request::builder()
            .method("PUT")
            .uri(uri)
            .header("host", HOST)
            .header("content-type", "application/octet-stream")
            .header(
                "content-length",
                content_length.unwrap_or(chunk.len()).to_string(),
            )
            .header("authorization", self.authorization(credentials))
            .body(Body::from(chunk.to_vec()))
            .unwrap();
        self.raw(request).await
    }

    pub async fn anonymous_get(&self, path: &str) -> Reply {
        let request = Request::builder()
            .method("GET")
            .uri(path)
            .header("host", HOST)
            .body(Body::empty())
            .unwrap();
        self.raw(request).await
    }

    /// A synced resource with one complete set, written straight to the store.
    async fn synced(&self, name: &str, architecture: &str) -> (i64, i64) {
        let store = &self.region.store;
        let resource = store
            .create_boot_resource(
                NewBootResource {
                    rtype: BootResourceType::Synced,
                    name: name.into(),
                    architecture: architecture.into(),
                    kflavor: Some("generic".into()),
                    bootloader_type: None,
                    base_image: None,
                    extra: [("subarches".to_owned(), "generic,ga-22.04".to_owned())].into(),
                },
                1,
            )
            .await
            .unwrap();
        let set = store
            .create_boot_resource_set(resource.id, "20240301", "stable", 1)
            .await
            .unwrap();
        let file = store
            .add_boot_resource_file(
                set.id,
                NewBootResourceFile {
                    filename: "boot-kernel".into(),
                    filetype: "boot-kernel".into(),
                    sha256: "ab".repeat(32),
                    size: 10,
                    extra: Default::default(),
                    complete: true,
                },
            )
            .await
            .unwrap();
        (resource.id, file.id)
    }
}

#[tokio::test]
async fn two_step_upload_as_the_cli_does_it() {
    let t = TestRegion::new().await;
    let image = content(10_000, 7);
    let created = t
        .post("boot-resources/", announce("esxi/6.7", "ddgz", &image))
        .await;
    created.expect(201);
    assert_eq!(created.content_type(), "application/json; charset=utf-8");
    let resource = created.json();
    assert_eq!(resource["type"], "Uploaded");
    assert_eq!(resource["name"], "esxi/6.7");
    assert_eq!(resource["architecture"], "amd64/generic");
    assert_eq!(resource["title"], "VMware ESXi 6.7");
    assert_eq!(resource["last_deployed"], Value::Null);
    let id = resource["id"].as_i64().unwrap();
    assert_eq!(
        resource["resource_uri"],
        format!("/MAAS/api/2.0/boot-resources/{id}/")
    );
    let sets = resource["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1);
    let (version, set) = sets.iter().next().unwrap();
    assert_eq!(version.len(), 8, "YYYYMMDD: {version}");
    assert_eq!(set["label"], "uploaded");
    assert_eq!(set["complete"], false);
    assert_eq!(set["progress"], 0.0);
    assert_eq!(set["size"], 10_000);
    assert!(set.get("resource_uri").is_none());
    let file = newest_file(&resource);
    assert_eq!(file["filename"], "root-dd.gz");
    assert_eq!(file["filetype"], "root-dd.gz");
    assert_eq!(file["sha256"], sha256_hex(&image));
    assert_eq!(file["size"], 10_000);
    assert_eq!(file["complete"], false);
    assert_eq!(file["progress"], 0.0);
    let uri = file["upload_uri"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with(&format!("/MAAS/api/2.0/boot-resources/{id}/upload/")),
        "{uri}"
    );

    // Chunks in order, each answered 200 `OK`; progress shows in between.
    let admin = t.admin.clone();
    let first = t.put_chunk(&uri, &image[..4096], &admin, None).await;
    first.expect(200);
    assert_eq!(first.text(), "OK");
    let partway = t.get(&format!("boot-resources/{id}/"), p()).await;
    partway.expect(200);
    let partway = partway.json();
    assert_eq!(newest_file(&partway)["progress"], 40.96);
    assert_eq!(newest_file(&partway)["complete"], false);
    t.put_chunk(&uri, &image[4096..8192], &admin, None)
        .await
        .expect(200);
    t.put_chunk(&uri, &image[8192..], &admin, None)
        .await
        .expect(200);

    let done = t.get(&format!("boot-resources/{id}/"), p()).await.json();
    let file = newest_file(&done);
    assert_eq!(file["complete"], true);
    assert!(file.get("progress").is_none());
    assert!(file.get("upload_uri").is_none());
    assert_eq!(file["filename_on_disk"].as_str().unwrap().len(), 7);
    let set = done["sets"].as_object().unwrap().values().next().unwrap();
    assert_eq!(set["complete"], true);
    assert!(set.get("progress").is_none());

    // A complete file takes no more data.
    let again = t.put_chunk(&uri, b"more", &admin, None).await;
    again.expect(400);
    assert_eq!(again.text(), "Cannot upload to a complete file.");

    // Listed without sets.
    let list = t.get("boot-resources/", p()).await.json();
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("sets").is_none());
    assert_eq!(listed[0]["type"], "Uploaded");

    // Racks fetch it by hash (or a hash prefix) and see it in the manifest.
    let sha = sha256_hex(&image);
    let served = t
        .anonymous_get(&format!("/MAAS/boot-resources/{sha}/root-dd.gz"))
        .await;
    served.expect(200);
    assert_eq!(served.body, image);
    assert_eq!(served.content_type(), "application/octet-stream");
    let by_prefix = t
        .anonymous_get(&format!(
            "/MAAS/boot-resources/{}/esxi/root-dd.gz",
            &sha[..7]
        ))
        .await;
    by_prefix.expect(200);
    assert_eq!(by_prefix.body, image);
    let by_path = t
        .anonymous_get("/MAAS/boot-resources/esxi/amd64/generic/6.7/uploaded/root-dd.gz")
        .await;
    by_path.expect(200);
    assert_eq!(by_path.body, image);
    let manifest = t
        .anonymous_get("/MAAS/boot-resources/manifest.json")
        .await
        .json();
    assert_eq!(
        manifest["files"]["esxi/amd64/generic/6.7/uploaded/root-dd.gz"],
        serde_json::json!({"sha256": sha, "size": 10_000})
    );
    t.anonymous_get(&format!("/MAAS/boot-resources/{}/x", "0".repeat(64)))
        .await
        .expect(404);
    t.anonymous_get("/MAAS/boot-resources/nothing/here")
        .await
        .expect(404);
}

#[tokio::test]
async fn chunk_upload_errors() {
    let t = TestRegion::new().await;
    let admin = t.admin.clone();
    let image = content(1000, 3);
    let resource = t
        .post("boot-resources/", announce("esxi/7.0", "ddraw", &image))
        .await
        .json();
    let id = resource["id"].as_i64().unwrap();
    let uri = newest_file(&resource)["upload_uri"]
        .as_str()
        .unwrap()
        .to_owned();

    let empty = t.put_chunk(&uri, b"", &admin, None).await;
    empty.expect(400);
    assert_eq!(empty.text(), "Missing data.");
    let lying = t.put_chunk(&uri, &image[..100], &admin, Some(99)).await;
    lying.expect(400);
    assert_eq!(
        lying.text(),
        "Content-Length doesn't equal size of received data."
    );
    let too_much = t.put_chunk(&uri, &content(1001, 3), &admin, None).await;
    too_much.expect(400);
    assert_eq!(too_much.text(), "Too much data received.");

    // The last chunk is checked against the sha256; a mismatch drops what was sent.
    let mut wrong = image.clone();
    wrong[999] ^= 0xff;
    t.put_chunk(&uri, &wrong[..500], &admin, None)
        .await
        .expect(200);
    let bad = t.put_chunk(&uri, &wrong[500..], &admin, None).await;
    bad.expect(400);
    assert_eq!(
        bad.text(),
        "Saved content does not match given SHA256 value."
    );
    let after = t.get(&format!("boot-resources/{id}/"), p()).await.json();
    assert_eq!(newest_file(&after)["complete"], false);
    assert_eq!(newest_file(&after)["progress"], 0.0);
    // Sent again, correctly, it completes.
    t.put_chunk(&uri, &image, &admin, None).await.expect(200);

    // Only admins upload.
    let user = t.user("alice").await;
    let other = t
        .post(
            "boot-resources/",
            announce("esxi/8.0", "ddraw", &image[..10]),
        )
        .await
        .json();
    let other_uri = newest_file(&other)["upload_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    t.put_chunk(&other_uri, &image[..10], &user, None)
        .await
        .expect(403);

    // Unknown files, files of another resource, and synced resources.
    t.put_chunk(
        &format!("/MAAS/api/2.0/boot-resources/{id}/upload/99999/"),
        b"x",
        &admin,
        None,
    )
    .await
    .expect(404);
    let other_file = other_uri.rsplit('/').nth(1).unwrap();
    t.put_chunk(
        &format!("/MAAS/api/2.0/boot-resources/{id}/upload/{other_file}/"),
        b"x",
        &admin,
        None,
    )
    .await
    .expect(404);
    t.put_chunk(
        "/MAAS/api/2.0/boot-resources/424242/upload/1/",
        b"x",
        &admin,
        None,
    )
    .await
    .expect(404);
    let (synced, synced_file) = t.synced("ubuntu/jammy", "amd64/ga-22.04").await;
    let refused = t
        .put_chunk(
            &format!("/MAAS/api/2.0/boot-resources/{synced}/upload/{synced_file}/"),
            b"x",
            &admin,
            None,
        )
        .await;
    refused.expect(403);
    // Unsigned: 401.
    let anonymous = Request::builder()
        .method("PUT")
        .uri(&other_uri)
        .header("host", HOST)
        .header("content-type", "application/octet-stream")
        .body(Body::from(image[..10].to_vec()))
        .unwrap();
    assert_eq!(t.raw(anonymous).await.status.as_u16(), 401);
}

#[tokio::test]
async fn content_sent_whole_completes_at_once() {
    let t = TestRegion::new().await;
    let image = content(3000, 9);
    let created = t
        .post(
            "boot-resources/",
            p().text("architecture", "amd64/generic")
                .text("filetype", "ddgz")
                .text("name", "windows/win2016")
                .text("title", "Windows")
                .file("content", image.clone()),
        )
        .await;
    created.expect(201);
    let resource = created.json();
    let file = newest_file(&resource);
    assert_eq!(file["complete"], true);
    assert_eq!(file["sha256"], sha256_hex(&image));
    assert!(file.get("upload_uri").is_none());

    // The same name and architecture again: a second set, complete at once because the
    // region already holds identical content, so maascli uploads nothing.
    let again = t
        .post(
            "boot-resources/",
            announce("windows/win2016", "ddgz", &image),
        )
        .await;
    again.expect(201);
    let again = again.json();
    assert_eq!(again["id"], resource["id"]);
    let sets = again["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 2);
    let newest = sets.keys().max().unwrap();
    assert!(newest.ends_with(".1"), "{newest}");
    assert_eq!(newest_file(&again)["complete"], true);

    // Default filetype is tgz; custom names get the commissioning release as base image.
    let custom = t
        .post(
            "boot-resources/",
            p().text("architecture", "amd64/generic")
                .text("name", "my-image")
                .file("content", b"tarball".to_vec()),
        )
        .await;
    custom.expect(201);
    let custom = custom.json();
    assert_eq!(custom["name"], "my-image");
    assert_eq!(custom["base_image"], "ubuntu/noble");
    assert_eq!(newest_file(&custom)["filename"], "root.tgz");
    assert_eq!(newest_file(&custom)["filetype"], "root-tgz");
}

#[tokio::test]
async fn every_filetype_is_accepted() {
    let t = TestRegion::new().await;
    let expected = [
        ("tgz", "root-tgz", "root.tgz"),
        ("tbz", "root-tbz", "root.tbz"),
        ("txz", "root-txz", "root.txz"),
        ("ddtgz", "root-dd", "root-dd"),
        ("ddtbz", "root-dd.tar.bz2", "root-dd.tar.bz2"),
        ("ddtxz", "root-dd.tar.xz", "root-dd.tar.xz"),
        ("ddtar", "root-dd.tar", "root-dd.tar"),
        ("ddbz2", "root-dd.bz2", "root-dd.bz2"),
        ("ddgz", "root-dd.gz", "root-dd.gz"),
        ("ddxz", "root-dd.xz", "root-dd.xz"),
        ("ddraw", "root-dd.raw", "root-dd.raw"),
    ];
    for (index, (filetype, stored, filename)) in expected.into_iter().enumerate() {
        let bytes = content(50, index as u8);
        let reply = t
            .post(
                "boot-resources/",
                announce(&format!("rhel/{filetype}"), filetype, &bytes),
            )
            .await;
        reply.expect(201);
        let resource = reply.json();
        let file = newest_file(&resource);
        assert_eq!(file["filetype"], stored, "{filetype}");
        assert_eq!(file["filename"], filename, "{filetype}");
    }
}

#[tokio::test]
async fn create_is_validated_and_admin_only() {
    let t = TestRegion::new().await;
    let missing = t.post("boot-resources/", p().text("title", "x")).await;
    missing.expect(400);
    let errors = missing.json();
    assert_eq!(errors["name"][0], "This field is required.");
    assert_eq!(errors["architecture"][0], "This field is required.");
    assert_eq!(errors["sha256"][0], "This field is required.");
    assert_eq!(errors["size"][0], "This field is required.");

    let bytes = b"abc";
    let bad = |name: &str, architecture: &str, filetype: &str| {
        p().text("architecture", architecture)
            .text("filetype", filetype)
            .text("name", name)
            .text("sha256", sha256_hex(bytes))
            .text("size", "3")
    };
    let reply = t
        .post("boot-resources/", bad("esxi/6.7", "vax/generic", "ddgz"))
        .await;
    reply.expect(400);
    assert_eq!(
        reply.json()["architecture"][0],
        "Select a valid choice. vax/generic is not one of the available choices."
    );
    let reply = t
        .post("boot-resources/", bad("esxi/6.7", "amd64/generic", "iso"))
        .await;
    reply.expect(400);
    assert_eq!(
        reply.json()["filetype"][0],
        "Select a valid choice. iso is not one of the available choices."
    );
    let reply = t
        .post("boot-resources/", bad("esxi/6.7", "amd64/generic", "tgz"))
        .await;
    reply.expect(400);
    assert!(
        reply.json()["filetype"][0]
            .as_str()
            .unwrap()
            .contains("disk images")
    );
    for name in ["plan9/4", "ubuntu", "centos7", "a/b/c"] {
        let reply = t
            .post("boot-resources/", bad(name, "amd64/generic", "ddgz"))
            .await;
        reply.expect(400);
        assert!(reply.json().get("name").is_some(), "{name}");
    }
    let reply = t
        .post(
            "boot-resources/",
            bad("my-image", "amd64/generic", "tgz").text("base_image", "windows/x"),
        )
        .await;
    reply.expect(400);
    assert!(reply.json().get("base_image").is_some());
    let reply = t
        .post(
            "boot-resources/",
            bad("esxi/6.7", "amd64/generic", "ddgz").text("sha256", "xyz"),
        )
        .await;
    reply.expect(400);
    assert!(reply.json().get("sha256").is_some());
    // A synced resource's name is not for uploads.
    t.synced("ubuntu/jammy", "amd64/ga-22.04").await;
    t.post(
        "boot-resources/",
        bad("ubuntu/jammy", "amd64/generic", "tgz"),
    )
    .await
    .expect(400);

    let user = t.user("bob").await;
    let refused = t
        .call(
            "POST",
            "boot-resources/",
            bad("esxi/6.7", "amd64/generic", "ddgz"),
            Some(&user),
        )
        .await;
    refused.expect(403);
    assert!(
        t.get("boot-resources/", p())
            .await
            .json()
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    // Reading is for every user.
    t.call("GET", "boot-resources/", p(), Some(&user))
        .await
        .expect(200);
    t.call("GET", "boot-resources/", p(), None)
        .await
        .expect(401);
}

#[tokio::test]
async fn type_filter_read_and_delete() {
    let t = TestRegion::new().await;
    let (synced, _) = t.synced("ubuntu/jammy", "amd64/ga-22.04").await;
    let image = content(100, 1);
    let uploaded = t
        .post(
            "boot-resources/",
            p().text("architecture", "amd64/generic")
                .text("filetype", "ddgz")
                .text("name", "esxi/6.7")
                .file("content", image.clone()),
        )
        .await
        .json();
    let uploaded_id = uploaded["id"].as_i64().unwrap();
    let ids = |reply: Reply| -> Vec<i64> {
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(t.get("boot-resources/", p()).await),
        [synced, uploaded_id]
    );
    assert_eq!(
        ids(t.get("boot-resources/", p().text("type", "all")).await),
        [synced, uploaded_id]
    );
    assert_eq!(
        ids(t.get("boot-resources/", p().text("type", "synced")).await),
        [synced]
    );
    assert_eq!(
        ids(t.get("boot-resources/", p().text("type", "uploaded")).await),
        [uploaded_id]
    );
    let bad = t
        .get("boot-resources/", p().text("type", "generated"))
        .await;
    bad.expect(400);
    assert!(bad.text().contains("generated"));

    let jammy = t
        .get(&format!("boot-resources/{synced}/"), p())
        .await
        .json();
    assert_eq!(jammy["type"], "Synced");
    assert_eq!(jammy["subarches"], "generic,ga-22.04");
    assert_eq!(jammy["kflavor"], "generic");
    let set = &jammy["sets"]["20240301"];
    assert_eq!(set["label"], "stable");
    assert_eq!(set["complete"], true);
    // Synced files never offer an upload.
    assert!(set["files"]["boot-kernel"].get("upload_uri").is_none());

    t.get("boot-resources/424242/", p()).await.expect(404);
    let missing = t.get("boot-resources/nope/", p()).await;
    missing.expect(404);
    assert_eq!(missing.text(), "No BootResource matches the given query.");

    let user = t.user("carol").await;
    t.call(
        "DELETE",
        &format!("boot-resources/{uploaded_id}/"),
        p(),
        Some(&user),
    )
    .await
    .expect(403);
    let sha = sha256_hex(&image);
    t.anonymous_get(&format!("/MAAS/boot-resources/{sha}/f"))
        .await
        .expect(200);
    t.delete(&format!("boot-resources/{uploaded_id}/"), p())
        .await
        .expect(204);
    t.get(&format!("boot-resources/{uploaded_id}/"), p())
        .await
        .expect(404);
    // Its content went with it.
    t.anonymous_get(&format!("/MAAS/boot-resources/{sha}/f"))
        .await
        .expect(404);
    t.delete(&format!("boot-resources/{uploaded_id}/"), p())
        .await
        .expect(404);
}

#[tokio::test]
async fn boot_sources_crud() {
    let t = TestRegion::new().await;
    let keyring = vec![0x99u8, 0x01, 0x0d, 0xff, 0x00];
    let created = t
        .post(
            "boot-sources/",
            p().text("url", "http://mirror.example.com/ephemeral-v3/stable/")
                .file("keyring_data", keyring.clone()),
        )
        .await;
    created.expect(201);
    let source = created.json();
    let id = source["id"].as_i64().unwrap();
    assert_eq!(
        source["url"],
        "http://mirror.example.com/ephemeral-v3/stable/"
    );
    assert_eq!(source["keyring_filename"], "");
    assert_eq!(source["keyring_data"], "mQEN/wA=");
    assert_eq!(
        source["resource_uri"],
        format!("/MAAS/api/2.0/boot-sources/{id}/")
    );
    assert!(source["created"].as_str().unwrap().contains('T'));
    assert!(source["updated"].as_str().is_some());

    let listed = t.get("boot-sources/", p()).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        t.get(&format!("boot-sources/{id}/"), p()).await.json(),
        source
    );

    let missing_url = t
        .post("boot-sources/", p().text("keyring_filename", "/k.gpg"))
        .await;
    missing_url.expect(400);
    assert_eq!(missing_url.json()["url"][0], "This field is required.");
    let no_keyring = t
        .post(
            "boot-sources/",
            p().text("url", "http://other.example.com/"),
        )
        .await;
    no_keyring.expect(400);
    assert_eq!(
        no_keyring.json()["__all__"][0],
        "One of keyring_data or keyring_filename must be specified."
    );
    let duplicate = t
        .post(
            "boot-sources/",
            p().text("url", "http://mirror.example.com/ephemeral-v3/stable/")
                .text("keyring_filename", "/k.gpg"),
        )
        .await;
    duplicate.expect(400);
    assert_eq!(
        duplicate.json()["url"][0],
        "Boot source with this Url already exists."
    );
    t.post(
        "boot-sources/",
        p().text("url", "not a url")
            .text("keyring_filename", "/k.gpg"),
    )
    .await
    .expect(400);

    // A filename replaces the data, and the other way round.
    let updated = t
        .put(
            &format!("boot-sources/{id}/"),
            p().text("keyring_filename", "/usr/share/keyrings/test.gpg"),
        )
        .await;
    updated.expect(200);
    let updated = updated.json();
    assert_eq!(updated["keyring_filename"], "/usr/share/keyrings/test.gpg");
    assert_eq!(updated["keyring_data"], "");
    assert_eq!(updated["url"], source["url"]);
    let updated = t
        .put(
            &format!("boot-sources/{id}/"),
            p().text("url", "http://moved.example.com/"),
        )
        .await
        .json();
    assert_eq!(updated["url"], "http://moved.example.com/");
    assert_eq!(updated["keyring_filename"], "/usr/share/keyrings/test.gpg");

    // Admins only, the whole resource.
    let user = t.user("dave").await;
    let refused = t.call("GET", "boot-sources/", p(), Some(&user)).await;
    refused.expect(403);
    assert_eq!(refused.text(), "User is not allowed access to this API.");
    t.call("GET", &format!("boot-sources/{id}/"), p(), Some(&user))
        .await
        .expect(403);

    t.get("boot-sources/999/", p()).await.expect(404);
    let missing = t.get("boot-sources/x/", p()).await;
    missing.expect(404);
    assert_eq!(missing.text(), "No BootSource matches the given query.");
    t.delete(&format!("boot-sources/{id}/"), p())
        .await
        .expect(204);
    t.get(&format!("boot-sources/{id}/"), p()).await.expect(404);
    t.delete(&format!("boot-sources/{id}/"), p())
        .await
        .expect(404);
}

#[tokio::test]
async fn boot_source_selections_crud() {
    let t = TestRegion::new().await;
    let source = t
        .post(
            "boot-sources/",
            p().text("url", "http://mirror.example.com/")
                .text("keyring_filename", "/k.gpg"),
        )
        .await
        .json();
    let sid = source["id"].as_i64().unwrap();
    let base = format!("boot-sources/{sid}/selections/");
    let created = t
        .post(
            &base,
            p().text("os", "ubuntu")
                .text("release", "jammy")
                .text("arches", "amd64")
                .text("arches", "arm64"),
        )
        .await;
    created.expect(200);
    let selection = created.json();
    let id = selection["id"].as_i64().unwrap();
    assert_eq!(selection["boot_source_id"], sid);
    assert_eq!(selection["os"], "ubuntu");
    assert_eq!(selection["release"], "jammy");
    assert_eq!(selection["arches"], serde_json::json!(["amd64", "arm64"]));
    assert_eq!(selection["subarches"], serde_json::json!(["*"]));
    assert_eq!(selection["labels"], serde_json::json!(["*"]));
    assert_eq!(
        selection["resource_uri"],
        format!("/MAAS/api/2.0/boot-sources/{sid}/selections/{id}/")
    );
    assert_eq!(t.get(&base, p()).await.json().as_array().unwrap().len(), 1);
    assert_eq!(t.get(&format!("{base}{id}/"), p()).await.json(), selection);

    let duplicate = t
        .post(&base, p().text("os", "ubuntu").text("release", "jammy"))
        .await;
    duplicate.expect(400);
    assert_eq!(
        duplicate.json()["__all__"][0],
        "Boot source selection with this Boot source, Os and Release already exists."
    );
    let missing = t.post(&base, p().text("os", "ubuntu")).await;
    missing.expect(400);
    assert_eq!(missing.json()["release"][0], "This field is required.");
    let bad = t
        .post(
            &base,
            p().text("os", "ubuntu")
                .text("release", "noble")
                .text("labels", "no spaces"),
        )
        .await;
    bad.expect(400);
    assert!(bad.json().get("labels").is_some());

    let updated = t
        .put(
            &format!("{base}{id}/"),
            p().text("release", "noble").text("labels", "stable"),
        )
        .await;
    updated.expect(200);
    let updated = updated.json();
    assert_eq!(updated["release"], "noble");
    assert_eq!(updated["labels"], serde_json::json!(["stable"]));
    assert_eq!(updated["arches"], serde_json::json!(["amd64", "arm64"]));

    // Selections live under their own source only.
    let other = t
        .post(
            "boot-sources/",
            p().text("url", "http://other.example.com/")
                .text("keyring_filename", "/k.gpg"),
        )
        .await
        .json();
    let other_id = other["id"].as_i64().unwrap();
    t.get(&format!("boot-sources/{other_id}/selections/{id}/"), p())
        .await
        .expect(404);
    t.get("boot-sources/999/selections/", p()).await.expect(404);
    let none = t.get(&format!("{base}999/"), p()).await;
    none.expect(404);
    assert_eq!(
        none.text(),
        "No BootSourceSelection matches the given query."
    );
    let user = t.user("erin").await;
    t.call("GET", &base, p(), Some(&user)).await.expect(403);

    t.delete(&format!("{base}{id}/"), p()).await.expect(204);
    t.get(&format!("{base}{id}/"), p()).await.expect(404);
    // Deleting a source takes its selections.
    t.post(&base, p().text("os", "ubuntu").text("release", "jammy"))
        .await
        .expect(200);
    t.delete(&format!("boot-sources/{sid}/"), p())
        .await
        .expect(204);
    t.get(&base, p()).await.expect(404);
}

#[tokio::test]
async fn default_source_is_created_once() {
    let t = TestRegion::new().await;
    let store = t.region.store.as_ref();
    let default = maas_region::service::images::DefaultBootSource::default();
    assert!(
        maas_region::service::images::ensure_default_source(store, &default, 1)
            .await
            .unwrap()
    );
    assert!(
        !maas_region::service::images::ensure_default_source(store, &default, 2)
            .await
            .unwrap()
    );
    let sources = t.get("boot-sources/", p()).await.json();
    let sources = sources.as_array().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(
        sources[0]["url"],
        "http://images.maas.io/ephemeral-v3/stable/"
    );
    assert_eq!(
        sources[0]["keyring_filename"],
        "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg"
    );
    let id = sources[0]["id"].as_i64().unwrap();
    let selections = t
        .get(&format!("boot-sources/{id}/selections/"), p())
        .await
        .json();
    assert_eq!(
        selections,
        serde_json::json!([{
            "id": selections[0]["id"],
            "boot_source_id": id,
            "os": "ubuntu",
            "release": "noble",
            "arches": ["amd64"],
            "subarches": ["*"],
            "labels": ["*"],
            "resource_uri": format!("/MAAS/api/2.0/boot-sources/{id}/selections/{}/", selections[0]["id"]),
        }])
    );
}

/// Points the region at the test mirror: one source with its keyring, selecting
/// ubuntu/jammy and custom/tiny.
async fn use_mirror(t: &TestRegion, url: &str, keyring: Vec<u8>) -> i64 {
    let source = t
        .post(
            "boot-sources/",
            p().text("url", url).file("keyring_data", keyring),
        )
        .await;
    source.expect(201);
    let id = source.json()["id"].as_i64().unwrap();
    for (os, release) in [("ubuntu", "jammy"), ("custom", "tiny")] {
        t.post(
            &format!("boot-sources/{id}/selections/"),
            p().text("os", os).text("release", release),
        )
        .await
        .expect(200);
    }
    id
}

async fn wait_for_import(t: &TestRegion) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let importing = t
            .get("boot-resources/", p().op("is_importing"))
            .await
            .json();
        if importing == Value::Bool(false) {
            return;
        }
        assert!(Instant::now() < deadline, "the import did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_the_signed_mirror() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let t = TestRegion::new().await;
    assert_eq!(
        t.get("boot-resources/", p().op("is_importing"))
            .await
            .json(),
        Value::Bool(false)
    );
    use_mirror(&t, &server.url(), mirror.keyring()).await;

    let user = t.user("frank").await;
    t.call("POST", "boot-resources/", p().op("import"), Some(&user))
        .await
        .expect(403);
    let started = t.post("boot-resources/", p().op("import")).await;
    started.expect(200);
    assert_eq!(started.text(), "Import of boot resources started");
    assert!(started.content_type().starts_with("text/plain"));
    // Seen as importing from the moment the call returns.
    assert_eq!(
        t.get("boot-resources/", p().op("is_importing"))
            .await
            .json(),
        Value::Bool(true)
    );
    wait_for_import(&t).await;

    let list = t
        .get("boot-resources/", p().text("type", "synced"))
        .await
        .json();
    let mut names: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["architecture"].as_str().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("custom/tiny", "amd64/generic"),
            ("ubuntu/jammy", "amd64/ga-22.04")
        ],
        "{list}"
    );
    let jammy = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ubuntu/jammy")
        .unwrap();
    assert_eq!(jammy["type"], "Synced");
    assert_eq!(jammy["title"], "22.04 LTS");
    let detail = t
        .get(&format!("boot-resources/{}/", jammy["id"]), p())
        .await
        .json();
    let set = &detail["sets"]["20240301"];
    assert_eq!(set["complete"], true, "{detail}");
    assert_eq!(set["label"], "stable");
    let kernel = &set["files"]["boot-kernel"];
    assert_eq!(kernel["sha256"], mirror.value("KERNEL_SHA256"));
    assert_eq!(kernel["complete"], true);

    // The import told the event log, with no node.
    let events = t
        .get("events/", p().op("query").text("level", "DEBUG"))
        .await
        .json();
    let events = events["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"REGION_IMPORT_INFO"), "{types:?}");
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == "REGION_IMPORT_INFO")
            .all(|e| e["node"].is_null())
    );
    assert!(
        events.iter().any(|e| e["description"]
            .as_str()
            .unwrap()
            .starts_with("Imported ubuntu/jammy")),
        "{events:?}"
    );

    // Racks fetch the kernel by its hash; the manifest names it by boot path.
    let kernel_sha = mirror.value("KERNEL_SHA256");
    let served = t
        .anonymous_get(&format!("/MAAS/boot-resources/{kernel_sha}/boot-kernel"))
        .await;
    served.expect(200);
    assert_eq!(sha256_hex(&served.body), kernel_sha);
    let manifest = t
        .anonymous_get("/MAAS/boot-resources/manifest.json")
        .await
        .json();
    assert_eq!(
        manifest["files"]["ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel"]["sha256"],
        kernel_sha
    );

    // Deploy can use what was imported, and nothing else.
    let store = t.region.store.as_ref();
    let image =
        maas_region::service::images::check_deployable(store, "ubuntu", "jammy", "amd64/generic")
            .await
            .unwrap();
    assert_eq!(image.name, "ubuntu/jammy");
    assert_eq!(image.architecture, "amd64/ga-22.04");
    maas_region::service::images::mark_deployed(store, &image, 1_714_558_272_345)
        .await
        .unwrap();
    let detail = t
        .get(&format!("boot-resources/{}/", jammy["id"]), p())
        .await
        .json();
    assert_eq!(detail["last_deployed"], "2024-05-01T10:11:12.345");
    let noble =
        maas_region::service::images::check_deployable(store, "ubuntu", "noble", "amd64/generic")
            .await
            .unwrap_err();
    let noble = format!("{noble:?}");
    assert!(
        noble.contains("distro_series") && noble.contains("'ubuntu/jammy'"),
        "{noble}"
    );
    assert!(
        maas_region::service::images::check_deployable(store, "ubuntu", "jammy", "arm64/generic")
            .await
            .is_err()
    );

    // A second import downloads nothing and keeps what is there.
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);
    wait_for_import(&t).await;
    let after = t
        .get("boot-resources/", p().text("type", "synced"))
        .await
        .json();
    assert_eq!(after.as_array().unwrap().len(), 2);
    let stop = t.post("boot-resources/", p().op("stop_import")).await;
    stop.expect(200);
    assert_eq!(stop.text(), "Import of boot resources is being stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rack_image_cache_fetches_from_the_region() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let t = TestRegion::new().await;
    use_mirror(&t, &server.url(), mirror.keyring()).await;
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);
    wait_for_import(&t).await;

    // The region on a real port, as a rack reaches it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let region = t.region.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(maas_region::serve(region, listener, async move {
        let _ = stopped.await;
    }));

    let manifest = t.anonymous_get("/MAAS/boot-resources/manifest.json").await;
    manifest.expect(200);
    let manifest = maas_rack::image_cache::ImageManifest::from_json(&manifest.body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = maas_rack::image_cache::ImageCache::open(
        maas_rack::image_cache::ImageCacheConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 1 << 30,
        },
        std::sync::Arc::new(maas_rack::image_cache::RegionHttpSource::new(vec![
            address.to_string(),
        ])),
    )
    .await
    .unwrap();
    cache.set_manifest(manifest);
    let (path, size) = cache
        .resolve("ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel")
        .await
        .unwrap()
        .expect("the manifest names the kernel");
    assert_eq!(size.to_string(), mirror.value("KERNEL_SIZE"));
    assert_eq!(
        sha256_hex(&std::fs::read(&path).unwrap()),
        mirror.value("KERNEL_SHA256")
    );
    assert_eq!(cache.stats().fetches(), 1);
    // Again: from the cache.
    cache
        .resolve("ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel")
        .await
        .unwrap();
    assert_eq!(cache.stats().fetches(), 1);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn describe_lists_the_boot_handlers() {
    let t = TestRegion::new().await;
    let describe = t.anonymous_get("/MAAS/api/2.0/describe/").await.json();
    let handlers: Vec<(String, String)> = describe["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let auth = &r["auth"];
            Some((
                auth["name"].as_str()?.to_owned(),
                auth["path"].as_str()?.to_owned(),
            ))
        })
        .filter(|(name, _)| name.starts_with("Boot"))
        .collect();
    for (name, path) in [
        ("BootResourcesHandler", "/MAAS/api/2.0/boot-resources/"),
        ("BootResourceHandler", "/MAAS/api/2.0/boot-resources/{id}/"),
        ("BootSourcesHandler", "/MAAS/api/2.0/boot-sources/"),
        ("BootSourceHandler", "/MAAS/api/2.0/boot-sources/{id}/"),
        (
            "BootSourceSelectionsHandler",
            "/MAAS/api/2.0/boot-sources/{boot_source_id}/selections/",
        ),
        (
            "BootSourceSelectionHandler",
            "/MAAS/api/2.0/boot-sources/{boot_source_id}/selections/{id}/",
        ),
    ] {
        assert!(
            handlers.contains(&(name.to_owned(), path.to_owned())),
            "{name} at {path}: {handlers:?}"
        );
    }
    // The chunk upload route is served but not advertised.
    assert!(!handlers.iter().any(|(_, path)| path.contains("upload")));
    let create = describe["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["auth"]["name"] == "BootResourcesHandler")
        .unwrap()["auth"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "create")
        .unwrap()["doc"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(create.contains(":param name:") && create.contains(":param content:"));
}

const KERNEL: &str = "jammy/amd64/20240301/ga-22.04/generic/boot-kernel";
const V2_INITRD: &str = "jammy/amd64/20240315/ga-22.04/generic/boot-initrd";

async fn jammy_detail(t: &TestRegion) -> Option<Value> {
    let list = t
        .get("boot-resources/", p().text("type", "synced"))
        .await
        .json();
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ubuntu/jammy")?["id"]
        .clone();
    Some(t.get(&format!("boot-resources/{id}/"), p()).await.json())
}

/// Polls the jammy resource until `ready` holds for it.
async fn wait_for_jammy(t: &TestRegion, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(detail) = jammy_detail(t).await
            && ready(&detail)
        {
            return detail;
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_stop_and_resume() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    server.set_faults(vec![crate::mirror::Fault::Throttle {
        suffix: KERNEL.into(),
        per_10ms: 64 * 1024,
    }]);
    let t = TestRegion::new().await;
    use_mirror(&t, &server.url(), mirror.keyring()).await;
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);

    // While the kernel downloads, the resource shows its set, incomplete, with progress.
    let detail = wait_for_jammy(&t, "the kernel's progress", |detail| {
        detail["sets"]["20240301"]["files"]["boot-kernel"]["progress"]
            .as_f64()
            .is_some_and(|p| p > 0.0)
    })
    .await;
    let set = &detail["sets"]["20240301"];
    assert_eq!(set["complete"], false);
    let set_progress = set["progress"].as_f64().unwrap();
    assert!(set_progress > 0.0 && set_progress < 100.0, "{set}");
    assert_eq!(set["files"]["boot-kernel"]["complete"], false);
    assert!(set["files"]["boot-kernel"].get("upload_uri").is_none());

    let stop = t.post("boot-resources/", p().op("stop_import")).await;
    stop.expect(200);
    wait_for_import(&t).await;
    let detail = jammy_detail(&t).await.unwrap();
    assert_eq!(detail["sets"]["20240301"]["complete"], false);

    // The next import picks the kernel up where it stopped.
    server.set_faults(Vec::new());
    server.take_seen();
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);
    wait_for_import(&t).await;
    let detail = jammy_detail(&t).await.unwrap();
    assert_eq!(detail["sets"]["20240301"]["complete"], true, "{detail}");
    let resumed = server
        .take_seen()
        .into_iter()
        .any(|seen| seen.path == KERNEL && seen.range.is_some());
    assert!(resumed, "the kernel download resumed with a Range request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_complete_set_stays_until_a_newer_one_is_complete() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let t = TestRegion::new().await;
    use_mirror(&t, &server.url(), mirror.keyring()).await;
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);
    wait_for_import(&t).await;

    // The mirror publishes 20240315 with a new initrd, which arrives slowly.
    server.set_root(&mirror.next());
    server.set_faults(vec![crate::mirror::Fault::Throttle {
        suffix: V2_INITRD.into(),
        per_10ms: 8 * 1024,
    }]);
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);
    let during = wait_for_jammy(&t, "the new set", |detail| {
        detail["sets"]
            .as_object()
            .is_some_and(|sets| sets.len() == 2)
    })
    .await;
    assert_eq!(during["sets"]["20240301"]["complete"], true, "{during}");
    // The new set was recorded before its downloads began; 1.3 MB at 800 kB/s is not done.
    assert_eq!(during["sets"]["20240315"]["complete"], false, "{during}");
    // Meanwhile racks are still told about the complete set.
    let manifest = t
        .anonymous_get("/MAAS/boot-resources/manifest.json")
        .await
        .json();
    assert_eq!(
        manifest["files"]["ubuntu/amd64/ga-22.04/jammy/stable/boot-initrd"]["sha256"],
        mirror.value("INITRD1_SHA256")
    );
    wait_for_import(&t).await;
    let after = jammy_detail(&t).await.unwrap();
    let sets = after["sets"].as_object().unwrap();
    assert_eq!(sets.keys().collect::<Vec<_>>(), ["20240315"], "{after}");
    assert_eq!(sets["20240315"]["complete"], true);
    assert_eq!(
        sets["20240315"]["files"]["boot-initrd"]["sha256"],
        mirror.value("INITRD2_SHA256")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_is_named_in_an_error_event() {
    let Some(mirror) = mirror() else { return };
    let empty = tempfile::tempdir().unwrap();
    let server = MirrorServer::start(empty.path()).await;
    let t = TestRegion::new().await;
    use_mirror(&t, &server.url(), mirror.keyring()).await;
    t.post("boot-resources/", p().op("import"))
        .await
        .expect(200);
    wait_for_import(&t).await;
    let events = t
        .get("events/", p().op("query").text("level", "ERROR"))
        .await
        .json();
    let errors: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "REGION_IMPORT_ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{events}");
    assert_eq!(errors[0]["level"], "ERROR");
    assert!(errors[0]["node"].is_null());
    let description = errors[0]["description"].as_str().unwrap();
    assert!(description.contains(&server.url()), "{description}");
    assert!(
        t.get("boot-resources/", p())
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deploy_check_for_custom_images_needs_the_commissioning_image() {
    use maas_region::ServiceError;
    use maas_region::service::images::check_deployable;
    let t = TestRegion::new().await;
    let store = t.region.store.as_ref();
    t.post(
        "boot-resources/",
        p().text("architecture", "amd64/generic")
            .text("name", "my-image")
            .file("content", b"root tarball".to_vec()),
    )
    .await
    .expect(201);
    // Without ubuntu/noble (the commissioning release) nothing installs it.
    let refused = check_deployable(store, "custom", "my-image", "amd64/generic")
        .await
        .unwrap_err();
    let ServiceError::Validation(fields) = refused else {
        panic!("a form error: {refused:?}")
    };
    assert!(
        fields["distro_series"][0].contains("ubuntu/noble"),
        "{fields:?}"
    );

    t.synced("ubuntu/noble", "amd64/ga-24.04").await;
    let image = check_deployable(store, "custom", "my-image", "amd64/generic")
        .await
        .unwrap();
    assert_eq!(image.name, "my-image");
    check_deployable(store, "ubuntu", "noble", "amd64")
        .await
        .unwrap();
    // The synced fixture lists generic and ga-22.04 among its subarches.
    check_deployable(store, "ubuntu", "noble", "amd64/ga-22.04")
        .await
        .unwrap();
    let ServiceError::Validation(fields) =
        check_deployable(store, "ubuntu", "noble", "amd64/xgene-uboot")
            .await
            .unwrap_err()
    else {
        panic!("a form error")
    };
    assert!(fields.contains_key("distro_series"));
    let ServiceError::Validation(fields) = check_deployable(store, "centos", "centos70", "amd64")
        .await
        .unwrap_err()
    else {
        panic!("a form error")
    };
    assert_eq!(
        fields["distro_series"][0],
        "'centos/centos70' is not a valid distro_series.  It should be one of: 'custom/my-image', 'ubuntu/noble'."
    );
}
