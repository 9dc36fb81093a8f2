//! The one registry of domain-separation labels: every string ztmesh signs, MACs or hashes
//! under to say what the bytes are for.
//!
//! A device key signs many things: CSRs, TLS handshakes, the binding of a Noise static key,
//! rotation requests, the binding of an attestation key, and (later) offers, gossip, bundles
//! and policy documents. A label in front of every signed message keeps a signature made for
//! one purpose from being accepted for another. Keeping them all here makes two facts
//! checkable in one place: no two purposes share a label, and no label can run into its body.
//!
//! A signature under a [`Label`] covers [`Label::message`]: `label ‖ 0x00 ‖ body`. A label
//! never contains `0x00`, so the terminator makes the encoding prefix-free: no
//! `(label, body)` pair yields the bytes of another pair with a different label.
//!
//! Labels are part of the wire format: one that has shipped never changes. A new meaning
//! gets a new label with a new version suffix.

/// A domain-separation label: what a signed (or MACed, or hashed) message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(&'static str);

impl Label {
    /// The label's text.
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The label's bytes, without the terminator.
    pub const fn as_bytes(self) -> &'static [u8] {
        self.0.as_bytes()
    }

    /// The bytes a signature under this label covers: `label ‖ 0x00 ‖ body`.
    pub fn message(self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 1 + body.len());
        out.extend_from_slice(self.0.as_bytes());
        out.push(0);
        out.extend_from_slice(body);
        out
    }

    /// The label with its terminator, `label ‖ 0x00`: the prefix of every [`Self::message`].
    pub fn prefix(self) -> Vec<u8> {
        self.message(&[])
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A device's certificate key over SHA-256 of its attestation key's SubjectPublicKeyInfo: "this
/// AK speaks for me" ([`crate::attest`]).
pub const AK_BINDING: Label = Label("ztmesh-ak-binding-v1");

/// A device's certificate key over the Noise static public key of one link: "this Noise session
/// is mine" (the Noise link's identity binding).
pub const NOISE_STATIC_KEY: Label = Label("ztmesh-noise-static-key-v1");

/// A device's current certificate key over a rotation request: "replace my certificate with one
/// for this CSR" (the body is [`crate::enroll::rotation_message`]'s: time ‖ SHA-256 of the CSR).
pub const ROTATION: Label = Label("ztmesh-rotate-v1");

/// A device key over a local challenge, to check that a stored certificate is for that key.
pub const KEY_CHECK: Label = Label("ztmesh-key-check-v1");

/// The associated data of the keystore's key-check record (AES-256-GCM under the store key).
/// Shipped on disk as `ztmesh-keystore key-check\0`: the spelling predates the `-v1` convention
/// and cannot change without breaking existing keystore files.
pub const KEYSTORE_KEY_CHECK: Label = Label("ztmesh-keystore key-check");

/// The associated data of each keystore entry's seal (see [`KEYSTORE_KEY_CHECK`] on spelling).
pub const KEYSTORE_ENTRY: Label = Label("ztmesh-keystore entry");

/// The associated data of the keystore file's seal (see [`KEYSTORE_KEY_CHECK`] on spelling).
pub const KEYSTORE_FILE: Label = Label("ztmesh-keystore file");

/// A signed object made by tests and examples ([`crate::wire::signed`]). No protocol accepts it:
/// it lets the binding's tests exercise signed objects across the boundary before any protocol
/// signs under a label of its own.
pub const TEST_OBJECT: Label = Label("ztmesh-test-object-v1");

/// A second label for tests and examples ([`TEST_OBJECT`]), so that they can show an object
/// signed for one purpose being refused for another.
pub const TEST_OBJECT_OTHER: Label = Label("ztmesh-test-object-other-v1");

/// A node's key over an audit checkpoint: "my audit log had this many records, ending with this
/// hash" ([`crate::wire::checkpoint`]).
pub const AUDIT_CHECKPOINT: Label = Label("ztmesh-audit-checkpoint-v1");

/// A device's key over its presence lease: "I am reachable through this hub until then"
/// ([`crate::wire::presence`]). Hubs relay leases; receivers verify them.
pub const PRESENCE: Label = Label("ztmesh-presence-v1");

/// The prologue of every Noise link handshake (as [`Label::prefix`]): both sides bind it into
/// the handshake hash, so a link speaking another version of the link protocol fails at the
/// first authenticated message ([`crate::link`]).
pub const NOISE_LINK_PROLOGUE: Label = Label("ztmesh-noise-link-v2");

/// HKDF-SHA256 `info` deriving an enrollment token's id (what the CA stores and looks it up by)
/// from the token's secret ([`crate::enroll::EnrollmentToken`]).
pub const ENROLL_TOKEN_ID: Label = Label("ztmesh-enroll-token-id-v1");

/// HKDF-SHA256 `info` deriving, from an enrollment token's secret, the seed of the Ed25519 key
/// that proves the token's holder made a request ([`ENROLL_PROOF`], [`NONCE_PROOF`]).
pub const ENROLL_TOKEN_KEY: Label = Label("ztmesh-enroll-token-key-v1");

/// A token's proof key over an enrollment request: "the holder of this token asks for a
/// certificate for this CSR" (the body is SHA-256 of the CSR ‖ the node id, if any).
pub const ENROLL_PROOF: Label = Label("ztmesh-enroll-proof-v1");

/// A token's proof key over a nonce request: "the holder of this token asks for an attestation
/// nonce for this node" (the body is the node id).
pub const NONCE_PROOF: Label = Label("ztmesh-nonce-proof-v1");

/// A device's current certificate key over a nonce request: "give me an attestation nonce for
/// this node, which I am" (the body is [`crate::enroll::nonce_request_message`]'s: time ‖ node
/// id). How an enrolled device, whose token is spent, asks for the nonce of an attested rotation.
pub const NONCE_BY_CERTIFICATE: Label = Label("ztmesh-nonce-by-certificate-v1");

/// A device's key over a WebRTC offer: "I, `from`, offer this session description to `to`"
/// ([`crate::signal`]). The SDP is under the signature, so its DTLS fingerprint and ICE
/// credentials are bound to the device's identity.
pub const OFFER: Label = Label("ztmesh-offer-v1");

/// A device's key over a WebRTC answer to one offer (named by its signed-object digest)
/// ([`crate::signal`]).
pub const ANSWER: Label = Label("ztmesh-answer-v1");

/// A device's key over one trickled ICE candidate of the session of one offer
/// ([`crate::signal`]).
pub const ICE_CANDIDATE: Label = Label("ztmesh-ice-candidate-v1");

/// A client's key over a hub's fresh challenge ([`crate::wire::challenge`]): how a browser,
/// whose WebCrypto key cannot be a TLS client certificate, proves to the hub that it holds the
/// key of the chain it presents.
pub const HUB_CHALLENGE: Label = Label("ztmesh-hub-challenge-v1");

/// Every label in this registry. A label missing here is a label no test checks.
pub const ALL: &[Label] = &[
    AK_BINDING,
    NOISE_STATIC_KEY,
    ROTATION,
    KEY_CHECK,
    KEYSTORE_KEY_CHECK,
    KEYSTORE_ENTRY,
    KEYSTORE_FILE,
    TEST_OBJECT,
    TEST_OBJECT_OTHER,
    NOISE_LINK_PROLOGUE,
    ENROLL_TOKEN_ID,
    ENROLL_TOKEN_KEY,
    ENROLL_PROOF,
    NONCE_PROOF,
    NONCE_BY_CERTIFICATE,
    AUDIT_CHECKPOINT,
    OFFER,
    ANSWER,
    ICE_CANDIDATE,
    PRESENCE,
    HUB_CHALLENGE,
];

/// The labels a [`crate::wire::SignedObject`] may be signed under, by the short name callers
/// outside the core (the binding, configuration) use for them. Every other label is used by
/// one fixed protocol only, and a signed object can never be made under it.
pub const SIGNED_OBJECTS: &[(&str, Label)] = &[
    ("test", TEST_OBJECT),
    ("test-other", TEST_OBJECT_OTHER),
    ("audit-checkpoint", AUDIT_CHECKPOINT),
    ("offer", OFFER),
    ("answer", ANSWER),
    ("candidate", ICE_CANDIDATE),
    ("presence", PRESENCE),
    ("hub-challenge", HUB_CHALLENGE),
];

/// Whether a [`crate::wire::SignedObject`] may be signed under `label` ([`SIGNED_OBJECTS`]).
pub fn is_signed_object(label: Label) -> bool {
    SIGNED_OBJECTS.iter().any(|(_, l)| *l == label)
}

/// The signed-object label called `name` in [`SIGNED_OBJECTS`], if any.
pub fn signed_object(name: &str) -> Option<Label> {
    SIGNED_OBJECTS.iter().find(|(n, _)| *n == name).map(|(_, label)| *label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_printable_and_unterminated() {
        for (i, label) in ALL.iter().enumerate() {
            assert!(label.as_str().starts_with("ztmesh-"), "{label}");
            assert!(label.as_bytes().iter().all(|b| b.is_ascii_graphic() || *b == b' '), "{label}");
            assert!(!label.as_bytes().contains(&0), "{label}");
            assert!(ALL[..i].iter().all(|other| other != label), "{label} is registered twice");
        }
    }

    #[test]
    fn signed_object_labels_are_registered_and_found_by_name_only() {
        for (name, label) in SIGNED_OBJECTS {
            assert!(ALL.contains(label), "{label}");
            assert_eq!(signed_object(name), Some(*label));
        }
        assert_eq!(signed_object("test"), Some(TEST_OBJECT));
        // A label's text is not a name, and fixed-protocol labels are never reachable.
        assert_eq!(signed_object(TEST_OBJECT.as_str()), None);
        assert_eq!(signed_object("rotate"), None);
        assert_eq!(signed_object(ROTATION.as_str()), None);
        assert!(is_signed_object(TEST_OBJECT) && !is_signed_object(NOISE_STATIC_KEY));
    }

    #[test]
    fn messages_are_prefix_free_across_labels() {
        // With the terminator, no message under one label starts with another label's prefix.
        for a in ALL {
            for b in ALL {
                if a != b {
                    assert!(!a.message(b"body").starts_with(&b.prefix()), "{a} / {b}");
                }
            }
        }
        assert_eq!(AK_BINDING.message(b"x"), b"ztmesh-ak-binding-v1\0x");
    }
}
