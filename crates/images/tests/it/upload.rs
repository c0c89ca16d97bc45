//! Custom uploads: the chunked flow the CLI and python-libmaas use, with a real ddgz.

use std::sync::Arc;

use maas_images::{
    BootResourceCatalog, NewUpload, ResourceType, UploadDescription, UploadError, UploadFileType,
    Uploads,
};
use maas_simplestreams::Sha256;

use crate::support::{Fixture, mirror};

fn upload_of(sha256: Sha256, size: u64) -> NewUpload {
    NewUpload {
        description: UploadDescription {
            name: "esxi/6.7".into(),
            architecture: "amd64/generic".into(),
            title: Some("VMware ESXi 6.7".into()),
            filetype: UploadFileType::Ddgz,
            base_image: None,
        },
        sha256,
        size,
    }
}

#[tokio::test]
async fn a_ddgz_uploads_in_chunks_and_is_checked_at_the_end() {
    let Some(mirror) = mirror() else { return };
    let content = std::fs::read(mirror.dir.join("uploads/tiny.dd.gz")).expect("tiny.dd.gz");
    let sha256 = mirror.sha("DDGZ_SHA256");
    let fixture = Fixture::new().await;
    let uploads = Uploads::new(fixture.store.clone(), fixture.catalog.clone());

    let detail = uploads
        .create(upload_of(sha256.clone(), content.len() as u64), "20240401")
        .await
        .expect("create");
    assert_eq!(detail.resource.rtype, ResourceType::Uploaded);
    assert_eq!(detail.resource.extra["title"], "VMware ESXi 6.7");
    assert_eq!(detail.sets.len(), 1);
    assert_eq!(detail.sets[0].set.version, "20240401");
    assert_eq!(detail.sets[0].set.label, "uploaded");
    let file = detail.sets[0].files[0].clone();
    assert_eq!(file.filename, "root-dd.gz");
    assert_eq!(file.filetype.as_str(), "root-dd.gz");
    assert!(!file.complete);

    assert!(matches!(
        uploads.append(file.id, b"").await,
        Err(UploadError::MissingData)
    ));
    let chunks: Vec<&[u8]> = content.chunks(1000).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let progress = uploads.append(file.id, chunk).await.expect("chunk");
        assert_eq!(progress.complete, index == chunks.len() - 1);
        assert_eq!(
            uploads.received(file.id).await.expect("received"),
            if progress.complete {
                0
            } else {
                progress.received
            }
        );
    }
    assert!(fixture.store.has(&sha256, content.len() as u64).await);
    let stored = fixture
        .catalog
        .file(file.id)
        .await
        .expect("catalog")
        .expect("file");
    assert!(stored.complete);
    let error = uploads.append(file.id, b"x").await.expect_err("complete");
    assert!(matches!(error, UploadError::AlreadyComplete { .. }));
    assert_eq!(error.status(), 400);
    assert_eq!(error.maas_message(), "Cannot upload to a complete file.");

    // The same content again: a new set whose file is complete at once.
    let again = uploads
        .create(upload_of(sha256, content.len() as u64), "20240401")
        .await
        .expect("create again");
    let versions: Vec<&str> = again.sets.iter().map(|s| s.set.version.as_str()).collect();
    assert_eq!(versions, ["20240401.1", "20240401"]);
    assert!(again.sets[0].complete());
}

#[tokio::test]
async fn a_wrong_sha256_or_excess_data_is_refused() {
    let Some(mirror) = mirror() else { return };
    let content = std::fs::read(mirror.dir.join("uploads/tiny.dd.gz")).expect("tiny.dd.gz");
    let fixture = Fixture::new().await;
    let uploads = Uploads::new(fixture.store.clone(), fixture.catalog.clone());
    let wrong = Sha256::parse(&"0".repeat(64)).expect("sha");
    let detail = uploads
        .create(upload_of(wrong.clone(), content.len() as u64), "20240401")
        .await
        .expect("create");
    let file_id = detail.sets[0].files[0].id;
    let error = uploads
        .append(file_id, &content)
        .await
        .expect_err("mismatch");
    assert!(
        matches!(error, UploadError::Sha256Mismatch { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.maas_message(),
        "Saved content does not match given SHA256 value."
    );
    assert!(fixture.store.stored_size(&wrong).await.is_none());

    let detail = uploads
        .create(upload_of(mirror.sha("DDGZ_SHA256"), 10), "20240402")
        .await
        .expect("create");
    let file_id = detail.sets[0].files[0].id;
    let error = uploads
        .append(file_id, &content)
        .await
        .expect_err("too much");
    assert!(matches!(error, UploadError::TooMuchData { size: 10 }));
    assert_eq!(error.maas_message(), "Too much data received.");
}

#[tokio::test]
async fn uploads_to_synced_resources_are_forbidden_and_content_posts_whole() {
    let fixture = Fixture::new().await;
    let catalog: Arc<dyn BootResourceCatalog> = fixture.catalog.clone();
    let uploads = Uploads::new(fixture.store.clone(), Arc::clone(&catalog));
    let synced = catalog
        .create_resource(maas_images::NewBootResource {
            rtype: ResourceType::Synced,
            name: "ubuntu/jammy".into(),
            architecture: "amd64/ga-22.04".into(),
            kflavor: None,
            bootloader_type: None,
            base_image: None,
            extra: Default::default(),
        })
        .await
        .expect("resource");
    let set = catalog
        .create_set(synced.id, "20240301", "stable")
        .await
        .expect("set");
    let file = catalog
        .add_file(
            set.id,
            maas_images::NewBootResourceFile {
                filename: "boot-kernel".into(),
                filetype: maas_simplestreams::FileType::BootKernel,
                sha256: Sha256::parse(&"a".repeat(64)).expect("sha"),
                size: 3,
                extra: Default::default(),
                complete: false,
            },
        )
        .await
        .expect("file");
    let error = uploads.append(file.id, b"abc").await.expect_err("synced");
    assert_eq!(error.status(), 403);
    assert!(matches!(
        uploads.append(9999, b"abc").await,
        Err(UploadError::NoSuchFile { .. })
    ));

    let detail = uploads
        .create_with_content(
            UploadDescription {
                name: "my-image".into(),
                architecture: "amd64/generic".into(),
                title: None,
                filetype: UploadFileType::Tgz,
                base_image: Some("ubuntu/jammy".into()),
            },
            &b"not really a tarball"[..],
            "20240403",
        )
        .await
        .expect("create with content");
    assert_eq!(detail.resource.base_image.as_deref(), Some("ubuntu/jammy"));
    assert!(detail.sets[0].complete());
    assert_eq!(detail.sets[0].files[0].filename, "root.tgz");
}
