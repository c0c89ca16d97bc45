//! Our multipart bodies against Python's own `email` package, which maascli builds them with
//! and which MAAS's peers parse them like. Needs python3; skips loudly without it, except
//! under `CI=true` where a missing python3 is a failure.

use std::io::Write as _;
use std::process::{Command, Stdio};

use maas_client::encode::{Value, multipart_with_boundary};

fn python3() -> Option<&'static str> {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Some("python3");
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "python3 is needed for the multipart comparison tests"
    );
    eprintln!(
        "SKIPPED: python3 not found; multipart bodies were not compared with Python's email package"
    );
    None
}

fn run_python(python: &str, script: &str, input: &[u8], args: &[&str]) -> String {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to python3");
    let output = child.wait_with_output().expect("python3 output");
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 from python3")
}

/// Parses a body with `email.parser` and prints each part as JSON.
const DECODE: &str = r#"
import base64, json, sys
from email.parser import BytesParser
from email import policy
body = sys.stdin.buffer.read()
head = ("Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n" % sys.argv[1]).encode()
message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
assert message.is_multipart(), "not multipart"
assert not message.defects, message.defects
parts = []
for part in message.iter_parts():
    assert not part.defects, part.defects
    parts.append({
        "name": part.get_param("name", header="content-disposition"),
        "filename": part.get_filename(),
        "type": part.get_content_type(),
        "encoding": part["Content-Transfer-Encoding"],
        "payload": base64.b64encode(part.get_payload(decode=True)).decode(),
    })
print(json.dumps(parts))
"#;

/// Builds a body the way maascli's apiclient.multipart does, with a fixed boundary.
const ENCODE: &str = r#"
import json, sys
from email.generator import Generator
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from io import StringIO
fields = json.loads(sys.stdin.read())
message = MIMEMultipart("form-data")
for name, kind, value in fields:
    if kind == "text":
        part = MIMEApplication(value.encode("utf-8"), charset="utf-8")
        part.add_header("Content-Disposition", "form-data", name=name)
        part.set_type("text/plain")
    else:
        part = MIMEApplication(value.encode("latin-1"))
        part.add_header("Content-Disposition", "form-data", name=name, filename=name)
        part.set_type("application/octet-stream")
    message.attach(part)
message.set_boundary(sys.argv[1])
out = StringIO()
generator = Generator(out, False)
generator._write_headers = lambda self: None
generator.flatten(message)
sys.stdout.write("\r\n".join(out.getvalue().splitlines()))
"#;

fn sample_fields() -> Vec<(String, Value)> {
    let text = |name: &str, value: &str| (name.to_owned(), Value::Text(value.to_owned()));
    vec![
        text("hostname", "node2"),
        text("hostname", "node 3"),
        text(
            "description",
            "non-ASCII: é ü ✓, quotes \" and a\r\nnewline",
        ),
        text("empty", ""),
        text("user_data", &"long value ".repeat(40)),
        text("power_parameters_a_rather_long_setting", "x"),
        text("naïve", "non-ASCII name"),
        text(
            &"folded_header_name_".repeat(4),
            "a name long enough to fold the header",
        ),
        (
            "power_parameters_file".to_owned(),
            Value::File {
                contents: b"short".to_vec(),
                local_name: None,
            },
        ),
        (
            "a_file_parameter_with_a_long_name".to_owned(),
            Value::File {
                contents: Vec::new(),
                local_name: None,
            },
        ),
        (
            "content".to_owned(),
            Value::File {
                contents: (0..=255u8).cycle().take(1000).collect(),
                local_name: Some("blob".to_owned()),
            },
        ),
    ]
}

#[test]
fn python_decodes_our_bodies_to_the_same_fields() {
    let Some(python) = python3() else { return };
    let fields = sample_fields();
    let encoded = maas_client::encode::multipart(&fields);
    let decoded = run_python(python, DECODE, &encoded.body, &[&encoded.content_type]);
    let decoded: Vec<serde_json::Value> =
        serde_json::from_str(&decoded).expect("JSON from python3");
    assert_eq!(decoded.len(), fields.len());
    for ((name, value), part) in fields.iter().zip(&decoded) {
        assert_eq!(part["name"], name.as_str(), "{part}");
        assert_eq!(part["encoding"], "base64");
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            part["payload"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(payload, value.as_bytes(), "{name}");
        match value {
            Value::Text(_) => {
                assert_eq!(part["type"], "text/plain");
                assert!(part["filename"].is_null());
            }
            Value::File { .. } => {
                assert_eq!(part["type"], "application/octet-stream");
                assert_eq!(part["filename"], name.as_str());
            }
        }
    }
}

#[test]
fn our_bodies_are_byte_for_byte_what_maascli_sends() {
    let Some(python) = python3() else { return };
    let boundary = "===============1234567890123456789==";
    let fields = sample_fields();
    let described: Vec<serde_json::Value> = fields
        .iter()
        .map(|(name, value)| match value {
            Value::Text(text) => serde_json::json!([name, "text", text]),
            Value::File { contents, .. } => {
                let latin1: String = contents.iter().map(|&byte| char::from(byte)).collect();
                serde_json::json!([name, "file", latin1])
            }
        })
        .collect();
    let input = serde_json::to_vec(&described).unwrap();
    let expected = run_python(python, ENCODE, &input, &[boundary]);
    let ours = multipart_with_boundary(&fields, boundary);
    assert_eq!(String::from_utf8(ours.body).unwrap(), expected);
}
