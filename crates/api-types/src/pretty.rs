//! JSON written with a 4-space indent, as MAAS's emitter writes it, starting
//! at any nesting level so that a long array can be streamed one element at
//! a time and still read as one indented document.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

const SPACES: &[u8; 64] = b"                                                                ";

/// A pretty formatter whose output starts `level` indents deep.
pub struct Indented {
    level: usize,
    has_value: bool,
}

impl Indented {
    pub fn at_level(level: usize) -> Indented {
        Indented {
            level,
            has_value: false,
        }
    }

    fn indent<W: ?Sized + Write>(&self, writer: &mut W) -> io::Result<()> {
        // One write for the whole indent: listings write millions of these.
        let mut remaining = self.level * 4;
        while remaining > 0 {
            let chunk = remaining.min(SPACES.len());
            writer.write_all(&SPACES[..chunk])?;
            remaining -= chunk;
        }
        Ok(())
    }
}

impl Indented {
    /// `\n` or `,\n`, then the indent, in one write when it fits.
    fn newline<W: ?Sized + Write>(&self, writer: &mut W, first: bool) -> io::Result<()> {
        let width = self.level * 4;
        let mut line = [0u8; 2 + SPACES.len()];
        let start = if first { 1 } else { 0 };
        line[0] = b',';
        line[1] = b'\n';
        if width <= SPACES.len() {
            line[2..2 + width].copy_from_slice(&SPACES[..width]);
            writer.write_all(&line[start..2 + width])
        } else {
            writer.write_all(&line[start..2])?;
            self.indent(writer)
        }
    }
}

impl Formatter for Indented {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            writer.write_all(b"\n")?;
            self.indent(writer)?;
        }
        writer.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.newline(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            writer.write_all(b"\n")?;
            self.indent(writer)?;
        }
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.newline(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Appends `value` to `out`, indented as if it sat `level` levels deep.
pub fn write_at<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    level: usize,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, Indented::at_level(level));
    value.serialize(&mut serializer)
}

/// `value` as a pretty JSON document.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write_at(&mut out, value, 0)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_indent_4() {
        let value = json!({"a": [1, {"b": null}], "c": {}, "d": []});
        let text = String::from_utf8(to_vec(&value).unwrap()).unwrap();
        // What Python's json.dumps(value, indent=4) prints for the same value.
        let expected = "{\n    \"a\": [\n        1,\n        {\n            \"b\": null\n        }\n    ],\n    \"c\": {},\n    \"d\": []\n}";
        assert_eq!(text, expected);
    }

    #[test]
    fn streamed_elements_join_into_one_document() {
        let items = [json!({"x": 1}), json!({"x": 2})];
        let mut out = b"[".to_vec();
        for (i, item) in items.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            write_at(&mut out, item, 1).unwrap();
        }
        out.extend_from_slice(b"\n]");
        assert_eq!(out, to_vec(&items).unwrap());
    }
}
