//! The `describe_power_types` document, checked against a reviewed golden
//! file. `UPDATE_EXPECT=1` rewrites it.

use std::path::Path;

#[test]
fn describe_power_types_golden() {
    let mut schemas = maas_power::power_types();
    // Depends on what this machine has installed, not on the code.
    for schema in &mut schemas {
        schema.missing_packages.clear();
    }
    let mut rendered = serde_json::to_string_pretty(&schemas).expect("schemas serialize");
    rendered.push('\n');
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/describe_power_types.json");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&golden, &rendered).expect("writing the golden file");
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        rendered, expected,
        "describe_power_types changed; review and rerun with UPDATE_EXPECT=1"
    );
}
