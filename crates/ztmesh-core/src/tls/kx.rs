//! The X25519MLKEM768 hybrid key exchange for rustls (draft-ietf-tls-ecdhe-mlkem), and the groups
//! each [`PqPolicy`] offers.
//!
//! rustls' ring provider has no post-quantum group, so it is built here from ring's ephemeral
//! X25519 and libcrux's ML-KEM-768 (FIPS 203). Codepoint 0x11EC; the ML-KEM part comes first in
//! every field:
//!
//! | field | layout | length |
//! | --- | --- | --- |
//! | client key share | ML-KEM-768 encapsulation key ‖ X25519 public key | 1184 + 32 = 1216 |
//! | server key share | ML-KEM-768 ciphertext ‖ X25519 public key | 1088 + 32 = 1120 |
//! | shared secret | ML-KEM-768 shared secret ‖ X25519 shared secret | 32 + 32 = 64 |
//!
//! Every length is checked exactly. The server checks the client's encapsulation key as FIPS 203
//! §7.2 requires (every coefficient below q) before encapsulating to it; either side refuses an
//! X25519 share of small order (ring rejects the all-zero secret). Failures are rustls'
//! `PeerMisbehaved::InvalidKeyShare` (an illegal_parameter alert), never a panic. ML-KEM
//! decapsulation itself never fails: a tampered ciphertext yields an unrelated secret (implicit
//! rejection) and the handshake fails at Finished.
//!
//! A client's key exchange also exposes its X25519 half to rustls as a separate X25519 key share
//! (`hybrid_component`): with [`PqPolicy::Prefer`] the ClientHello carries both shares from one
//! X25519 key, and a classical-only server completes without a HelloRetryRequest.

use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::rand::SystemRandom;
use rustls::crypto::{ActiveKeyExchange, CompletedKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{Error, NamedGroup, PeerMisbehaved, ProtocolVersion};
use zeroize::Zeroizing;

use super::PqPolicy;
use crate::kem::{KemError, MLKEM768_CIPHERTEXT_LEN, MLKEM768_PUBLIC_KEY_LEN};

/// The X25519MLKEM768 hybrid group, for rustls' `CryptoProvider::kx_groups`.
pub static X25519MLKEM768: &dyn SupportedKxGroup = &X25519MlKem768;

/// Length of a client's X25519MLKEM768 key share.
pub const X25519MLKEM768_CLIENT_SHARE_LEN: usize = MLKEM768_PUBLIC_KEY_LEN + X25519_LEN;
/// Length of a server's X25519MLKEM768 key share.
pub const X25519MLKEM768_SERVER_SHARE_LEN: usize = MLKEM768_CIPHERTEXT_LEN + X25519_LEN;
/// Length of the X25519MLKEM768 shared secret.
pub const X25519MLKEM768_SECRET_LEN: usize = 64;

/// Length of an X25519 public key and shared secret.
const X25519_LEN: usize = 32;
/// Length of an ML-KEM-768 decapsulation key.
const MLKEM768_SECRET_KEY_LEN: usize = 2400;

/// The key exchange groups offered (client) or accepted (server) under `policy`, best first.
pub(crate) fn groups(policy: PqPolicy) -> Vec<&'static dyn SupportedKxGroup> {
    let x25519 = rustls::crypto::ring::kx_group::X25519;
    match policy {
        PqPolicy::Require => vec![X25519MLKEM768],
        PqPolicy::Prefer => vec![X25519MLKEM768, x25519],
        PqPolicy::Off => vec![x25519],
    }
}

/// The display name of a negotiated group, as [`TlsSession::kx_group`](super::TlsSession::kx_group)
/// reports it.
pub(crate) fn group_name(group: NamedGroup) -> Option<&'static str> {
    match group {
        NamedGroup::X25519MLKEM768 => Some(super::GROUP_X25519MLKEM768),
        NamedGroup::X25519 => Some(super::GROUP_X25519),
        _ => None,
    }
}

#[derive(Debug)]
struct X25519MlKem768;

impl SupportedKxGroup for X25519MlKem768 {
    /// Client side: a fresh ML-KEM-768 key pair and X25519 key; the share is `ek ‖ x25519`.
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let seed = Zeroizing::new(crate::rand::array::<64>().map_err(|_| Error::FailedToGetRandomBytes)?);
        let (secret_key, public_key) = mlkem768::generate_key_pair(*seed).into_parts();
        let ml_kem = Box::new(Zeroizing::new(<[u8; MLKEM768_SECRET_KEY_LEN]>::from(secret_key)));
        let (x25519, x25519_public) = x25519_key()?;
        let mut share = Vec::with_capacity(X25519MLKEM768_CLIENT_SHARE_LEN);
        share.extend_from_slice(public_key.as_slice());
        share.extend_from_slice(&x25519_public);
        Ok(Box::new(ClientKeyExchange { ml_kem, x25519, share }))
    }

    /// Server side: encapsulate to the client's (checked) ML-KEM key, agree with its X25519 key.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        if client_share.len() != X25519MLKEM768_CLIENT_SHARE_LEN {
            return Err(invalid_key_share());
        }
        let (encapsulation_key, client_x25519) = client_share.split_at(MLKEM768_PUBLIC_KEY_LEN);
        let (ciphertext, ml_kem_secret) = crate::kem::mlkem768_encapsulate(encapsulation_key).map_err(|e| match e {
            KemError::Random => Error::FailedToGetRandomBytes,
            _ => invalid_key_share(),
        })?;
        let (x25519, x25519_public) = x25519_key()?;
        let x25519_secret = x25519_agree(x25519, client_x25519)?;
        let mut share = ciphertext;
        share.extend_from_slice(&x25519_public);
        Ok(CompletedKeyExchange {
            group: NamedGroup::X25519MLKEM768,
            pub_key: share,
            secret: combine(ml_kem_secret.as_slice(), x25519_secret.as_slice()),
        })
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

/// A client's key exchange in flight: the ML-KEM decapsulation key (zeroized when dropped), the
/// X25519 key, and the share sent.
struct ClientKeyExchange {
    ml_kem: Box<Zeroizing<[u8; MLKEM768_SECRET_KEY_LEN]>>,
    x25519: EphemeralPrivateKey,
    share: Vec<u8>,
}

impl ActiveKeyExchange for ClientKeyExchange {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, Error> {
        let Self { ml_kem, x25519, .. } = *self;
        if server_share.len() != X25519MLKEM768_SERVER_SHARE_LEN {
            return Err(invalid_key_share());
        }
        let (ciphertext, server_x25519) = server_share.split_at(MLKEM768_CIPHERTEXT_LEN);
        let ciphertext: [u8; MLKEM768_CIPHERTEXT_LEN] = ciphertext.try_into().map_err(|_| invalid_key_share())?;
        let x25519_secret = x25519_agree(x25519, server_x25519)?;
        let secret_key = MlKem768PrivateKey::from(&**ml_kem);
        let ml_kem_secret = Zeroizing::new(mlkem768::decapsulate(&secret_key, &MlKem768Ciphertext::from(ciphertext)));
        // Take the copy libcrux holds back out, so it is wiped too.
        drop(Zeroizing::new(<[u8; MLKEM768_SECRET_KEY_LEN]>::from(secret_key)));
        Ok(combine(ml_kem_secret.as_slice(), x25519_secret.as_slice()))
    }

    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        self.share.get(MLKEM768_PUBLIC_KEY_LEN..).map(|x25519| (NamedGroup::X25519, x25519))
    }

    /// The server chose plain X25519: finish with the X25519 half alone.
    fn complete_hybrid_component(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, Error> {
        let secret = x25519_agree(self.x25519, server_share)?;
        Ok(SharedSecret::from(secret.as_slice()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.share
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

/// A fresh ephemeral X25519 key and its public key.
fn x25519_key() -> Result<(EphemeralPrivateKey, [u8; X25519_LEN]), Error> {
    let key =
        EphemeralPrivateKey::generate(&X25519, &SystemRandom::new()).map_err(|_| Error::FailedToGetRandomBytes)?;
    let public = key.compute_public_key().map_err(|_| Error::FailedToGetRandomBytes)?;
    let public = public.as_ref().try_into().map_err(|_| Error::FailedToGetRandomBytes)?;
    Ok((key, public))
}

/// X25519 with a peer's share: exactly 32 bytes, not of small order.
fn x25519_agree(key: EphemeralPrivateKey, peer: &[u8]) -> Result<Zeroizing<[u8; X25519_LEN]>, Error> {
    if peer.len() != X25519_LEN {
        return Err(invalid_key_share());
    }
    agreement::agree_ephemeral(key, &UnparsedPublicKey::new(&X25519, peer), |secret| {
        <[u8; X25519_LEN]>::try_from(secret).ok().map(Zeroizing::new)
    })
    .ok()
    .flatten()
    .ok_or_else(invalid_key_share)
}

/// The hybrid secret `ss_ML-KEM ‖ ss_X25519` (rustls zeroizes it when dropped).
fn combine(ml_kem: &[u8], x25519: &[u8]) -> SharedSecret {
    let mut secret = Vec::with_capacity(X25519MLKEM768_SECRET_LEN);
    secret.extend_from_slice(ml_kem);
    secret.extend_from_slice(x25519);
    SharedSecret::from(secret)
}

fn invalid_key_share() -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare)
}
