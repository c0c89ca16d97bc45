//! Stream documents from a mirror are untrusted: parsing them (as index, as product list,
//! as a cleartext-signed wrapper) and planning an import from whatever parses must never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_simplestreams::{
    BootloaderSelection, Index, ProductList, Selection, SourceProducts, parse_clearsigned, plan,
};

fuzz_target!(|data: &[u8]| {
    let _ = Index::parse(data);
    let _ = parse_clearsigned(data);
    if let Ok(list) = ProductList::parse(data) {
        let selections = [Selection {
            os: "*".into(),
            release: "*".into(),
            arches: vec!["*".into()],
            subarches: vec!["*".into()],
            labels: vec!["*".into()],
        }];
        let lists = [list];
        let source = SourceProducts {
            source_id: 1,
            priority: 0,
            lists: &lists,
            selections: &selections,
        };
        let planned = plan(&[source], &BootloaderSelection::defaults());
        let _ = planned.downloads(|_| false);
        let _ = planned.total_bytes();
    }
});
