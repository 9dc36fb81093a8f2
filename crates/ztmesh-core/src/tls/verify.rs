//! The rustls certificate verifiers, both deciding through
//! [`verify_peer`](crate::pki::verify_peer) under the context's swappable trust.
//!
//! A context owns one [`PeerVerifier`]: its trust (`pki::snapshot`: anchors, revocations and the
//! verdicts reached under them, swapped whole by an update and read by every decision at the
//! moment it is made) and the context's [`PeerPolicy`]. Policy is fixed per context and a
//! snapshot's trust and revocations never change, so a reused verdict is the verdict
//! `verify_peer` would reach again; an update starts a snapshot with no verdicts, so nothing
//! decided before a revocation survives it. This is what lets a session re-establish its peer
//! after every handshake, full or resumed, without paying for the chain twice (127 µs in release
//! builds on the reference machine).
//!
//! The client side's rustls verifier is shared by every connection of a context (rustls resumes a
//! session only with the verifier that stored it), so the device a connection expects travels in
//! the `ServerName`: `<hex of the device id>.dev.ztmesh.invalid`, or `any.ztmesh.invalid`. The name
//! is also the key of the client's ticket store, and is never sent (SNI is off).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerMisbehaved, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::error::certificate_error;
use super::TlsError;
use crate::enroll::pinned_root;
use crate::pki::snapshot::SharedTrust;
use crate::pki::{verify_peer, PeerIdentity, PeerPolicy, RequiredUsage, RevocationSet, TrustStore, VerifyError};

/// The suffix of the server names that carry an expected device.
const DEVICE_NAME_SUFFIX: &str = ".dev.ztmesh.invalid";
/// The server name of a connection that accepts any device of the tenant.
const ANY_DEVICE_NAME: &str = "any.ztmesh.invalid";
/// Hex characters per label of an encoded device id (DNS labels hold at most 63).
const LABEL_HEX: usize = 60;

/// Trust anchors, revocations and policy: everything a context decides peers with.
pub(crate) struct PeerVerifier {
    trust: SharedTrust,
    policy: PeerPolicy,
    /// Set for a client that knows only the SHA-256 of its root's key (see [`Self::pinned_root`]).
    root_key: Option<[u8; 32]>,
    /// A role the peer's certificate must carry.
    required_role: Option<String>,
    /// Whether a client may present no certificate at all (a server with optional client auth).
    anonymous_clients: bool,
}

impl PeerVerifier {
    /// A verifier requiring `usage` from peers; the rest of `policy` is kept as given.
    pub(crate) fn new(trust: TrustStore, revocations: RevocationSet, policy: PeerPolicy, usage: RequiredUsage) -> Self {
        let policy = PeerPolicy { required_usage: usage, ..policy };
        Self {
            trust: SharedTrust::new(trust, revocations),
            policy,
            root_key: None,
            required_role: None,
            anonymous_clients: false,
        }
    }

    /// A verifier of servers whose chain must end in the root whose SubjectPublicKeyInfo hashes
    /// to `root_key`, found in the chain the server presents (as
    /// [`check_answer`](crate::enroll::check_answer) finds it in an answer), and whose leaf
    /// carries `required_role`.
    pub(crate) fn pinned_root(root_key: [u8; 32], policy: PeerPolicy, required_role: Option<String>) -> Self {
        let mut verifier = Self::new(TrustStore::empty(), RevocationSet::new(), policy, RequiredUsage::ServerAuth);
        verifier.root_key = Some(root_key);
        verifier.required_role = required_role;
        verifier
    }

    /// Lets clients present no certificate: their sessions are established without a peer.
    pub(crate) fn allowing_anonymous_clients(mut self) -> Self {
        self.anonymous_clients = true;
        self
    }

    /// Whether a client may present no certificate.
    pub(crate) fn allows_anonymous_clients(&self) -> bool {
        self.anonymous_clients
    }

    /// Replaces the revocations; the trust anchors stay.
    pub(crate) fn set_revocations(&self, revocations: RevocationSet) {
        self.trust.set_revocations(revocations);
    }

    /// Replaces the trust anchors; the revocations stay.
    pub(crate) fn set_trust(&self, trust: TrustStore) {
        self.trust.set_trust(trust);
    }

    /// The identity of the peer presenting `chain` (leaf first) under the current snapshot at
    /// `now`: a verdict this snapshot already reached, or [`verify_peer`](crate::pki::verify_peer)'s.
    ///
    /// The verifiers call it during a handshake; a session calls it again once the handshake is
    /// complete (a resumed handshake never reached the verifiers), and gets the verifier's verdict
    /// back unless the snapshot changed in between.
    pub(crate) fn identity(
        &self,
        chain: &[&[u8]],
        expected_device: Option<&str>,
        now: SystemTime,
    ) -> Result<PeerIdentity, VerifyError> {
        let expected = expected_device
            .map(|device| PeerPolicy { expected_device: Some(device.to_owned()), ..self.policy.clone() });
        let policy = expected.as_ref().unwrap_or(&self.policy);
        let identity = match self.root_key {
            None => self.trust.decide(chain, policy, now)?.0,
            Some(pin) => {
                // The pinned root, taken from the presented chain: a chain without it has no path.
                // The revocations are this context's, as for any other verifier.
                let root = pinned_root(chain, &pin).map_err(|_| VerifyError::Chain)?;
                let trust = TrustStore::from_der(&[root]).map_err(|_| VerifyError::Chain)?;
                verify_peer(chain, &trust, &self.trust.revocations(), policy, now)?
            }
        };
        if let Some(role) = &self.required_role {
            if !identity.roles.iter().any(|r| r == role) {
                return Err(VerifyError::KeyUsage);
            }
        }
        Ok(identity)
    }
}

impl std::fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerVerifier").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// The server side's verifier of client certificates: clientAuth, mandatory unless the verifier
/// allows anonymous clients.
#[derive(Debug)]
pub(crate) struct ClientAuth(pub(crate) Arc<PeerVerifier>);

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.0.allows_anonymous_clients()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let chain = chain_of(end_entity, intermediates);
        self.0.identity(&chain, None, system_time(now)).map_err(certificate_error)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// The client side's verifier of server certificates: serverAuth, and the device encoded in the
/// server name when the connection expects one.
#[derive(Debug)]
pub(crate) struct ServerAuth(pub(crate) Arc<PeerVerifier>);

impl ServerCertVerifier for ServerAuth {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let expected_device =
            expected_device(server_name).ok_or_else(|| Error::General("unexpected server name".into()))?;
        let chain = chain_of(end_entity, intermediates);
        self.0.identity(&chain, expected_device.as_deref(), system_time(now)).map_err(certificate_error)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// The server name a client connection uses for `expected_device` (see the module docs).
pub(crate) fn server_name(expected_device: Option<&str>) -> Result<ServerName<'static>, TlsError> {
    let name = match expected_device {
        None => ANY_DEVICE_NAME.to_owned(),
        Some(device) => {
            if device.is_empty() || device.len() > 64 {
                return Err(TlsError::Config("expected device id must be 1 to 64 bytes"));
            }
            let hex = crate::pki::hex_lower(device.as_bytes());
            let labels: Vec<&str> =
                hex.as_bytes().chunks(LABEL_HEX).filter_map(|c| std::str::from_utf8(c).ok()).collect();
            format!("{}{DEVICE_NAME_SUFFIX}", labels.join("."))
        }
    };
    let name = DnsName::try_from(name).map_err(|_| TlsError::Internal)?;
    Ok(ServerName::DnsName(name))
}

/// The device a server name built by [`server_name`] expects: `Some(None)` for any device,
/// `None` for a name it did not build.
pub(crate) fn expected_device(name: &ServerName<'_>) -> Option<Option<String>> {
    let ServerName::DnsName(name) = name else { return None };
    let name = name.as_ref();
    if name == ANY_DEVICE_NAME {
        return Some(None);
    }
    let hex: Vec<u8> = name.strip_suffix(DEVICE_NAME_SUFFIX)?.bytes().filter(|b| *b != b'.').collect();
    String::from_utf8(decode_hex(&hex)?).ok().map(Some)
}

/// Decodes hexadecimal; `None` for odd lengths and non-hex digits.
fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: &u8| char::from(*c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    hex.chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(digit(high)? << 4 | digit(low)?),
            _ => None,
        })
        .collect()
}

/// The presented chain, leaf first.
fn chain_of<'a>(end_entity: &'a CertificateDer<'_>, intermediates: &'a [CertificateDer<'_>]) -> Vec<&'a [u8]> {
    std::iter::once(end_entity.as_ref()).chain(intermediates.iter().map(|c| c.as_ref())).collect()
}

/// rustls' clock as a `SystemTime`.
fn system_time(now: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(now.as_secs())
}

/// CertificateVerify: `ecdsa_secp256r1_sha256` only, under the P-256 key of the certificate
/// (which the chain verification already accepted).
fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    if dss.scheme != SignatureScheme::ECDSA_NISTP256_SHA256 {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    let point = p256_point(cert.as_ref()).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, dss.signature())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))?;
    Ok(HandshakeSignatureValid::assertion())
}

/// The uncompressed P-256 point of a certificate's key, if that is what it holds.
fn p256_point(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let spki = cert.public_key();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    let point = spki.subject_public_key.data.as_ref();
    let is_p256 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && curve.as_ref() == Some(&OID_EC_P256)
        && point.len() == 65
        && point.first() == Some(&0x04);
    is_p256.then(|| point.to_vec())
}

fn tls12_refused() -> Error {
    Error::General("TLS 1.2 is not supported".into())
}
