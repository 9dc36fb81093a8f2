//! A Rust program speaking the Noise link with the core crate alone, against the TypeScript side
//! (`wrapNoise`) over loopback TCP, in both roles: the handshake (hybrid, certificate-bound),
//! records both ways, the peers' identities, and a refusal.
//!
//! The TypeScript side is `tests/ts/link-peer.ts`, run with `node --import tsx` from the
//! repository root against the built addon, with certificates this test makes with the core's CA.
//! Without node, tsx or the addon the tests print why they did not run, and fail under `CI=true`.

mod peers;
mod tls_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tls_common::{Device, Pki};
use ztmesh_core::link::{Established, LinkConfig, LinkError, LinkHandshake, Role};
use ztmesh_core::pki::{pem, PeerPolicy, SoftwareSigner, VerifyError};

const TIMEOUT: Duration = Duration::from_secs(30);
const TENANT: &str = "hotel-1";

/// The repository root, or why the TypeScript side cannot run here.
fn typescript_side() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().map_err(|e| format!("no repository root: {e}"))?;
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => return Err("`node` is not installed".into()),
    }
    if !root.join("node_modules/tsx").exists() {
        return Err("tsx is not installed (run npm install)".into());
    }
    let addon = std::fs::read_dir(&root)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().ends_with(".node"));
    if !addon {
        return Err("the addon is not built (run npm run build:native)".into());
    }
    Ok(root)
}

/// Runs `test` with the repository root, or says why it cannot: a failure under `CI=true`.
fn with_typescript(test_name: &str, test: impl FnOnce(&Path)) {
    match typescript_side() {
        Ok(root) => test(&root),
        Err(reason) => peers::missing(&format!("{test_name}: the TypeScript peer cannot run: {reason}")),
    }
}

/// The TypeScript peer: a child process, killed when dropped, and its output lines.
struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    _files: tempfile::TempDir,
}

impl Peer {
    fn start(root: &Path, pki: &Pki, device: &Device, env: &[(&str, String)]) -> Self {
        let files = tempfile::tempdir().unwrap();
        let chain: String = device.chain.iter().map(|der| pem::encode("CERTIFICATE", der)).collect();
        std::fs::write(files.path().join("chain.pem"), chain).unwrap();
        std::fs::write(files.path().join("key.der"), &device.pkcs8[..]).unwrap();
        std::fs::write(files.path().join("trust.pem"), pem::encode("CERTIFICATE", pki.root.certificate_der())).unwrap();
        let mut child = Command::new("node")
            .args(["--import", "tsx", "crates/ztmesh-core/tests/ts/link-peer.ts"])
            .current_dir(root)
            .env("LINK_DIR", files.path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines, _files: files }
    }

    /// The next line the peer prints (the test fails if it exits first).
    fn line(&mut self) -> String {
        self.lines.next().expect("the TypeScript peer exited early").unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(pki: &Pki, device: &Device, policy: PeerPolicy) -> Arc<LinkConfig> {
    let signer = Box::new(SoftwareSigner::from_pkcs8(&device.pkcs8).unwrap());
    let mut config = LinkConfig::new(device.chain.clone(), signer, pki.trust.clone()).unwrap();
    config.policy = policy;
    Arc::new(config)
}

fn tenant_policy(tenant: &str) -> PeerPolicy {
    PeerPolicy { expected_tenant: Some(tenant.into()), ..PeerPolicy::default() }
}

/// Runs `link` over `stream`: one feed per read, every answer written at once.
fn handshake(stream: &mut TcpStream, mut link: LinkHandshake) -> Result<Established, LinkError> {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let out = link.take_output();
        if !out.is_empty() {
            stream.write_all(&out).unwrap();
        }
        if link.is_established() {
            return link.into_established();
        }
        let n = stream.read(&mut buffer).expect("reading the handshake");
        if n == 0 {
            return Err(link.peer_closed());
        }
        link.feed(&buffer[..n])?;
    }
}

/// Reads records until `len` bytes of data have arrived.
fn receive(stream: &mut TcpStream, link: &mut Established, len: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let rest = std::mem::take(&mut link.rest);
    link.records.open(&rest, &mut data).unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    while data.len() < len {
        let n = stream.read(&mut buffer).expect("reading records");
        assert!(n > 0, "the TypeScript peer closed after {} of {len} bytes", data.len());
        link.records.open(&buffer[..n], &mut data).unwrap();
    }
    data
}

#[test]
fn a_rust_initiator_links_to_a_typescript_responder_and_exchanges_records_both_ways() {
    with_typescript("a_rust_initiator_links_to_a_typescript_responder", |root| {
        let pki = Pki::new("link interop");
        let (rust, typescript) = (pki.device("rust-gw", TENANT), pki.device("ts-node", TENANT));
        let mut peer = Peer::start(
            root,
            &pki,
            &typescript,
            &[("LINK_ROLE", "responder".into()), ("LINK_EXPECT_TENANT", TENANT.into())],
        );
        let port = peer.line().strip_prefix("PORT ").expect("PORT line").to_owned();
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        let policy = PeerPolicy { expected_device: Some("ts-node".into()), ..tenant_policy(TENANT) };
        let link = LinkHandshake::new(config(&pki, &rust, policy), Role::Initiator, None).unwrap();
        let mut link = handshake(&mut stream, link).expect("the handshake with the TypeScript responder");
        assert_eq!((link.peer.device_id.as_str(), link.peer.tenant.as_str()), ("ts-node", TENANT));
        assert!(link.protocol.is_hybrid());
        assert_eq!(peer.line(), format!("PEER rust-gw {TENANT} X25519MLKEM768"));
        // Several records each way (the echo comes back in the TypeScript side's own records).
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        link.records.seal(&sent, &mut wire).unwrap();
        stream.write_all(&wire).unwrap();
        assert_eq!(receive(&mut stream, &mut link, sent.len()), sent);
    });
}

#[test]
fn a_typescript_initiator_links_to_a_rust_responder_and_exchanges_records_both_ways() {
    with_typescript("a_typescript_initiator_links_to_a_rust_responder", |root| {
        let pki = Pki::new("link interop");
        let (rust, typescript) = (pki.device("rust-gw", TENANT), pki.device("ts-node", TENANT));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let mut peer = Peer::start(root, &pki, &typescript, &[("LINK_ROLE", "initiator".into()), ("LINK_PORT", port)]);
        let (mut stream, _) = listener.accept().unwrap();
        let link = LinkHandshake::new(config(&pki, &rust, tenant_policy(TENANT)), Role::Responder, None).unwrap();
        let mut link = handshake(&mut stream, link).expect("the handshake with the TypeScript initiator");
        assert_eq!(link.peer.device_id, "ts-node");
        assert_eq!(peer.line(), format!("PEER rust-gw {TENANT} X25519MLKEM768"));
        let question = receive(&mut stream, &mut link, b"hello from typescript".len());
        assert_eq!(question, b"hello from typescript");
        let mut wire = Vec::new();
        link.records.seal(b"hello from rust", &mut wire).unwrap();
        stream.write_all(&wire).unwrap();
        assert_eq!(peer.line(), "GOT hello from rust");
    });
}

#[test]
fn a_rust_responder_refuses_a_typescript_initiator_of_another_tenant_and_it_learns_it_was_refused() {
    with_typescript("a_rust_responder_refuses_a_typescript_initiator", |root| {
        let pki = Pki::new("link interop");
        let (rust, typescript) = (pki.device("rust-gw", TENANT), pki.device("ts-node", "hotel-2"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let mut peer = Peer::start(root, &pki, &typescript, &[("LINK_ROLE", "initiator".into()), ("LINK_PORT", port)]);
        let (mut stream, _) = listener.accept().unwrap();
        let link = LinkHandshake::new(config(&pki, &rust, tenant_policy(TENANT)), Role::Responder, None).unwrap();
        let refused = handshake(&mut stream, link).unwrap_err();
        assert_eq!(refused, LinkError::Peer(VerifyError::TenantMismatch));
        drop(stream);
        assert_eq!(peer.line(), "ERROR ERR_NOISE_REFUSED");
    });
}
