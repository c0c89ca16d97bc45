//! The real importer against the signed test mirror over loopback HTTP.

use std::time::Duration;

use maas_images::{
    BootResourceCatalog, ImportError, ImportEvent, Keyring, ResourceDetail, ResourceType,
    boot_files,
};

use crate::support::{Fault, Fixture, MirrorServer, copy_tree, mirror, source};

const KERNEL: &str = "jammy/amd64/20240301/ga-22.04/generic/boot-kernel";
const V2_INITRD: &str = "jammy/amd64/20240315/ga-22.04/generic/boot-initrd";

async fn jammy(fixture: &Fixture) -> ResourceDetail {
    let resource = fixture
        .catalog
        .find_resource(ResourceType::Synced, "ubuntu/jammy", "amd64/ga-22.04")
        .await
        .expect("catalog")
        .expect("ubuntu/jammy imported");
    ResourceDetail::load(fixture.catalog.as_ref(), resource)
        .await
        .expect("detail")
}

fn file_requests(seen: &[crate::support::Seen]) -> Vec<&crate::support::Seen> {
    seen.iter()
        .filter(|s| !s.path.starts_with("streams/"))
        .collect()
}

#[tokio::test]
async fn signed_mirror_imports_and_a_second_import_downloads_nothing() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let fixture = Fixture::new().await;
    let importer = fixture.importer();
    let sources = [source(1, server.url(), Keyring::Data(mirror.keyring()))];

    let report = importer.import(&sources).await.expect("import");
    assert!(report.failed_sources.is_empty(), "{report:?}");
    assert!(report.failed_files.is_empty(), "{report:?}");
    // Kernel, initrd, squashfs and the dd image; the manifest is not fetched.
    assert_eq!(report.downloaded_files, 4, "{report:?}");
    assert_eq!(
        report.complete,
        [
            (
                "custom/tiny".into(),
                "amd64/generic".into(),
                "20240301".into()
            ),
            (
                "ubuntu/jammy".into(),
                "amd64/ga-22.04".into(),
                "20240301".into()
            ),
        ]
    );
    assert!(
        fixture
            .store
            .has(
                &mirror.sha("KERNEL_SHA256"),
                mirror.value("KERNEL_SIZE").parse().expect("size")
            )
            .await
    );
    let detail = jammy(&fixture).await;
    assert_eq!(detail.resource.extra["title"], "22.04 LTS");
    let current = detail.current().expect("a complete set");
    assert_eq!(current.set.version, "20240301");
    assert_eq!(current.set.label, "stable");
    let files: Vec<&str> = current.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(files, ["boot-kernel", "boot-initrd", "squashfs"]);
    assert_eq!(current.files[0].extra["kpackage"], "linux-generic");

    // What racks are told to serve.
    let manifest = boot_files(fixture.catalog.as_ref())
        .await
        .expect("manifest");
    let kernel = manifest
        .iter()
        .find(|entry| entry.path == "ubuntu/amd64/ga-22.04/jammy/stable/boot-kernel")
        .expect("kernel in manifest");
    assert_eq!(kernel.sha256, mirror.sha("KERNEL_SHA256"));
    assert!(
        manifest
            .iter()
            .any(|entry| entry.path == "custom/amd64/generic/tiny/stable/root-dd.gz")
    );
    let first = server.take_seen();
    assert_eq!(file_requests(&first).len(), 4, "{first:?}");
    assert!(!importer.is_importing());

    let again = importer.import(&sources).await.expect("second import");
    assert_eq!(again.downloaded_files, 0, "{again:?}");
    assert_eq!(again.complete.len(), 2);
    let second = server.take_seen();
    assert!(
        file_requests(&second).is_empty(),
        "second import fetched files: {second:?}"
    );
    let events = fixture.events.take();
    assert!(events.iter().all(|event| !event.is_error()), "{events:?}");
    assert!(events.iter().any(|event| matches!(
        event,
        ImportEvent::Planned {
            files_to_download: 0,
            ..
        }
    )));
}

#[tokio::test]
async fn json_index_is_verified_with_its_detached_signature() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let fixture = Fixture::new().await;
    let url = format!("{}streams/v1/index.json", server.url());
    let report = fixture
        .importer()
        .import(&[source(1, url, Keyring::Data(mirror.keyring()))])
        .await
        .expect("import");
    assert!(report.failed_sources.is_empty(), "{report:?}");
    assert_eq!(report.complete.len(), 2);
    let seen = server.take_seen();
    assert!(seen.iter().any(|s| s.path == "streams/v1/index.json.gpg"));
    assert!(
        seen.iter()
            .any(|s| s.path == "streams/v1/com.ubuntu.maas:stable:v3:download.json.gpg")
    );
}

#[tokio::test]
async fn a_bad_or_foreign_signature_is_refused_and_nothing_is_imported() {
    let Some(mirror) = mirror() else { return };
    let tampered = tempfile::tempdir().expect("tempdir");
    copy_tree(&mirror.v1(), tampered.path());
    let index = tampered.path().join("streams/v1/index.sjson");
    let text = std::fs::read_to_string(&index).expect("index");
    std::fs::write(&index, text.replace("Fri, 01 Mar 2024", "Sat, 02 Mar 2024")).expect("write");
    let server = MirrorServer::start(tampered.path()).await;

    for (keyring, expected) in [
        (mirror.keyring(), "signature does not match"),
        (mirror.other_keyring(), "no key in the keyring"),
    ] {
        let fixture = Fixture::new().await;
        let report = fixture
            .importer()
            .import(&[source(4, server.url(), Keyring::Data(keyring))])
            .await
            .expect("import");
        assert_eq!(report.failed_sources, [4]);
        assert_eq!(report.downloaded_files, 0);
        let events = fixture.events.take();
        let failure = events
            .iter()
            .find_map(|event| match event {
                ImportEvent::SourceFailed { error, .. } => Some(error.clone()),
                _ => None,
            })
            .expect("a SourceFailed event");
        assert!(failure.contains(expected), "{failure}");
        // A signature problem is not retried.
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ImportEvent::SourceRetrying { .. }))
        );
        assert!(
            fixture
                .catalog
                .resources()
                .await
                .expect("catalog")
                .is_empty()
        );
    }
    // The same documents pass with verification skipped, as the source asks.
    let fixture = Fixture::new().await;
    let report = fixture
        .importer()
        .import(&[source(5, server.url(), Keyring::SkipVerification)])
        .await
        .expect("import");
    assert!(report.failed_sources.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_file_with_the_wrong_sha256_is_refused_and_reported() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    server.set_faults(vec![Fault::Corrupt {
        suffix: KERNEL.into(),
    }]);
    let fixture = Fixture::new().await;
    let report = fixture
        .importer()
        .import(&[source(1, server.url(), Keyring::Data(mirror.keyring()))])
        .await
        .expect("import");
    let kernel = mirror.sha("KERNEL_SHA256");
    assert_eq!(report.failed_files, std::slice::from_ref(&kernel));
    assert!(fixture.store.stored_size(&kernel).await.is_none());
    assert_eq!(fixture.store.partial_len(&kernel).await, 0);
    let detail = jammy(&fixture).await;
    assert!(
        detail.current().is_none(),
        "an incomplete set is not current"
    );
    assert_eq!(
        report.incomplete,
        [(
            "ubuntu/jammy".into(),
            "amd64/ga-22.04".into(),
            "20240301".into()
        )]
    );
    let events = fixture.events.take();
    let error = events
        .iter()
        .find_map(|event| match event {
            ImportEvent::DownloadFailed { sha256, error, .. } if *sha256 == kernel => {
                Some(error.clone())
            }
            _ => None,
        })
        .expect("DownloadFailed for the kernel");
    assert!(error.contains("hashes to"), "{error}");
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_a_range_request() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let cut = 3 * 1024 * 1024;
    server.set_faults(vec![Fault::DropAfter {
        suffix: KERNEL.into(),
        bytes: cut,
        times: 1,
    }]);
    let fixture = Fixture::new().await;
    let report = fixture
        .importer()
        .import(&[source(1, server.url(), Keyring::Data(mirror.keyring()))])
        .await
        .expect("import");
    assert!(report.failed_files.is_empty(), "{report:?}");
    let size: usize = mirror.value("KERNEL_SIZE").parse().expect("size");
    let kernel_requests: Vec<_> = server
        .take_seen()
        .into_iter()
        .filter(|s| s.path == KERNEL)
        .collect();
    assert_eq!(kernel_requests.len(), 2, "{kernel_requests:?}");
    assert_eq!(kernel_requests[0].range, None);
    assert_eq!(kernel_requests[0].body_bytes, cut);
    assert_eq!(
        kernel_requests[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(kernel_requests[1].status, 206);
    assert_eq!(kernel_requests[1].body_bytes, size - cut);
    assert!(
        fixture
            .store
            .has(&mirror.sha("KERNEL_SHA256"), size as u64)
            .await
    );
}

#[tokio::test]
async fn the_last_complete_set_stays_until_the_new_one_is_complete() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    let fixture = Fixture::new().await;
    let importer = fixture.importer();
    let sources = [source(1, server.url(), Keyring::Data(mirror.keyring()))];
    importer.import(&sources).await.expect("first import");
    server.take_seen();

    // The stream gains 20240315, but its initrd cannot be fetched yet.
    server.set_root(&mirror.next());
    server.set_faults(vec![Fault::Status {
        suffix: V2_INITRD.into(),
        status: 503,
    }]);
    let report = importer.import(&sources).await.expect("second import");
    assert_eq!(report.failed_files, [mirror.sha("INITRD2_SHA256")]);
    let detail = jammy(&fixture).await;
    let versions: Vec<&str> = detail.sets.iter().map(|s| s.set.version.as_str()).collect();
    assert_eq!(versions, ["20240315", "20240301"]);
    assert!(!detail.sets[0].complete());
    assert_eq!(
        detail.current().expect("old set still current").set.version,
        "20240301"
    );
    // The new kernel is the same file as the old one: not fetched again.
    let seen = server.take_seen();
    assert!(
        !seen.iter().any(|s| s.path.ends_with("boot-kernel")),
        "{seen:?}"
    );
    assert!(
        fixture
            .store
            .has(
                &mirror.sha("INITRD1_SHA256"),
                std::fs::metadata(
                    mirror
                        .v1()
                        .join("jammy/amd64/20240301/ga-22.04/generic/boot-initrd")
                )
                .expect("initrd")
                .len()
            )
            .await
    );

    server.set_faults(Vec::new());
    let report = importer.import(&sources).await.expect("third import");
    assert!(report.failed_files.is_empty(), "{report:?}");
    assert_eq!(
        report.downloaded_files, 1,
        "only the new initrd: {report:?}"
    );
    let detail = jammy(&fixture).await;
    let versions: Vec<&str> = detail.sets.iter().map(|s| s.set.version.as_str()).collect();
    assert_eq!(versions, ["20240315"]);
    // The old initrd and squashfs are no longer referenced: removed from the store.
    assert!(
        fixture
            .store
            .stored_size(&mirror.sha("INITRD1_SHA256"))
            .await
            .is_none()
    );
    assert!(
        fixture
            .store
            .stored_size(&mirror.sha("SQUASHFS1_SHA256"))
            .await
            .is_none()
    );
    assert!(fixture.events.take().iter().any(
        |e| matches!(e, ImportEvent::ResourceImported { version, .. } if version == "20240315")
    ));
}

#[tokio::test]
async fn a_failing_source_is_retried_named_and_leaves_the_others_alone() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/", dead.local_addr().expect("address"));
    drop(dead);
    let fixture = Fixture::new().await;
    let importer = fixture.importer();
    let mut good = source(1, server.url(), Keyring::Data(mirror.keyring()));
    good.priority = 1;
    let bad = source(2, dead_url.clone(), Keyring::Data(mirror.keyring()));
    let report = importer
        .import(&[bad.clone(), good.clone()])
        .await
        .expect("import");
    assert_eq!(report.failed_sources, [2]);
    assert_eq!(report.complete.len(), 2, "{report:?}");
    let events = fixture.events.take();
    let retries = events
        .iter()
        .filter(|e| matches!(e, ImportEvent::SourceRetrying { source_id: 2, .. }))
        .count();
    assert_eq!(retries, 2, "3 attempts in all: {events:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        ImportEvent::SourceFailed { source_id: 2, url, .. } if *url == dead_url
    )));

    // While a source is failing, nothing is removed for lack of it.
    let only_bad = importer.import(&[bad]).await.expect("import");
    assert_eq!(only_bad.failed_sources, [2]);
    assert!(only_bad.removed_resources.is_empty());
    assert_eq!(fixture.catalog.resources().await.expect("catalog").len(), 2);

    // A selection dropped from a healthy source removes its resource.
    good.selections.truncate(1);
    let narrowed = importer.import(&[good]).await.expect("import");
    assert_eq!(
        narrowed.removed_resources,
        [("custom/tiny".to_owned(), "amd64/generic".to_owned())]
    );
    assert!(
        fixture
            .store
            .stored_size(&mirror.sha("DDGZ_SHA256"))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn stop_import_keeps_the_partial_download_for_the_next_import() {
    let Some(mirror) = mirror() else { return };
    let server = MirrorServer::start(&mirror.v1()).await;
    server.set_faults(vec![Fault::Throttle {
        suffix: KERNEL.into(),
        per_10ms: 64 * 1024,
    }]);
    let fixture = Fixture::new().await;
    let importer = std::sync::Arc::new(fixture.importer());
    let sources = vec![source(1, server.url(), Keyring::Data(mirror.keyring()))];
    let kernel = mirror.sha("KERNEL_SHA256");

    let running = {
        let importer = std::sync::Arc::clone(&importer);
        let sources = sources.clone();
        tokio::spawn(async move { importer.import(&sources).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let progress = importer.progress();
        if progress.files.get(&kernel).is_some_and(|p| p.done > 0) {
            assert!(progress.importing);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kernel never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(importer.is_importing());
    assert!(matches!(
        importer.import(&sources).await,
        Err(ImportError::AlreadyImporting)
    ));
    importer.stop();
    let report = running.await.expect("join").expect("import");
    assert!(report.stopped, "{report:?}");
    assert!(!importer.is_importing());
    let held = fixture.store.partial_len(&kernel).await;
    assert!(held > 0, "the partial kernel is kept");
    assert!(
        fixture
            .events
            .take()
            .iter()
            .any(|e| matches!(e, ImportEvent::Stopped))
    );

    server.set_faults(Vec::new());
    server.take_seen();
    let report = importer.import(&sources).await.expect("resumed import");
    assert!(report.failed_files.is_empty(), "{report:?}");
    // The throttled first transfer may log itself late (when its writes fail): look at the
    // requests that asked for a range.
    let ranges: Vec<Option<String>> = server
        .take_seen()
        .into_iter()
        .filter(|s| s.path == KERNEL && s.range.is_some())
        .map(|s| s.range)
        .collect();
    assert_eq!(ranges, [Some(format!("bytes={held}-"))]);
    assert_eq!(
        jammy(&fixture)
            .await
            .current()
            .expect("complete")
            .set
            .version,
        "20240301"
    );
}
