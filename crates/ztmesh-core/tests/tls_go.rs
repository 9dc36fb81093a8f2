//! Interoperability with Go's crypto/tls over loopback TCP: ztmesh server ↔ Go client and Go server
//! ↔ ztmesh client agree on X25519MLKEM768 and exchange data (and a Go client resumes with a
//! ztmesh ticket); a Go client limited to X25519 is
//! refused by a server that requires post-quantum key exchange and falls back with one that
//! prefers it; and Go loads, verifies and reads device certificates carrying roles
//! (`urn:ztmesh:role:` SAN URIs), its own and its peer's.
//!
//! The Go side is `tests/go/tlspeer` (standard library only), built into a temporary directory
//! with the local toolchain and no network. Without `go` on the PATH the tests fail under CI and
//! print why they did not run elsewhere (see `peers`).

mod peers;
mod tls_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tls_common::{client_settings, server_settings, Device, Pki, TENANT};
use ztmesh_core::pki::{pem, DeviceCertRequest};
use ztmesh_core::tls::{
    PqPolicy, TlsClientContext, TlsError, TlsServerContext, TlsSession, GROUP_X25519, GROUP_X25519MLKEM768,
};
use ztmesh_core::ErrorCode;

const TIMEOUT: Duration = Duration::from_secs(20);

/// The built Go peer, or why there is none.
fn go_peer() -> Result<&'static Path, &'static str> {
    static PEER: OnceLock<Result<PathBuf, &'static str>> = OnceLock::new();
    PEER.get_or_init(build_go_peer).as_ref().map(PathBuf::as_path).map_err(|e| *e)
}

fn build_go_peer() -> Result<PathBuf, &'static str> {
    if !peers::runs("go", &["version"]) {
        return Err("`go` is not installed");
    }
    // Kept for the life of the test process; the OS cleans the temporary directory.
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    let binary = dir.join("tlspeer");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go");
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg("./tlspeer")
        .current_dir(&source)
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOWORK", "off")
        .output()
        .expect("running go build");
    assert!(
        output.status.success(),
        "go build failed (the peer needs Go 1.25 or later, as tests/go/go.mod says): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(binary)
}

/// Runs `test` with the Go peer; without one, fails under CI and says why elsewhere.
fn with_go(test: impl FnOnce(&Path)) {
    match go_peer() {
        Ok(peer) => test(peer),
        Err(reason) => peers::missing(reason),
    }
}

/// A PKI with a ztmesh device and a Go device, and their PEM files for Go.
struct Setup {
    pki: Pki,
    ztmesh: Device,
    files: tempfile::TempDir,
}

impl Setup {
    /// Devices without roles, under a site CA bound to their tenant by name constraints: Go
    /// verifies such chains.
    fn new() -> Self {
        Self::build(Pki::with_tenants("interop", &[TENANT]), &[], &[])
    }

    /// Devices whose certificates carry `ztmesh_roles` and `go_roles`, under an unconstrained
    /// site CA: Go (1.26) refuses every host-less URI, such as a role URN, below a CA with any
    /// nameConstraints extension ("URI with empty host cannot be matched against constraints").
    fn with_roles(ztmesh_roles: &[&str], go_roles: &[&str]) -> Self {
        Self::build(Pki::new("interop"), ztmesh_roles, go_roles)
    }

    fn build(pki: Pki, ztmesh_roles: &[&str], go_roles: &[&str]) -> Self {
        let request = |device_id: &str, roles: &[&str]| DeviceCertRequest {
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..DeviceCertRequest::new(device_id, TENANT)
        };
        let ztmesh = pki.device_with(request("ztmesh-node", ztmesh_roles));
        let go = pki.device_with(request("go-node", go_roles));
        let files = tempfile::tempdir().unwrap();
        let chain: String = go.chain.iter().map(|der| pem::encode(pem::CERTIFICATE, der)).collect();
        std::fs::write(files.path().join("chain.pem"), chain).unwrap();
        std::fs::write(files.path().join("key.pem"), pem::encode_private_key(&go.pkcs8).as_bytes()).unwrap();
        std::fs::write(files.path().join("ca.pem"), pki.root.certificate_pem()).unwrap();
        Self { pki, ztmesh, files }
    }

    /// The Go peer in `mode`, with its certificate, the root, and `extra` arguments.
    fn go(&self, peer: &Path, mode: &str, extra: &[&str]) -> Child {
        let file = |name: &str| self.files.path().join(name);
        Command::new(peer)
            .args(["-mode", mode])
            .arg("-cert")
            .arg(file("chain.pem"))
            .arg("-key")
            .arg(file("key.pem"))
            .arg("-ca")
            .arg(file("ca.pem"))
            .args(["-expect-uri", &format!("ztmesh://{TENANT}/ztmesh-node")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the Go peer")
    }

    fn server(&self, pq: PqPolicy) -> TlsServerContext {
        TlsServerContext::new(server_settings(&self.pki, &self.ztmesh, pq)).unwrap()
    }
}

/// Accepts one connection, failing after [`TIMEOUT`].
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no connection from the Go client: {e}"),
        }
    }
}

/// Runs the handshake over `stream`; on failure the alert is sent before returning.
fn handshake(session: &mut TlsSession, stream: &mut TcpStream) -> Result<(), TlsError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        stream.write_all(&session.take_outgoing()).unwrap();
        if !session.is_handshaking() {
            return session.error().map_or(Ok(()), |e| Err(e.clone()));
        }
        let n = stream.read(&mut buf).expect("reading from the Go peer");
        assert!(n > 0, "the Go peer closed during the handshake");
        if let Err(e) = session.read_tls(&buf[..n]) {
            let _ = stream.write_all(&session.take_outgoing());
            return Err(e);
        }
    }
}

/// Reads plaintext until a full line has arrived.
fn read_line(session: &mut TlsSession, stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::new();
    // The line may have come with the last handshake flight.
    session.read_plaintext(&mut line);
    while !line.contains(&b'\n') {
        stream.write_all(&session.take_outgoing()).unwrap();
        let n = stream.read(&mut buf).expect("reading from the Go peer");
        assert!(n > 0, "the Go peer closed before sending a line");
        session.read_tls(&buf[..n]).unwrap();
        session.read_plaintext(&mut line);
    }
    String::from_utf8(line).unwrap().trim_end().to_owned()
}

fn finish(child: Child) -> (Output, String) {
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

#[test]
fn ztmesh_server_and_go_client_agree_on_x25519mlkem768_and_resume() {
    with_go(|peer| {
        let setup = Setup::new();
        let server_ctx = setup.server(PqPolicy::Prefer);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let args = ["-addr", &addr, "-message", "hello from go", "-connections", "2"];
        let child = setup.go(peer, "client", &args);
        for resumed in [false, true] {
            let mut stream = accept(&listener);
            let mut session = server_ctx.accept().unwrap();
            handshake(&mut session, &mut stream).unwrap();
            assert_eq!(session.kx_group(), Some(GROUP_X25519MLKEM768));
            assert!(session.is_post_quantum());
            assert_eq!(session.is_resumed(), resumed, "Go resumes with our ticket");
            let peer_identity = session.peer().unwrap();
            assert_eq!((peer_identity.device_id.as_str(), peer_identity.tenant.as_str()), ("go-node", TENANT));

            let line = read_line(&mut session, &mut stream);
            assert_eq!(line, "hello from go");
            session.write_plaintext(format!("ztmesh:{line}\n").as_bytes()).unwrap();
            stream.write_all(&session.take_outgoing()).unwrap();
        }

        let (output, stdout) = finish(child);
        assert!(output.status.success(), "{stdout}");
        assert_eq!(stdout.matches("CURVE X25519MLKEM768\n").count(), 2, "{stdout}");
        assert_eq!(stdout.matches("REPLY ztmesh:hello from go\n").count(), 2, "{stdout}");
        assert!(stdout.contains("RESUMED false\nREPLY") && stdout.contains("RESUMED true\nREPLY"), "{stdout}");
    });
}

#[test]
fn go_server_and_ztmesh_client_agree_on_x25519mlkem768() {
    with_go(|peer| {
        let setup = Setup::new();
        let mut child = setup.go(peer, "server", &["-addr", "127.0.0.1:0"]);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = first.strip_prefix("LISTEN ").unwrap_or_else(|| panic!("Go server said {first:?}")).trim();

        let client_ctx = TlsClientContext::new(client_settings(&setup.pki, &setup.ztmesh, PqPolicy::Prefer)).unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut session = client_ctx.connect_to("go-node").unwrap();
        session.write_plaintext(b"hello from ztmesh\n").unwrap();
        handshake(&mut session, &mut stream).unwrap();
        assert_eq!(session.kx_group(), Some(GROUP_X25519MLKEM768));
        assert_eq!(session.peer().map(|p| p.device_id.as_str()), Some("go-node"));
        assert_eq!(read_line(&mut session, &mut stream), "echo:hello from ztmesh");
        session.send_close_notify();
        stream.write_all(&session.take_outgoing()).unwrap();
        drop(stream);

        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{rest}");
        assert!(rest.contains("CURVE X25519MLKEM768\n"), "{rest}");
        assert!(rest.contains("GOT hello from ztmesh\n"), "{rest}");
    });
}

#[test]
fn a_classical_go_client_is_refused_by_require_and_falls_back_with_prefer() {
    with_go(|peer| {
        let setup = Setup::new();
        for (pq, expected) in [(PqPolicy::Require, Err("ERR_TLS_NO_PQ")), (PqPolicy::Prefer, Ok(GROUP_X25519))] {
            let server_ctx = setup.server(pq);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let child = setup.go(peer, "client", &["-addr", &addr, "-curves", "X25519"]);
            let mut stream = accept(&listener);
            let mut session = server_ctx.accept().unwrap();
            let outcome = handshake(&mut session, &mut stream);
            match expected {
                Err(code) => {
                    assert_eq!(outcome.unwrap_err().code(), code);
                    drop(stream);
                    let (output, stdout) = finish(child);
                    assert!(!output.status.success() && stdout.contains("ERROR"), "{stdout}");
                }
                Ok(group) => {
                    outcome.unwrap();
                    assert_eq!(session.kx_group(), Some(group));
                    assert!(!session.is_post_quantum());
                    let line = read_line(&mut session, &mut stream);
                    session.write_plaintext(format!("ztmesh:{line}\n").as_bytes()).unwrap();
                    stream.write_all(&session.take_outgoing()).unwrap();
                    let (output, stdout) = finish(child);
                    assert!(output.status.success(), "{stdout}");
                    assert!(stdout.contains("CURVE X25519\n"), "{stdout}");
                }
            }
        }
    });
}

#[test]
fn go_loads_and_verifies_device_certificates_with_roles() {
    with_go(|peer| {
        let setup = Setup::with_roles(&["frontdesk", "pos:cashier"], &["gateway"]);

        // The Go server loads its own roles-bearing certificate and accepts the ztmesh client's,
        // reading its roles.
        let mut child = setup.go(peer, "server", &["-addr", "127.0.0.1:0", "-expect-roles", "frontdesk,pos:cashier"]);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = first.strip_prefix("LISTEN ").unwrap_or_else(|| panic!("Go server said {first:?}")).trim();
        let client_ctx = TlsClientContext::new(client_settings(&setup.pki, &setup.ztmesh, PqPolicy::Prefer)).unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut session = client_ctx.connect_to("go-node").unwrap();
        session.write_plaintext(b"hello with roles\n").unwrap();
        handshake(&mut session, &mut stream).unwrap();
        assert_eq!(session.peer().map(|p| p.roles.clone()), Some(vec!["gateway".to_owned()]));
        assert_eq!(read_line(&mut session, &mut stream), "echo:hello with roles");
        session.send_close_notify();
        stream.write_all(&session.take_outgoing()).unwrap();
        drop(stream);
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert!(child.wait().unwrap().success(), "{first}{rest}");
        assert!(rest.contains("GOT hello with roles\n"), "{rest}");

        // The Go client loads its roles-bearing certificate; the ztmesh server reads its roles,
        // and the Go client reads the server's.
        let server_ctx = setup.server(PqPolicy::Prefer);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let child = setup.go(peer, "client", &["-addr", &addr, "-expect-roles", "frontdesk,pos:cashier"]);
        let mut stream = accept(&listener);
        let mut session = server_ctx.accept().unwrap();
        handshake(&mut session, &mut stream).unwrap();
        assert_eq!(session.peer().map(|p| p.roles.clone()), Some(vec!["gateway".to_owned()]));
        let line = read_line(&mut session, &mut stream);
        session.write_plaintext(format!("ztmesh:{line}\n").as_bytes()).unwrap();
        stream.write_all(&session.take_outgoing()).unwrap();
        let (output, stdout) = finish(child);
        assert!(output.status.success(), "{stdout}");
        assert!(stdout.contains("REPLY ztmesh:hello from go\n"), "{stdout}");

        // A Go client expecting a role the server lacks refuses it: -expect-roles is a real check.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let child = setup.go(peer, "client", &["-addr", &addr, "-expect-roles", "admin"]);
        let mut stream = accept(&listener);
        let mut session = server_ctx.accept().unwrap();
        // The Go client aborts mid-handshake: tolerate the alert, a reset or an early close.
        let mut buf = vec![0u8; 64 * 1024];
        while session.is_handshaking() {
            let _ = stream.write_all(&session.take_outgoing());
            match stream.read(&mut buf) {
                Ok(n) if n > 0 && session.read_tls(&buf[..n]).is_ok() => {}
                _ => break,
            }
        }
        drop(stream);
        let (output, stdout) = finish(child);
        assert!(!output.status.success() && stdout.contains("urn:ztmesh:role:admin"), "{stdout}");
    });
}
