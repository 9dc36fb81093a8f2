//! Interoperability of the PKI with the `openssl` command-line tool (OpenSSL 3).
//!
//! OpenSSL makes CSRs the CA must accept (ignoring everything they ask for but the key), and
//! it must accept what the CA makes: certificates, CRLs, and chains it verifies with CRL
//! checking, rejecting a revoked certificate.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use ztmesh_core::pki::{
    verify_peer, CaParams, CertificateAuthority, CertificateRequest, CrlEntry, CrlParams, DeviceCertRequest,
    PeerPolicy, PkiError, RevocationReason, RevocationSet, TrustStore, VerifiedCrl,
};

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command-line tool must be installed (Debian package `openssl`)")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "openssl failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An OpenSSL-made P-256 CSR asking for much more than it will get.
fn greedy_openssl_csr(dir: &Path, name: &str) -> String {
    let csr = format!("{name}.csr");
    let key = format!("{name}.key");
    stdout_of(&openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/O=Evil Corp/OU=other-tenant/CN=evil",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=DNS:evil.example,URI:ztmesh://other-tenant/evil",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "extendedKeyUsage=codeSigning",
        ],
    ));
    std::fs::read_to_string(dir.join(csr)).unwrap()
}

struct Setup {
    dir: TempDir,
    root: CertificateAuthority,
    site: CertificateAuthority,
}

fn setup() -> Setup {
    let dir = TempDir::new().unwrap();
    let root =
        CertificateAuthority::create_root(&CaParams::root("ztmesh root", "ztmesh")).unwrap().authority().unwrap();
    let site = root.create_site_ca(&CaParams::site("gateway 1", "ztmesh")).unwrap().authority().unwrap();
    std::fs::write(dir.path().join("root.pem"), root.certificate_pem()).unwrap();
    std::fs::write(dir.path().join("site.pem"), site.certificate_pem()).unwrap();
    Setup { dir, root, site }
}

#[test]
fn openssl_csr_is_accepted_but_not_honoured() {
    let s = setup();
    let csr = CertificateRequest::from_pem(&greedy_openssl_csr(s.dir.path(), "device")).unwrap();
    assert_eq!(csr.requested_common_name(), Some("evil"));
    let issued = s.site.issue(&csr, &DeviceCertRequest::new("tablet-1", "property-123")).unwrap();
    std::fs::write(s.dir.path().join("device.pem"), &issued.pem).unwrap();

    let text = stdout_of(&openssl(s.dir.path(), &["x509", "-in", "device.pem", "-noout", "-text"]));
    for expected in [
        "CA:FALSE",
        "Digital Signature",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "URI:ztmesh://property-123/tablet-1",
        "CN = tablet-1",
        "OU = property-123",
        "O = ztmesh",
        "ecdsa-with-SHA256",
        "prime256v1",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    for refused in ["evil", "Evil", "CA:TRUE", "Certificate Sign", "Code Signing", "other-tenant"] {
        assert!(!text.contains(refused), "{refused:?} was honoured:\n{text}");
    }

    // With roles, OpenSSL shows one SAN URI per role after the device URI, and no private extension.
    let mut request = DeviceCertRequest::new("tablet-2", "property-123");
    request.roles = vec!["staff".into(), "pos:cashier".into()];
    let with_roles = s.site.issue(&csr, &request).unwrap();
    std::fs::write(s.dir.path().join("roles.pem"), &with_roles.pem).unwrap();
    let text = stdout_of(&openssl(s.dir.path(), &["x509", "-in", "roles.pem", "-noout", "-text"]));
    let san = "URI:ztmesh://property-123/tablet-2, URI:urn:ztmesh:role:staff, URI:urn:ztmesh:role:pos:cashier";
    assert!(text.contains(san), "{text}");
    assert!(!text.contains("2.25."), "{text}");

    // The CA certificates parse too.
    for ca in ["root.pem", "site.pem"] {
        let text = stdout_of(&openssl(s.dir.path(), &["x509", "-in", ca, "-noout", "-text"]));
        assert!(text.contains("CA:TRUE") && text.contains("Certificate Sign, CRL Sign"), "{text}");
    }

    // And ztmesh verifies it.
    let trust = TrustStore::from_der(&[s.root.certificate_der()]).unwrap();
    let peer = verify_peer(
        &[&issued.der, s.site.certificate_der()],
        &trust,
        &RevocationSet::new(),
        &PeerPolicy::default(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!((peer.device_id.as_str(), peer.tenant.as_str()), ("tablet-1", "property-123"));
}

#[test]
fn openssl_verifies_chains_and_honours_the_crl() {
    let s = setup();
    let good = s
        .site
        .issue(
            &CertificateRequest::from_pem(&greedy_openssl_csr(s.dir.path(), "good")).unwrap(),
            &DeviceCertRequest::new("good", "t"),
        )
        .unwrap();
    let bad = s
        .site
        .issue(
            &CertificateRequest::from_pem(&greedy_openssl_csr(s.dir.path(), "bad")).unwrap(),
            &DeviceCertRequest::new("bad", "t"),
        )
        .unwrap();
    std::fs::write(s.dir.path().join("good.pem"), &good.pem).unwrap();
    std::fs::write(s.dir.path().join("bad.pem"), &bad.pem).unwrap();

    let mut params = CrlParams::new(7, SystemTime::now());
    params.entries.push(CrlEntry {
        serial: hex::decode(&bad.serial).unwrap(),
        revoked_at: SystemTime::now() - Duration::from_secs(60),
        reason: RevocationReason::KeyCompromise,
    });
    let crl = s.site.issue_crl(&params).unwrap();
    std::fs::write(s.dir.path().join("crl.pem"), &crl.pem).unwrap();

    let text = stdout_of(&openssl(s.dir.path(), &["crl", "-in", "crl.pem", "-noout", "-text"]));
    assert!(text.contains("Version 2") && text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.to_lowercase().replace(':', "").contains(&bad.serial), "{text}");
    // OpenSSL checks the CRL's signature against the site CA.
    let crl_verify = openssl(s.dir.path(), &["crl", "-in", "crl.pem", "-noout", "-CAfile", "site.pem"]);
    assert!(String::from_utf8_lossy(&crl_verify.stderr).contains("verify OK"), "{crl_verify:?}");

    let verify = |leaf: &str| {
        openssl(
            s.dir.path(),
            &["verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "site.pem", "-CRLfile", "crl.pem", leaf],
        )
    };
    let ok = verify("good.pem");
    assert!(ok.status.success(), "{ok:?}");
    let revoked = verify("bad.pem");
    assert!(!revoked.status.success());
    let message = format!("{}{}", String::from_utf8_lossy(&revoked.stdout), String::from_utf8_lossy(&revoked.stderr));
    assert!(message.contains("certificate revoked"), "{message}");

    // ztmesh agrees once the CRL is in its revocation set.
    let trust = TrustStore::from_der(&[s.root.certificate_der()]).unwrap();
    let issuer = trust.issuer(&[s.site.certificate_der()], SystemTime::now()).unwrap();
    let mut set = RevocationSet::new();
    set.add_crl(&VerifiedCrl::from_pem(&crl.pem, &issuer).unwrap(), SystemTime::now()).unwrap();
    let policy = PeerPolicy::default();
    let check = |der: &[u8]| verify_peer(&[der, s.site.certificate_der()], &trust, &set, &policy, SystemTime::now());
    assert!(check(&good.der).is_ok());
    assert_eq!(check(&bad.der).unwrap_err().to_string(), "certificate revoked");
}

#[test]
fn openssl_csrs_with_other_keys_or_bad_signatures_are_refused() {
    let dir = TempDir::new().unwrap();
    let make = |name: &str, key_args: &[&str]| {
        let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=x"];
        args.extend_from_slice(key_args);
        let out = format!("{name}.csr");
        let key = format!("{name}.key");
        args.extend_from_slice(&["-keyout", &key, "-out", &out]);
        stdout_of(&openssl(dir.path(), &args));
        std::fs::read_to_string(dir.path().join(&out)).unwrap()
    };
    let ed25519 = make("ed", &["-newkey", "ed25519"]);
    let p384 = make("p384", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]);
    let rsa = make("rsa", &["-newkey", "rsa:2048"]);
    for pem in [&ed25519, &p384, &rsa] {
        assert_eq!(CertificateRequest::from_pem(pem), Err(PkiError::UnsupportedKey));
    }
    // A P-256 CSR whose signed subject was altered after signing.
    let good = make("p256", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let der_out = openssl(dir.path(), &["req", "-in", "p256.csr", "-outform", "DER"]);
    let mut der = der_out.stdout.clone();
    assert!(CertificateRequest::from_der(&der).is_ok(), "{good}");
    let at = der.windows(3).position(|w| w == [0x0c, 0x01, b'x']).unwrap() + 2;
    der[at] = b'y';
    assert_eq!(CertificateRequest::from_der(&der), Err(PkiError::CsrSignature));
}
