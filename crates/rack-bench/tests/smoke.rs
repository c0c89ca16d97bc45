//! The bench binary starts and serves one request: an HTTP GET of a boot file on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn http_serves_a_boot_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root");
    std::fs::write(root.join("pxelinux.0"), b"loader bytes").expect("file");
    let backend = dir.path().join("backend.toml");
    std::fs::write(&backend, "[boot]\nunknown_purpose = \"none\"\n").expect("backend");
    // A free port: bind, note it, release it for the server.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_maas-rack-bench"))
            .args(["http", "--backend"])
            .arg(&backend)
            .arg("--root")
            .arg(&root)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("start maas-rack-bench"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("server did not listen: {error}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /pxelinux.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("loader bytes"), "{reply}");
}
