//! Conversions both backends share: JSON text columns and error mapping.

use std::collections::BTreeMap;

use maas_store::{Filesystem, StoreError};

pub(crate) fn backend(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::not_found("row"),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::conflict(db.constraint().unwrap_or("record").to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound {
            what: format!("referenced record ({})", db.message()),
        },
        other => StoreError::Backend(Box::new(other)),
    }
}

pub(crate) fn map_to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn json_to_map(
    text: &str,
    column: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(text).map_err(|_| StoreError::InvalidData {
        what: format!("{column} is not a JSON object of strings"),
    })
}

pub(crate) fn list_to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn json_to_list(text: &str, column: &str) -> Result<Vec<String>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|_| StoreError::InvalidData {
        what: format!("{column} is not a JSON list of strings"),
    })
}

pub(crate) fn filesystem_to_json(fs: &Option<Filesystem>) -> Option<String> {
    fs.as_ref().map(|fs| {
        serde_json::json!({
            "fstype": fs.fstype,
            "label": fs.label,
            "uuid": fs.uuid,
            "mount_point": fs.mount_point,
            "mount_options": fs.mount_options,
        })
        .to_string()
    })
}

pub(crate) fn json_to_filesystem(text: Option<String>) -> Result<Option<Filesystem>, StoreError> {
    let Some(text) = text else { return Ok(None) };
    let bad = || StoreError::InvalidData {
        what: "filesystem is not a JSON object".to_owned(),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(Some(Filesystem {
        fstype: field("fstype").ok_or_else(bad)?,
        label: field("label"),
        uuid: field("uuid"),
        mount_point: field("mount_point"),
        mount_options: field("mount_options"),
    }))
}
