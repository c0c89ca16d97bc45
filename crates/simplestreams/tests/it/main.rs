//! Parsing and planning against hand-made documents in the shape of MAAS's `ephemeral-v3`
//! streams (`tests/data/`), plus property tests that untrusted bytes never panic.

use std::path::Path;

use maas_simplestreams::{
    BootloaderSelection, DocumentError, EntryError, FileType, Index, ProductKind, ProductList,
    Selection, Sha256, SkipReason, SourceProducts, parse_clearsigned, plan,
};
use proptest::prelude::*;

fn data(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn products(name: &str) -> ProductList {
    ProductList::parse(&data(name)).expect(name)
}

fn selection(os: &str, release: &str, arches: &[&str], subarches: &[&str]) -> Selection {
    let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    Selection {
        os: os.into(),
        release: release.into(),
        arches: list(arches),
        subarches: list(subarches),
        labels: vec!["*".into()],
    }
}

#[test]
fn index_lists_product_documents_and_sets_aside_bad_entries() {
    let index = Index::parse(&data("index.json")).expect("index parses");
    let paths: Vec<&str> = index
        .product_lists()
        .map(|entry| entry.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "streams/v1/com.ubuntu.maas:stable:1:bootloader-download.sjson",
            "streams/v1/com.ubuntu.maas:stable:centos-bases-download.sjson",
            "streams/v1/com.ubuntu.maas:stable:v3:download.sjson",
        ]
    );
    let v3 = &index.entries["com.ubuntu.maas:stable:v3:download"];
    assert!(
        v3.products
            .contains(&"com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04".to_owned())
    );
    assert_eq!(index.invalid.len(), 1);
    assert_eq!(index.invalid[0].0, "com.example:broken");
    assert!(matches!(index.invalid[0].1, EntryError::BadPath(_)));
}

#[test]
fn documents_of_the_wrong_kind_are_refused() {
    assert!(matches!(
        Index::parse(&data("products-v3.json")),
        Err(DocumentError::WrongFormat { .. })
    ));
    assert!(matches!(
        ProductList::parse(&data("index.json")),
        Err(DocumentError::WrongFormat { .. })
    ));
    assert!(matches!(
        ProductList::parse(b"[1, 2]"),
        Err(DocumentError::NotAnObject)
    ));
    assert!(matches!(
        ProductList::parse(b"{\"format\": \"products:1.0\""),
        Err(DocumentError::NotJson { .. })
    ));
    assert!(matches!(
        ProductList::parse(b"{\"format\": \"products:1.0\"}"),
        Err(DocumentError::MissingCollection { key: "products" })
    ));
}

#[test]
fn products_versions_and_items() {
    let list = products("products-v3.json");
    assert_eq!(list.content_id, "com.ubuntu.maas:stable:v3:download");
    let product = &list.products["com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04"];
    assert_eq!(product.attributes.get("release"), Some("jammy"));
    let versions: Vec<&str> = product.versions.keys().map(String::as_str).collect();
    assert_eq!(versions, ["20240201", "20240301", "20240315"]);
    let kernel = &product.versions["20240301"].items["boot-kernel"];
    assert_eq!(kernel.ftype, FileType::BootKernel);
    assert_eq!(
        kernel.path.as_str(),
        "jammy/amd64/20240301/ga-22.04/generic/boot-kernel"
    );
    assert_eq!(kernel.attributes.get("kpackage"), Some("linux-generic"));
    // Product attributes cascade down to items.
    assert_eq!(kernel.attributes.get("arch"), Some("amd64"));
    let noble = &list.products["com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04"];
    let invalid = &noble.versions["20250805"].invalid;
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].name, "boot-kernel");
    assert_eq!(invalid[0].ftype, Some(FileType::BootKernel));
    assert!(matches!(invalid[0].error, EntryError::BadSha256(_)));
}

#[test]
fn attributes_cascade_and_lower_levels_override() {
    let document = br#"{
        "format": "products:1.0", "content_id": "c", "label": "daily",
        "products": {"p": {"os": "ubuntu", "arch": "amd64", "release": "noble", "subarch": "ga-24.04",
          "versions": {"1": {"label": "candidate", "items": {
            "k": {"ftype": "boot-kernel", "path": "k", "sha256": "00000000000000000000000000000000000000000000000000000000000000aa", "size": "12"},
            "x": {"ftype": "boot-initrd", "path": "x", "sha256": "00", "size": 1},
            "y": {"ftype": "squashfs", "path": "y", "sha256": "00000000000000000000000000000000000000000000000000000000000000bb", "size": -1},
            "z": ["not", "an", "item"]}}}}}}"#;
    let list = ProductList::parse(document).expect("parses");
    let product = &list.products["p"];
    assert_eq!(product.attributes.get("label"), Some("daily"));
    let version = &product.versions["1"];
    assert_eq!(version.attributes.get("label"), Some("candidate"));
    assert_eq!(version.items["k"].size, 12);
    assert_eq!(
        version.items["k"].attributes.get("label"),
        Some("candidate")
    );
    assert_eq!(version.invalid.len(), 3);
}

#[test]
fn selection_matching() {
    let list = products("products-v3.json");
    let ga = &list.products["com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04"].attributes;
    let arm = &list.products["com.ubuntu.maas.stable:v3:boot:22.04:arm64:ga-22.04"].attributes;
    let cases = [
        (
            selection("ubuntu", "jammy", &["amd64"], &["*"]),
            true,
            false,
        ),
        (selection("ubuntu", "jammy", &["*"], &["*"]), true, true),
        (selection("*", "*", &["arm64"], &["*"]), false, true),
        (
            selection("ubuntu", "jammy", &["amd64"], &["ga-22.04"]),
            true,
            false,
        ),
        (
            selection("ubuntu", "jammy", &["amd64"], &["hwe-22.04"]),
            false,
            false,
        ),
        (
            selection("ubuntu", "noble", &["amd64"], &["*"]),
            false,
            false,
        ),
        (selection("centos", "jammy", &["*"], &["*"]), false, false),
        (selection("ubuntu", "jammy", &[], &["*"]), false, false),
    ];
    for (selection, amd64, arm64) in cases {
        assert_eq!(selection.matches(ga), amd64, "{selection:?} vs amd64");
        assert_eq!(selection.matches(arm), arm64, "{selection:?} vs arm64");
    }
    let mut labelled = selection("ubuntu", "jammy", &["amd64"], &["*"]);
    labelled.labels = vec!["candidate".into()];
    assert!(!labelled.matches(ga));
}

#[test]
fn plan_takes_the_newest_complete_version_of_selected_products_only() {
    let lists = [products("products-v3.json"), products("bootloaders.json")];
    let selections = [
        selection("ubuntu", "jammy", &["amd64"], &["*"]),
        selection("ubuntu", "noble", &["amd64"], &["*"]),
        selection("ubuntu", "focal", &["amd64"], &["*"]),
    ];
    let source = SourceProducts {
        source_id: 1,
        priority: 10,
        lists: &lists,
        selections: &selections,
    };
    let result = plan(&[source], &BootloaderSelection::defaults());
    let resources: Vec<(&str, &str, &str, ProductKind)> = result
        .resources
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.architecture.as_str(),
                r.version.as_str(),
                r.kind,
            )
        })
        .collect();
    assert_eq!(
        resources,
        [
            (
                "grub-efi-signed/uefi",
                "amd64/generic",
                "20210819.0",
                ProductKind::Bootloader
            ),
            (
                "grub-efi/uefi",
                "arm64/generic",
                "20210819.0",
                ProductKind::Bootloader
            ),
            (
                "pxelinux/pxe",
                "i386/generic",
                "20210819.0",
                ProductKind::Bootloader
            ),
            (
                "ubuntu/jammy",
                "amd64/ga-22.04",
                "20240301",
                ProductKind::MultiFile
            ),
            (
                "ubuntu/jammy",
                "amd64/hwe-22.04",
                "20240301",
                ProductKind::MultiFile
            ),
            (
                "ubuntu/noble",
                "amd64/ga-24.04-lowlatency",
                "20250805",
                ProductKind::MultiFile
            ),
        ]
    );
    let jammy = &result.resources[3];
    assert_eq!(jammy.label, "stable");
    assert_eq!(jammy.kflavor.as_deref(), Some("generic"));
    assert_eq!(jammy.extra["title"], "22.04 LTS");
    assert!(jammy.extra["subarches"].ends_with("ga-22.04"));
    let files: Vec<(&str, &str)> = jammy
        .files
        .iter()
        .map(|f| (f.filetype.as_str(), f.filename.as_str()))
        .collect();
    // The manifest is not a boot file and is not fetched.
    assert_eq!(
        files,
        [
            ("boot-kernel", "boot-kernel"),
            ("boot-initrd", "boot-initrd"),
            ("squashfs", "squashfs")
        ]
    );
    assert_eq!(jammy.files[0].extra["kpackage"], "linux-generic");
    let grub = &result.resources[0];
    assert_eq!(grub.bootloader_type.as_deref(), Some("uefi"));
    assert_eq!(grub.files.len(), 2);
    assert_eq!(grub.files[0].extra["src_package"], "grub2-signed");

    // The newest jammy version lacks an initrd and noble ga-24.04 has a malformed hash:
    // both are reported, not imported.
    let skipped: Vec<(&str, &SkipReason)> = result
        .skipped
        .iter()
        .map(|s| (s.product.as_str(), &s.reason))
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].0,
        "com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04"
    );
    match skipped[0].1 {
        SkipReason::NoCompleteVersion {
            newest, invalid, ..
        } => {
            assert_eq!(newest, "20250805");
            assert!(invalid[0].starts_with("boot-kernel"), "{invalid:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // focal matched nothing.
    assert_eq!(result.unmatched, [(1, 2)]);
}

#[test]
fn downloads_skip_what_is_stored_and_share_identical_files() {
    let lists = [products("products-v3.json")];
    let selections = [selection("ubuntu", "jammy", &["amd64"], &["ga-22.04"])];
    let source = SourceProducts {
        source_id: 3,
        priority: 0,
        lists: &lists,
        selections: &selections,
    };
    let result = plan(&[source], &[]);
    assert_eq!(result.resources.len(), 1);
    let all = result.downloads(|_| false);
    assert_eq!(all.len(), 3);
    assert_eq!(
        result.total_bytes(),
        all.iter().map(|d| d.size).sum::<u64>()
    );
    let kernel = result.resources[0].files[0].sha256.clone();
    let missing = result.downloads(|sha: &Sha256| *sha == kernel);
    assert_eq!(missing.len(), 2);
    assert!(
        missing
            .iter()
            .all(|d| d.sha256 != kernel && d.source_id == 3)
    );
}

#[test]
fn higher_priority_source_wins_and_single_file_products_plan() {
    let v3 = [products("products-v3.json"), products("centos.json")];
    let everything = [selection("*", "*", &["*"], &["*"])];
    let low = SourceProducts {
        source_id: 1,
        priority: 1,
        lists: &v3,
        selections: &everything,
    };
    let high = SourceProducts {
        source_id: 2,
        priority: 5,
        lists: &v3,
        selections: &everything,
    };
    let result = plan(&[low, high], &[]);
    assert!(result.resources.iter().all(|r| r.source_id == 2));
    assert!(
        result
            .skipped
            .iter()
            .any(|s| s.source_id == 1
                && matches!(s.reason, SkipReason::Shadowed { by_source_id: 2 }))
    );
    let centos = result
        .resources
        .iter()
        .find(|r| r.name == "centos/centos70")
        .expect("centos planned");
    assert_eq!(centos.kind, ProductKind::SingleFile);
    assert_eq!(centos.architecture, "amd64/generic");
    assert_eq!(centos.version, "20240128_01");
    assert_eq!(centos.files.len(), 1);
    assert_eq!(centos.files[0].filetype, FileType::RootTgz);
    assert_eq!(centos.files[0].filename, "root-tgz");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Index::parse(&bytes);
        let _ = ProductList::parse(&bytes);
        let _ = parse_clearsigned(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic(
        position in 0usize..9000,
        replacement in proptest::collection::vec(any::<u8>(), 0..16),
        which in 0usize..3,
    ) {
        let mut document = data(["products-v3.json", "index.json", "bootloaders.json"][which]);
        let at = position.min(document.len());
        let end = (at + replacement.len()).min(document.len());
        document.splice(at..end, replacement);
        if let Ok(list) = ProductList::parse(&document) {
            let selections = [selection("*", "*", &["*"], &["*"])];
            let lists = [list];
            let source = SourceProducts { source_id: 1, priority: 0, lists: &lists, selections: &selections };
            let _ = plan(&[source], &BootloaderSelection::defaults()).downloads(|_| false);
        }
        let _ = Index::parse(&document);
    }
}
