//! Conformance cases for the boot image tables (`BootResourceStore`).

use std::collections::BTreeMap;
use std::sync::Arc;

use maas_store::*;

fn sha(fill: char) -> String {
    std::iter::repeat_n(fill, 64).collect()
}

fn resource(rtype: BootResourceType, name: &str, architecture: &str) -> NewBootResource {
    NewBootResource {
        rtype,
        name: name.to_owned(),
        architecture: architecture.to_owned(),
        kflavor: None,
        bootloader_type: None,
        base_image: None,
        extra: BTreeMap::new(),
    }
}

fn file(filename: &str, sha256: &str, size: i64, complete: bool) -> NewBootResourceFile {
    NewBootResourceFile {
        filename: filename.to_owned(),
        filetype: filename.to_owned(),
        sha256: sha256.to_owned(),
        size,
        extra: [("kpackage".to_owned(), "linux-generic".to_owned())].into(),
        complete,
    }
}

pub async fn boot_resources_sets_and_files(store: Arc<dyn Store>) {
    assert!(store.boot_resources().await.unwrap().is_empty());
    let mut new = resource(BootResourceType::Synced, "ubuntu/jammy", "amd64/ga-22.04");
    new.kflavor = Some("generic".into());
    new.extra.insert("title".into(), "22.04 LTS".into());
    let jammy = store
        .create_boot_resource(new.clone(), 1_000)
        .await
        .unwrap();
    assert_eq!(jammy.rtype, BootResourceType::Synced);
    assert_eq!(jammy.extra["title"], "22.04 LTS");
    assert_eq!(jammy.kflavor.as_deref(), Some("generic"));
    assert_eq!(jammy.last_deployed, None);
    // Type, name and architecture are unique together.
    assert!(matches!(
        store.create_boot_resource(new, 1_000).await,
        Err(StoreError::Conflict { .. })
    ));
    let uploaded = store
        .create_boot_resource(
            resource(BootResourceType::Uploaded, "ubuntu/jammy", "amd64/ga-22.04"),
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .find_boot_resource(BootResourceType::Uploaded, "ubuntu/jammy", "amd64/ga-22.04")
            .await
            .unwrap()
            .unwrap()
            .id,
        uploaded.id
    );
    assert!(
        store
            .find_boot_resource(BootResourceType::Synced, "ubuntu/jammy", "arm64/ga-22.04")
            .await
            .unwrap()
            .is_none()
    );

    let mut changed = jammy.clone();
    changed.base_image = Some("ubuntu/noble".into());
    changed.bootloader_type = Some("uefi".into());
    changed
        .extra
        .insert("subarches".into(), "generic,ga-22.04".into());
    store.update_boot_resource(&changed).await.unwrap();
    store
        .set_boot_resource_deployed(jammy.id, 5_000)
        .await
        .unwrap();
    let read = store.boot_resource(jammy.id).await.unwrap().unwrap();
    assert_eq!(read.base_image.as_deref(), Some("ubuntu/noble"));
    assert_eq!(read.bootloader_type.as_deref(), Some("uefi"));
    assert_eq!(read.extra["subarches"], "generic,ga-22.04");
    assert_eq!(read.last_deployed, Some(5_000));
    assert_eq!(
        store
            .boot_resources()
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [jammy.id, uploaded.id]
    );

    // Sets come oldest version first; a version is unique per resource.
    let newer = store
        .create_boot_resource_set(jammy.id, "20240315", "stable", 2_000)
        .await
        .unwrap();
    let older = store
        .create_boot_resource_set(jammy.id, "20240301", "stable", 2_000)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_boot_resource_set(jammy.id, "20240301", "candidate", 2_000)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        store
            .create_boot_resource_set(jammy.id + 1000, "1", "stable", 2_000)
            .await
            .is_err()
    );
    let sets = store.boot_resource_sets(jammy.id).await.unwrap();
    assert_eq!(
        sets.iter().map(|s| s.version.as_str()).collect::<Vec<_>>(),
        ["20240301", "20240315"]
    );
    assert_eq!(
        store.boot_resource_set(newer.id).await.unwrap().unwrap(),
        newer
    );

    let kernel = store
        .add_boot_resource_file(older.id, file("boot-kernel", &sha('a'), 100, false))
        .await
        .unwrap();
    assert_eq!(kernel.extra["kpackage"], "linux-generic");
    assert!(!kernel.complete);
    assert!(matches!(
        store
            .add_boot_resource_file(older.id, file("boot-kernel", &sha('b'), 1, false))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let big = 5_000_000_000i64;
    store
        .add_boot_resource_file(older.id, file("squashfs", &sha('b'), big, true))
        .await
        .unwrap();
    // The same content in the newer set.
    let shared = store
        .add_boot_resource_file(newer.id, file("boot-kernel", &sha('a'), 100, false))
        .await
        .unwrap();
    let files = store.boot_resource_files(older.id).await.unwrap();
    assert_eq!(
        files
            .iter()
            .map(|f| f.filename.as_str())
            .collect::<Vec<_>>(),
        ["boot-kernel", "squashfs"]
    );
    assert_eq!(files[1].size, big);
    assert!(files[1].complete);

    // Completing a hash completes every file with it.
    store
        .set_boot_resource_files_complete(&sha('a'), true)
        .await
        .unwrap();
    assert!(
        store
            .boot_resource_file(kernel.id)
            .await
            .unwrap()
            .unwrap()
            .complete
    );
    assert!(
        store
            .boot_resource_file(shared.id)
            .await
            .unwrap()
            .unwrap()
            .complete
    );
    assert_eq!(
        store.boot_resource_hashes().await.unwrap(),
        [sha('a'), sha('b')]
    );

    // Deleting a set takes its files; deleting a resource takes its sets.
    store.delete_boot_resource_set(older.id).await.unwrap();
    assert!(store.boot_resource_file(kernel.id).await.unwrap().is_none());
    assert_eq!(store.boot_resource_hashes().await.unwrap(), [sha('a')]);
    assert!(matches!(
        store.delete_boot_resource_set(older.id).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_boot_resource(jammy.id).await.unwrap();
    assert!(store.boot_resource(jammy.id).await.unwrap().is_none());
    assert!(store.boot_resource_set(newer.id).await.unwrap().is_none());
    assert!(store.boot_resource_file(shared.id).await.unwrap().is_none());
    assert!(store.boot_resource_hashes().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_boot_resource(jammy.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update_boot_resource(&changed).await,
        Err(StoreError::NotFound { .. })
    ));
}

fn source_fields(url: &str) -> BootSourceFields {
    BootSourceFields {
        url: url.to_owned(),
        keyring_filename: String::new(),
        keyring_data: vec![0x99, 0x00, 0xff, 0x01],
        skip_keyring_verification: false,
        priority: 0,
    }
}

fn selection(os: &str, release: &str) -> BootSourceSelectionFields {
    BootSourceSelectionFields {
        os: os.to_owned(),
        release: release.to_owned(),
        arches: vec!["amd64".into(), "arm64".into()],
        subarches: vec!["*".into()],
        labels: vec!["*".into()],
    }
}

pub async fn boot_sources_and_selections(store: Arc<dyn Store>) {
    assert!(store.boot_sources().await.unwrap().is_empty());
    let source = store
        .create_boot_source(source_fields("http://mirror.example.com/v3/"), 1_000)
        .await
        .unwrap();
    assert_eq!(source.keyring_data, [0x99, 0x00, 0xff, 0x01]);
    assert_eq!((source.created, source.updated), (1_000, 1_000));
    assert!(matches!(
        store
            .create_boot_source(source_fields("http://mirror.example.com/v3/"), 1_000)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let mut fields = source_fields("http://other.example.com/v3/");
    fields.keyring_data = Vec::new();
    fields.keyring_filename = "/usr/share/keyrings/test.gpg".into();
    fields.skip_keyring_verification = true;
    fields.priority = 5;
    let updated = store
        .update_boot_source(source.id, fields, 2_000)
        .await
        .unwrap();
    assert_eq!(updated.url, "http://other.example.com/v3/");
    assert!(updated.keyring_data.is_empty());
    assert_eq!(updated.keyring_filename, "/usr/share/keyrings/test.gpg");
    assert!(updated.skip_keyring_verification);
    assert_eq!(updated.priority, 5);
    assert_eq!((updated.created, updated.updated), (1_000, 2_000));
    assert_eq!(
        store.boot_source(source.id).await.unwrap().unwrap(),
        updated
    );
    assert!(matches!(
        store
            .update_boot_source(source.id + 100, source_fields("http://x/"), 2_000)
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let jammy = store
        .create_boot_source_selection(source.id, selection("ubuntu", "jammy"))
        .await
        .unwrap();
    assert_eq!(jammy.arches, ["amd64", "arm64"]);
    assert!(matches!(
        store
            .create_boot_source_selection(source.id, selection("ubuntu", "jammy"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        store
            .create_boot_source_selection(source.id + 100, selection("ubuntu", "noble"))
            .await
            .is_err()
    );
    let mut noble = selection("ubuntu", "noble");
    noble.labels = vec!["candidate".into()];
    let noble = store
        .create_boot_source_selection(source.id, noble)
        .await
        .unwrap();
    let changed = store
        .update_boot_source_selection(jammy.id, selection("centos", "centos70"))
        .await
        .unwrap();
    assert_eq!(
        (changed.os.as_str(), changed.release.as_str()),
        ("centos", "centos70")
    );
    assert_eq!(
        store
            .boot_source_selection(jammy.id)
            .await
            .unwrap()
            .unwrap(),
        changed
    );
    let listed = store.boot_source_selections(source.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].labels, ["candidate"]);
    store.delete_boot_source_selection(noble.id).await.unwrap();
    assert!(matches!(
        store.delete_boot_source_selection(noble.id).await,
        Err(StoreError::NotFound { .. })
    ));
    // Deleting a source takes its selections.
    store.delete_boot_source(source.id).await.unwrap();
    assert!(
        store
            .boot_source_selection(jammy.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.boot_sources().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_boot_source(source.id).await,
        Err(StoreError::NotFound { .. })
    ));
}
