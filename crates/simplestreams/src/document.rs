//! The two documents of a simplestreams mirror: the index (`index:1.0`) that lists product
//! lists, and a product list (`products:1.0`) with products, their versions and items.
//!
//! Scalar attributes cascade down the tree as simplestreams defines it: a product sees the
//! document's, a version its product's, an item its version's, each level overriding the one
//! above. One bad item does not void the document: it is kept in [`Version::invalid`] so the
//! planner can say why a version is not complete.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::types::{FileType, Sha256, Sha256Error, StreamPath, StreamPathError};

pub const INDEX_FORMAT: &str = "index:1.0";
pub const PRODUCTS_FORMAT: &str = "products:1.0";

#[derive(Debug, Error)]
pub enum DocumentError {
    #[error("document is not JSON")]
    NotJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("document is not a JSON object")]
    NotAnObject,
    #[error("document format is {found:?}, expected {expected:?}")]
    WrongFormat {
        found: Option<String>,
        expected: &'static str,
    },
    #[error("document has no {key:?} object")]
    MissingCollection { key: &'static str },
}

/// Why one index entry or item was left out.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EntryError {
    #[error("{key:?} is missing")]
    Missing { key: &'static str },
    #[error("{key:?} is not a {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("bad path")]
    BadPath(#[source] StreamPathError),
    #[error("bad sha256")]
    BadSha256(#[source] Sha256Error),
}

/// Scalar attributes (strings, numbers and booleans, as text) of one level of the tree,
/// merged with the levels above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `self` overlaid with the scalars of `object`.
    fn overlay(&self, object: &Map<String, Value>) -> Attributes {
        let mut merged = self.clone();
        for (key, value) in object {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => continue,
            };
            merged.0.insert(key.clone(), text);
        }
        merged
    }
}

/// An index (`streams/v1/index.sjson`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub updated: Option<String>,
    /// Entries keyed by content id (`com.ubuntu.maas:stable:v3:download`).
    pub entries: BTreeMap<String, IndexEntry>,
    /// Entries left out, with the reason.
    pub invalid: Vec<(String, EntryError)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub content_id: String,
    pub format: String,
    pub datatype: Option<String>,
    pub path: StreamPath,
    /// Product names the entry's document holds, as the index advertises them.
    pub products: Vec<String>,
    pub updated: Option<String>,
}

impl Index {
    pub fn parse(document: &[u8]) -> Result<Index, DocumentError> {
        let root = parse_object(document, INDEX_FORMAT)?;
        let entries_value = root
            .get("index")
            .and_then(Value::as_object)
            .ok_or(DocumentError::MissingCollection { key: "index" })?;
        let mut entries = BTreeMap::new();
        let mut invalid = Vec::new();
        for (content_id, value) in entries_value {
            match parse_index_entry(content_id, value) {
                Ok(entry) => {
                    entries.insert(content_id.clone(), entry);
                }
                Err(error) => invalid.push((content_id.clone(), error)),
            }
        }
        Ok(Index {
            updated: string_field(&root, "updated"),
            entries,
            invalid,
        })
    }

    /// Entries that are product lists (`products:1.0`), in content-id order.
    pub fn product_lists(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries
            .values()
            .filter(|entry| entry.format == PRODUCTS_FORMAT)
    }
}

fn parse_index_entry(content_id: &str, value: &Value) -> Result<IndexEntry, EntryError> {
    let object = value.as_object().ok_or(EntryError::WrongType {
        key: "index entry",
        expected: "object",
    })?;
    let format = required_string(object, "format")?;
    let path = StreamPath::parse(&required_string(object, "path")?).map_err(EntryError::BadPath)?;
    let products = match object.get("products") {
        None => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return Err(EntryError::WrongType {
                key: "products",
                expected: "list",
            });
        }
    };
    Ok(IndexEntry {
        content_id: content_id.to_owned(),
        format,
        datatype: string_field(object, "datatype"),
        path,
        products,
        updated: string_field(object, "updated"),
    })
}

/// A product list (`streams/v1/com.ubuntu.maas:stable:v3:download.sjson`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductList {
    pub content_id: String,
    pub datatype: Option<String>,
    pub updated: Option<String>,
    pub products: BTreeMap<String, Product>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// `com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04`.
    pub name: String,
    /// The product's attributes over the document's (`os`, `arch`, `release`, `subarch`, ...).
    pub attributes: Attributes,
    /// Versions keyed by their serial (`20250805`).
    pub versions: BTreeMap<String, Version>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub name: String,
    /// The version's attributes over the product's.
    pub attributes: Attributes,
    /// Valid items keyed by item name (`boot-kernel`, `grub2-signed`).
    pub items: BTreeMap<String, Item>,
    /// Items left out, with their `ftype` when it could be read.
    pub invalid: Vec<InvalidItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub ftype: FileType,
    pub path: StreamPath,
    pub sha256: Sha256,
    pub size: u64,
    /// The item's attributes over its version's (`kpackage`, `kparams`, `src_package`, ...).
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidItem {
    pub name: String,
    pub ftype: Option<FileType>,
    pub error: EntryError,
}

impl ProductList {
    pub fn parse(document: &[u8]) -> Result<ProductList, DocumentError> {
        let root = parse_object(document, PRODUCTS_FORMAT)?;
        let products_value = root
            .get("products")
            .and_then(Value::as_object)
            .ok_or(DocumentError::MissingCollection { key: "products" })?;
        let top = Attributes::default().overlay(&root);
        let mut products = BTreeMap::new();
        for (name, value) in products_value {
            // A product that is not an object has nothing to offer; skip it.
            let Some(object) = value.as_object() else {
                continue;
            };
            products.insert(name.clone(), parse_product(name, object, &top));
        }
        Ok(ProductList {
            content_id: string_field(&root, "content_id").unwrap_or_default(),
            datatype: string_field(&root, "datatype"),
            updated: string_field(&root, "updated"),
            products,
        })
    }
}

fn parse_product(name: &str, object: &Map<String, Value>, top: &Attributes) -> Product {
    let attributes = top.overlay(object);
    let mut versions = BTreeMap::new();
    if let Some(versions_value) = object.get("versions").and_then(Value::as_object) {
        for (version_name, value) in versions_value {
            let Some(version_object) = value.as_object() else {
                continue;
            };
            versions.insert(
                version_name.clone(),
                parse_version(version_name, version_object, &attributes),
            );
        }
    }
    Product {
        name: name.to_owned(),
        attributes,
        versions,
    }
}

fn parse_version(name: &str, object: &Map<String, Value>, product: &Attributes) -> Version {
    let attributes = product.overlay(object);
    let mut items = BTreeMap::new();
    let mut invalid = Vec::new();
    if let Some(items_value) = object.get("items").and_then(Value::as_object) {
        for (item_name, value) in items_value {
            match parse_item(item_name, value, &attributes) {
                Ok(item) => {
                    items.insert(item_name.clone(), item);
                }
                Err((ftype, error)) => invalid.push(InvalidItem {
                    name: item_name.clone(),
                    ftype,
                    error,
                }),
            }
        }
    }
    Version {
        name: name.to_owned(),
        attributes,
        items,
        invalid,
    }
}

fn parse_item(
    name: &str,
    value: &Value,
    version: &Attributes,
) -> Result<Item, (Option<FileType>, EntryError)> {
    let object = value.as_object().ok_or((
        None,
        EntryError::WrongType {
            key: "item",
            expected: "object",
        },
    ))?;
    let attributes = version.overlay(object);
    let ftype = attributes.get("ftype").map(FileType::parse);
    let fail = |error| (ftype.clone(), error);
    let Some(file_type) = ftype.clone() else {
        return Err(fail(EntryError::Missing { key: "ftype" }));
    };
    let path = attributes
        .get("path")
        .ok_or_else(|| fail(EntryError::Missing { key: "path" }))
        .and_then(|path| StreamPath::parse(path).map_err(|e| fail(EntryError::BadPath(e))))?;
    let sha256 = attributes
        .get("sha256")
        .ok_or_else(|| fail(EntryError::Missing { key: "sha256" }))
        .and_then(|sha| Sha256::parse(sha).map_err(|e| fail(EntryError::BadSha256(e))))?;
    let size = match object.get("size") {
        Some(Value::Number(number)) => number.as_u64().ok_or_else(|| {
            fail(EntryError::WrongType {
                key: "size",
                expected: "non-negative integer",
            })
        })?,
        // Some generators write sizes as strings.
        Some(Value::String(text)) => text.parse::<u64>().map_err(|_| {
            fail(EntryError::WrongType {
                key: "size",
                expected: "non-negative integer",
            })
        })?,
        Some(_) => {
            return Err(fail(EntryError::WrongType {
                key: "size",
                expected: "non-negative integer",
            }));
        }
        None => return Err(fail(EntryError::Missing { key: "size" })),
    };
    Ok(Item {
        name: name.to_owned(),
        ftype: file_type,
        path,
        sha256,
        size,
        attributes,
    })
}

fn parse_object(
    document: &[u8],
    expected: &'static str,
) -> Result<Map<String, Value>, DocumentError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|source| DocumentError::NotJson { source })?;
    let Value::Object(root) = value else {
        return Err(DocumentError::NotAnObject);
    };
    let format = string_field(&root, "format");
    if format.as_deref() != Some(expected) {
        return Err(DocumentError::WrongFormat {
            found: format,
            expected,
        });
    }
    Ok(root)
}

fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn required_string(object: &Map<String, Value>, key: &'static str) -> Result<String, EntryError> {
    match object.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(EntryError::WrongType {
            key,
            expected: "string",
        }),
        None => Err(EntryError::Missing { key }),
    }
}
