//! Interop with the TypeScript CA and quote exchange, from the core crate alone: a Rust device
//! (what a Rust gateway would be) enrolls against the real `ztmesh ca serve` over TLS 1.3 (an
//! anonymous client that authenticates the CA API under the root the token pins), checks its
//! certificate with `pki::verify_peer`, rotates it with a request signed under the ROTATION
//! label, and speaks the quote exchange with the TypeScript responder and verifier.
//!
//! Needs `node` and a built `dist/` (`npx tsc -p tsconfig.json`, with the addon built), and
//! `swtpm` for the genuine quote. Without them the test is skipped with a message, except under
//! `CI=true`, where it fails.

mod peers;
mod tpm_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tpm_common::Swtpm;
use ztmesh_core::attest::{verify_ak_binding_key, verify_quote, AkPublicKey, AttestError, PcrPolicy};
use ztmesh_core::enroll::{
    check_answer, rotation_message, Anchor, BoundQuote, EnrollRequest, EnrollResponse, EnrollmentToken,
    ExpectedCertificate, PcrSelection, QuoteAnswer, QuoteRequest, RotationRequest,
};
use ztmesh_core::pki::{
    build_csr, pem, verify_peer, CertSigner, CertificateRequest, PeerIdentity, PeerPolicy, RevocationSet,
    SoftwareSigner, TrustStore,
};
use ztmesh_core::tls::{AnonymousClientSettings, TlsClientContext};
use ztmesh_core::wire::labels::ROTATION;

const PASSPHRASE: &str = "interop-passphrase";
/// The most an answer of the CA may be; the client refuses more.
const MAX_HTTP_ANSWER: usize = 1 << 20;

#[test]
fn a_rust_device_enrolls_and_rotates_against_the_typescript_ca() {
    let Some(node) = Node::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    node.run(&["ca", "init", "--dir", path(&ca_dir), "--name", "Interop Hotel"]);
    let token = node.run(&[
        "ca",
        "token",
        "--dir",
        path(&ca_dir),
        "--device",
        "gw-rust",
        "--tenant",
        "hotel-1",
        "--roles",
        "gateway",
    ]);
    let server = node.serve(&ca_dir, "hotel-1");
    let trust = TrustStore::from_pem(&std::fs::read_to_string(ca_dir.join("trust.pem")).unwrap()).unwrap();

    // The token pins the root of the CA it came from, and names the device.
    let token = EnrollmentToken::decode(&token).unwrap();
    let root = pem::parse_certificates(&std::fs::read_to_string(ca_dir.join("trust.pem")).unwrap()).unwrap();
    let root_key = ztmesh_core::pki::inspect_certificate(&root[0]).unwrap().spki_sha256;
    assert_eq!(token.root_spki_sha256(), root_key);
    assert_eq!((token.tenant(), token.device_id()), ("hotel-1", "gw-rust"));

    // Enrollment: CSR and request from the core, answer decoded by the core. The request carries
    // the token's id and its proof over this CSR, never the token.
    let key = SoftwareSigner::generate().unwrap();
    let csr = build_csr(&key, "gw-rust", "hotel-1").unwrap();
    let request = EnrollRequest {
        token_id: token.id(),
        token_proof: token.prove_enrollment(&csr.pem, Some("gw-rust")).unwrap(),
        csr_pem: csr.pem.clone(),
        node_id: Some("gw-rust".into()),
        attestation: None,
    };
    // A man in the middle who captured the request redeems it with its own key first: refused.
    let thief = build_csr(&SoftwareSigner::generate().unwrap(), "gw-rust", "hotel-1").unwrap();
    let stolen = EnrollRequest { csr_pem: thief.pem.clone(), ..request.clone() };
    let (status, body) = post(&server, "/v1/enroll", &stolen.encode().unwrap());
    assert_eq!((status, error_code(&body).as_str()), (403, "ERR_TOKEN_PROOF"));

    let (status, body) = post(&server, "/v1/enroll", &request.encode().unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let enrolled = EnrollResponse::decode(&body).unwrap();
    let peer = check_certificate(&enrolled, &trust);
    // The device's own check, against the pinned root alone.
    let expected = ExpectedCertificate { device_id: "gw-rust", tenant: "hotel-1", csr_pem: &csr.pem };
    let accepted = check_answer(&enrolled, Anchor::RootKey(root_key), expected, SystemTime::now()).unwrap();
    assert_eq!(accepted.identity, peer);
    assert_eq!(accepted.root_pem.as_deref(), Some(pem::encode(pem::CERTIFICATE, &root[0]).as_str()));
    assert_eq!(peer.roles, ["gateway"]);
    assert_eq!(peer.spki_sha256, CertificateRequest::from_pem(&csr.pem).unwrap().spki_sha256());
    assert!(enrolled.config.as_ref().is_some_and(|c| c.crl_url.ends_with("/v1/crl")));

    // The token was single-use.
    let (status, body) = post(&server, "/v1/enroll", &request.encode().unwrap());
    assert_eq!((status, error_code(&body).as_str()), (409, "ERR_TOKEN_USED"));
    // A malformed request is the CA's ERR_BAD_REQUEST, and a field the codec does not know is one.
    let (status, body) = post(&server, "/v1/enroll", br#"{"token":"t","csr":"c","roles":["admin"]}"#);
    assert_eq!((status, error_code(&body).as_str()), (400, "ERR_BAD_REQUEST"));

    // Rotation onto a new key, signed by the current one under the ROTATION label.
    let next = SoftwareSigner::generate().unwrap();
    let next_csr = build_csr(&next, "gw-rust", "hotel-1").unwrap();
    let timestamp_ms = now_ms();
    let rotation = RotationRequest {
        certificate_pem: enrolled.certificate_pem.clone(),
        csr_pem: next_csr.pem.clone(),
        timestamp_ms,
        signature: key.sign(&rotation_message(timestamp_ms, &next_csr.pem)).unwrap(),
        attestation: None,
    };
    assert!(rotation.signed_message().starts_with(&ROTATION.prefix()));

    // The attacker's versions first: signed by another key, and signed over the body without the label.
    let forged = RotationRequest { signature: next.sign(&rotation.signed_message()).unwrap(), ..rotation.clone() };
    let (status, body) = post(&server, "/v1/rotate", &forged.encode().unwrap());
    assert_eq!((status, error_code(&body).as_str()), (401, "ERR_UNAUTHENTICATED"));
    let unlabelled_body = &rotation.signed_message()[ROTATION.prefix().len()..];
    let unlabelled = RotationRequest { signature: key.sign(unlabelled_body).unwrap(), ..rotation.clone() };
    let (status, body) = post(&server, "/v1/rotate", &unlabelled.encode().unwrap());
    assert_eq!((status, error_code(&body).as_str()), (401, "ERR_UNAUTHENTICATED"));

    let (status, body) = post(&server, "/v1/rotate", &rotation.encode().unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rotated = EnrollResponse::decode(&body).unwrap();
    let new_peer = check_certificate(&rotated, &trust);
    let expected = ExpectedCertificate { device_id: "gw-rust", tenant: "hotel-1", csr_pem: &next_csr.pem };
    assert_eq!(check_answer(&rotated, Anchor::Trust(&trust), expected, SystemTime::now()).unwrap().identity, new_peer);
    assert_eq!(new_peer.spki_sha256, CertificateRequest::from_pem(&next_csr.pem).unwrap().spki_sha256());
    assert_ne!(new_peer.serial, peer.serial);
    assert_eq!(new_peer.roles, ["gateway"]);

    // The same request again is a replay: the certificate already has its successor.
    let (status, body) = post(&server, "/v1/rotate", &rotation.encode().unwrap());
    assert_eq!((status, error_code(&body).as_str()), (409, "ERR_ALREADY_ROTATED"));
}

#[test]
fn the_quote_exchange_speaks_both_ways_with_the_typescript_side() {
    let Some(node) = Node::find() else { return };
    let exchange = node.dist.join("attestation/exchange.js");

    // The TypeScript responder (answerQuoteRequest, one request per connection) answers a
    // Rust-encoded request; its answer echoes what it decoded, so the Rust side sees both
    // directions of the codec.
    let responder = format!(
        r#"import {{ createServer }} from 'node:net'
           import {{ answerQuoteRequest }} from {exchange:?}
           const server = createServer((socket) => answerQuoteRequest(socket, async (request) => ({{
             akPublicPem: 'pcrs ' + request.pcrs.join(','), akBinding: request.nonce, attest: Buffer.from('attest'),
             signature: Buffer.from('signature'), pcrValues: Buffer.from(request.pcrs) }})))
           server.listen(0, '127.0.0.1', () => console.log(server.address().port))
           process.stdin.on('end', () => process.exit(0)).resume()"#
    );
    let mut child = node.script(&responder);
    let port: u16 = first_line(&mut child.0).trim().parse().unwrap();
    let mut link = TcpStream::connect(("127.0.0.1", port)).unwrap();
    link.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let nonce: Vec<u8> = (0u8..32).collect();
    let request = QuoteRequest { nonce: nonce.clone(), pcrs: PcrSelection::new(&[7, 0, 3]).unwrap() };
    link.write_all(&request.encode().unwrap()).unwrap();
    let mut reader = BufReader::new(link.try_clone().unwrap());
    let answer = QuoteAnswer::decode(read_line(&mut reader).as_bytes()).unwrap();
    let QuoteAnswer::Quote(quote) = answer else { panic!("expected a quote, got {answer:?}") };
    assert_eq!(quote.ak_public_pem, "pcrs 0,3,7");
    assert_eq!(quote.ak_binding, nonce);
    assert_eq!(quote.pcr_values, [0, 3, 7]);
    // The responder ended the exchange after its answer.
    assert_eq!(read_line(&mut reader), "");
    // A request the responder's codec refuses is answered with the code, not silence.
    let mut link = TcpStream::connect(("127.0.0.1", port)).unwrap();
    link.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = BufReader::new(link.try_clone().unwrap());
    let duplicate = String::from_utf8(request.encode().unwrap()).unwrap().replace("[0,3,7]", "[0,3,3]");
    link.write_all(duplicate.as_bytes()).unwrap();
    assert_eq!(
        QuoteAnswer::decode(read_line(&mut reader).as_bytes()).unwrap(),
        QuoteAnswer::Error { code: "ERR_ATTEST_MALFORMED".into() }
    );
    drop(child.0.stdin.take());
    assert!(child.0.wait().unwrap().success());

    // The TypeScript verifier (requestQuote) asks a Rust node, which decodes the request and
    // answers with a quote, then with an error.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let verifier = format!(
        r#"import {{ connect }} from 'node:net'
           import {{ requestQuote }} from {exchange:?}
           for (const round of [1, 2]) {{
             const socket = connect({port}, '127.0.0.1')
             await new Promise((resolve) => socket.once('connect', resolve))
             try {{
               const quote = await requestQuote(socket, {{ nonce: Buffer.alloc(20, round), pcrs: [23, 0] }}, 10000)
               console.log(JSON.stringify({{ pem: quote.akPublicPem, binding: Buffer.from(quote.akBinding).toString('hex'), pcrs: Buffer.from(quote.pcrValues).toString('hex') }}))
             }} catch (error) {{ console.log(JSON.stringify({{ code: error.code }})) }}
             socket.destroy()
           }}"#
    );
    let mut child = node.script(&verifier);
    for round in [1u8, 2] {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let request = QuoteRequest::decode(read_line(&mut reader).as_bytes()).unwrap();
        assert_eq!(request.nonce, vec![round; 20]);
        assert_eq!(request.pcrs.indices(), [0, 23]);
        let answer = if round == 1 {
            QuoteAnswer::Quote(BoundQuote {
                ak_public_pem: "rust".into(),
                ak_binding: request.nonce.clone(),
                attest: vec![1],
                signature: vec![2],
                pcr_values: request.pcrs.indices().to_vec(),
            })
        } else {
            QuoteAnswer::Error { code: "ERR_TPM_UNAVAILABLE".into() }
        };
        (&stream).write_all(&answer.encode().unwrap()).unwrap();
        let printed: serde_json::Value = serde_json::from_str(&first_line(&mut child.0)).unwrap();
        if round == 1 {
            assert_eq!(printed, serde_json::json!({ "pem": "rust", "binding": "01".repeat(20), "pcrs": "0017" }));
        } else {
            assert_eq!(printed, serde_json::json!({ "code": "ERR_TPM_UNAVAILABLE" }));
        }
    }
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn a_genuine_quote_from_the_typescript_responder_verifies_in_rust() {
    let Some(node) = Node::find() else { return };
    // Swtpm::start reports a missing swtpm through `peers` (a failure under CI).
    let Some(swtpm) = Swtpm::start() else { return };
    // A node as the TypeScript device runs it: device key and AK in the TPM, answering with
    // answerQuoteRequest, the handler of each stream of DeviceIdentity.answerQuotes.
    let responder = format!(
        r#"import {{ createServer }} from 'node:net'
           import {{ Tpm }} from {tpm:?}
           import {{ akBindingMessage }} from {attestation:?}
           import {{ answerQuoteRequest }} from {exchange:?}
           const tpm = Tpm.open({tcti:?})
           const key = tpm.loadKey(await tpm.createSigningKey())
           const ak = await tpm.createAttestationKey()
           const server = createServer((socket) => answerQuoteRequest(socket, async (request) => {{
             const quote = await tpm.quote(ak, request.nonce, request.pcrs)
             return {{ ...quote, akBinding: key.sign(akBindingMessage(quote.akPublicPem)) }}
           }}))
           server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({{ port: server.address().port, csr: key.buildCsr('node-1', 'hotel-1') }})))
           process.stdin.on('end', () => process.exit(0)).resume()"#,
        tpm = node.dist.join("primitives/tpm/index.js"),
        attestation = node.dist.join("attestation/index.js"),
        exchange = node.dist.join("attestation/exchange.js"),
        tcti = swtpm.tcti(),
    );
    let mut child = node.script(&responder);
    let ready: serde_json::Value = serde_json::from_str(&first_line(&mut child.0)).unwrap();
    let device_key = CertificateRequest::from_pem(ready["csr"].as_str().unwrap()).unwrap().public_key().to_vec();
    let mut link = TcpStream::connect(("127.0.0.1", ready["port"].as_u64().unwrap() as u16)).unwrap();
    link.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reader = BufReader::new(link.try_clone().unwrap());

    let nonce: Vec<u8> = (100u8..132).collect();
    link.write_all(&QuoteRequest { nonce: nonce.clone(), pcrs: PcrSelection::new(&[7, 0]).unwrap() }.encode().unwrap())
        .unwrap();
    let answer = QuoteAnswer::decode(read_line(&mut reader).as_bytes()).unwrap();
    let QuoteAnswer::Quote(quote) = answer else { panic!("expected a quote, got {answer:?}") };
    let ak = AkPublicKey::from_pem(&quote.ak_public_pem).unwrap();
    let info =
        verify_quote(&ak, &quote.attest, &quote.signature, &quote.pcr_values, &nonce, &PcrPolicy::default()).unwrap();
    let quoted: Vec<u8> = info.pcrs.iter().map(|p| p.index).collect();
    assert_eq!(quoted, [0, 7]);
    verify_ak_binding_key(&device_key, &ak, &quote.ak_binding).unwrap();
    // The same answer is refused for another nonce, and its binding for another key.
    let other: Vec<u8> = (0u8..32).collect();
    assert_eq!(
        verify_quote(&ak, &quote.attest, &quote.signature, &quote.pcr_values, &other, &PcrPolicy::default())
            .unwrap_err(),
        AttestError::Nonce
    );
    let stranger = SoftwareSigner::generate().unwrap();
    assert_eq!(verify_ak_binding_key(stranger.public_key(), &ak, &quote.ak_binding).unwrap_err(), AttestError::Binding);
    drop(child.0.stdin.take());
    assert!(child.0.wait().unwrap().success());
}

/// `verify_peer` over the answer's chain, as exactly the enrolled device; the answer's serial
/// and expiry must be the certificate's.
fn check_certificate(answer: &EnrollResponse, trust: &TrustStore) -> PeerIdentity {
    let mut chain = pem::parse_certificates(&answer.certificate_pem).unwrap();
    chain.extend(pem::parse_certificates(&answer.ca_chain_pem).unwrap());
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let policy = PeerPolicy {
        expected_device: Some("gw-rust".into()),
        expected_tenant: Some("hotel-1".into()),
        ..PeerPolicy::default()
    };
    let peer = verify_peer(&chain, trust, &RevocationSet::new(), &policy, SystemTime::now()).unwrap();
    let spelled = |serial: &str| serial.trim_start_matches('0').to_ascii_lowercase().replace(':', "");
    assert_eq!(spelled(&peer.serial), spelled(&answer.serial));
    let not_after_ms = peer.not_after.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(not_after_ms.abs_diff(answer.not_after_ms) < 1000, "{not_after_ms} vs {}", answer.not_after_ms);
    peer
}

/// `node` and the built CLI, or `None` with a message (a failure under `CI=true`).
struct Node {
    main: PathBuf,
    dist: PathBuf,
}

impl Node {
    fn find() -> Option<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
        let dist = root.join("dist");
        let main = dist.join("cli/main.js");
        let has_node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
        let missing = match (has_node, main.exists()) {
            (false, _) => "node is not installed",
            (true, false) => "dist/ is not built (npx tsc -p tsconfig.json)",
            (true, true) => return Some(Self { main, dist }),
        };
        peers::missing(&format!("the TypeScript peer cannot run: {missing}"));
        None
    }

    fn command(&self) -> Command {
        let mut command = Command::new("node");
        command.env("ZTMESH_CA_PASSPHRASE", PASSPHRASE).stdin(Stdio::null()).stderr(Stdio::inherit());
        command
    }

    /// Runs a CLI command to its end and returns its stdout, trimmed.
    fn run(&self, args: &[&str]) -> String {
        let output = self.command().arg(&self.main).args(args).stdout(Stdio::piped()).output().unwrap();
        assert!(output.status.success(), "ztmesh {args:?} failed");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Starts `ztmesh ca serve` on a free loopback port.
    fn serve(&self, dir: &Path, tenant: &str) -> Server {
        let mut child = self
            .command()
            .arg(&self.main)
            .args(["ca", "serve", "--dir", path(dir), "--listen", "127.0.0.1:0", "--tenant", tenant])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        let child = Running(child);
        let listening: serde_json::Value = serde_json::from_str(&line).unwrap();
        let url = listening["listening"].as_str().unwrap();
        assert!(url.starts_with("https://"), "{url}");
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        let roots = pem::parse_certificates(&std::fs::read_to_string(dir.join("trust.pem")).unwrap()).unwrap();
        let root_key = ztmesh_core::pki::inspect_certificate(&roots[0]).unwrap().spki_sha256;
        Server { child, port, root_key, tenant: tenant.to_owned() }
    }

    /// Runs an ES module script with stdin and stdout piped.
    fn script(&self, source: &str) -> Running {
        Running(
            self.command()
                .args(["--input-type=module", "-e", source])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }
}

/// The CA server.
struct Server {
    #[allow(dead_code, reason = "held so the server stops with the test")]
    child: Running,
    port: u16,
    /// The pinned root's key: the CA API must prove it is under it.
    root_key: [u8; 32],
    tenant: String,
}

/// A child process, killed when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs a JSON body with a minimal HTTP/1.1 client over TLS 1.3: an anonymous client that
/// authenticates the server as the CA API (device `ca`, role `ca`, the server's tenant) under the
/// pinned root before the request leaves. Returns the status and the body.
fn post(server: &Server, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let port = server.port;
    let mut settings = AnonymousClientSettings::new(server.root_key);
    settings.policy = PeerPolicy { expected_tenant: Some(server.tenant.clone()), ..PeerPolicy::default() };
    settings.required_role = Some("ca".into());
    let mut session = TlsClientContext::anonymous(settings).unwrap().connect_to("ca").unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Held back by the session until the server is authenticated.
    session.write_plaintext(head.as_bytes()).unwrap();
    session.write_plaintext(body).unwrap();
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        stream.write_all(&session.take_outgoing()).unwrap();
        if session.peer_closed() {
            break;
        }
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        session.read_tls(&buf[..n]).unwrap();
        session.read_plaintext(&mut answer);
        assert!(answer.len() <= MAX_HTTP_ANSWER, "the answer is too large");
    }
    assert!(session.peer().is_some_and(|peer| peer.device_id == "ca"), "the CA API was authenticated");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP head");
    let head = std::str::from_utf8(&answer[..split]).unwrap().to_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
        })
        .expect("the CA sends a Content-Length");
    let body = answer[split + 4..].to_vec();
    assert_eq!(body.len(), length);
    (status, body)
}

/// The `code` of a `{code, message}` error answer.
fn error_code(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    value["code"].as_str().unwrap_or_default().to_owned()
}

fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}
