//! The post-quantum hybrid modes, `Noise_XXpsk3_25519_{ChaChaPoly,AESGCM}_SHA256+MLKEM768`.
//!
//! snow runs `Noise_XXpsk3_25519_{ChaChaPoly,AESGCM}_SHA256`. The initiator's ephemeral ML-KEM-768
//! encapsulation key rides at the front of message 1's payload, the responder's ciphertext at
//! the front of message 2's payload, and both sides turn the ML-KEM shared secret into the PSK
//! that Noise mixes in at position 3, so the session keys depend on X25519 and ML-KEM-768 alike.
//! The effective prologue starts with a label naming the mode, so nobody can strip it.

use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use ring::hkdf;
use zeroize::{Zeroize, Zeroizing};

use super::NoiseError;

/// The domain label at the front of the effective prologue, after its 2-byte length.
pub(crate) const PROLOGUE_LABEL: &[u8] = b"ztmesh-noise-hybrid/1 MLKEM768";

/// The HKDF info string for the PSK.
pub(crate) const PSK_INFO: &[u8] = b"ztmesh-noise-hybrid/1 MLKEM768 psk";

/// The Noise PSK position: mixed in at the end of message 3.
pub(crate) const PSK_POSITION: usize = 3;

/// Length of an ML-KEM-768 encapsulation (public) key.
pub(crate) const ENCAPSULATION_KEY_LEN: usize = 1184;

/// Length of an ML-KEM-768 ciphertext.
pub(crate) const CIPHERTEXT_LEN: usize = 1088;

/// The effective prologue: `u16_be(len(label)) || label || caller's prologue`.
pub(crate) fn prologue(caller: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + PROLOGUE_LABEL.len() + caller.len());
    // The label is a short constant, so its length always fits in 16 bits.
    out.extend_from_slice(&(PROLOGUE_LABEL.len() as u16).to_be_bytes());
    out.extend_from_slice(PROLOGUE_LABEL);
    out.extend_from_slice(caller);
    out
}

/// The ML-KEM side of one hybrid handshake.
#[derive(Default)]
pub(crate) struct Hybrid {
    /// Initiator: the decapsulation key, from sending message 1 until reading message 2.
    decapsulation_key: Option<DecapsulationKey>,
    /// Responder: the peer's validated encapsulation key, from reading message 1 until
    /// sending message 2.
    peer_encapsulation_key: Option<Box<MlKem768PublicKey>>,
}

/// The KEM bytes to put in front of an outgoing payload, and what to keep once it is sent.
pub(crate) struct Outgoing {
    /// Bytes at the front of the Noise payload (empty for messages without KEM bytes).
    pub(crate) prefix: Vec<u8>,
    commit: Commit,
}

/// What an outgoing message leaves behind once snow has written it.
enum Commit {
    /// Nothing (message 3).
    Nothing,
    /// Initiator, message 1: the decapsulation key for message 2.
    KeepDecapsulationKey(DecapsulationKey),
    /// Responder, message 2: the shared secret the PSK is derived from.
    SetPsk(Zeroizing<[u8; 32]>),
}

impl Hybrid {
    /// Prepares the KEM part of outgoing message `index` (0-based). Changes nothing yet, so a
    /// write that fails (payload too long) can be retried.
    pub(crate) fn prepare_write(&self, initiator: bool, index: usize) -> Result<Outgoing, NoiseError> {
        match (initiator, index) {
            (true, 0) => {
                let (key, public) = generate()?;
                Ok(Outgoing { prefix: public, commit: Commit::KeepDecapsulationKey(key) })
            }
            (false, 1) => {
                let peer = self.peer_encapsulation_key.as_deref().ok_or(NoiseError::Internal)?;
                let (ciphertext, shared) = encapsulate(peer)?;
                Ok(Outgoing { prefix: ciphertext, commit: Commit::SetPsk(shared) })
            }
            _ => Ok(Outgoing { prefix: Vec::new(), commit: Commit::Nothing }),
        }
    }

    /// Keeps what a written message leaves behind; after message 2 sets the PSK in `state`.
    pub(crate) fn commit_write(
        &mut self,
        outgoing: Outgoing,
        state: &mut snow::HandshakeState,
    ) -> Result<(), NoiseError> {
        match outgoing.commit {
            Commit::Nothing => Ok(()),
            Commit::KeepDecapsulationKey(key) => {
                self.decapsulation_key = Some(key);
                Ok(())
            }
            Commit::SetPsk(shared) => {
                self.peer_encapsulation_key = None;
                set_psk(&shared, state)
            }
        }
    }

    /// Consumes the KEM part of incoming message `index` (already decrypted by snow) and
    /// returns how many payload bytes it took; after message 2 sets the PSK in `state`.
    pub(crate) fn read(
        &mut self,
        initiator: bool,
        index: usize,
        payload: &[u8],
        state: &mut snow::HandshakeState,
    ) -> Result<usize, NoiseError> {
        match (initiator, index) {
            (false, 0) => {
                let bytes = payload.get(..ENCAPSULATION_KEY_LEN).ok_or(NoiseError::Malformed)?;
                let key = MlKem768PublicKey::try_from(bytes).map_err(|_| NoiseError::Malformed)?;
                if !mlkem768::validate_public_key(&key) {
                    return Err(NoiseError::Hybrid);
                }
                self.peer_encapsulation_key = Some(Box::new(key));
                Ok(ENCAPSULATION_KEY_LEN)
            }
            (true, 1) => {
                let bytes = payload.get(..CIPHERTEXT_LEN).ok_or(NoiseError::Malformed)?;
                let ciphertext = MlKem768Ciphertext::try_from(bytes).map_err(|_| NoiseError::Malformed)?;
                // Taken out, so the decapsulation key is zeroized when this arm ends.
                let key = self.decapsulation_key.take().ok_or(NoiseError::Internal)?;
                let shared = Zeroizing::new(mlkem768::decapsulate(&key.0, &ciphertext));
                drop(key);
                set_psk(&shared, state)?;
                Ok(CIPHERTEXT_LEN)
            }
            _ => Ok(0),
        }
    }

    /// Whether no ML-KEM key is held any more (both sides, after message 2).
    #[cfg(test)]
    pub(crate) fn is_spent(&self) -> bool {
        self.decapsulation_key.is_none() && self.peer_encapsulation_key.is_none()
    }
}

/// An ML-KEM-768 decapsulation key, zeroized on drop.
struct DecapsulationKey(Box<MlKem768PrivateKey>);

impl Drop for DecapsulationKey {
    fn drop(&mut self) {
        self.0[0..].zeroize();
    }
}

/// Generates an ephemeral key pair; returns the decapsulation key and the encapsulation key.
fn generate() -> Result<(DecapsulationKey, Vec<u8>), NoiseError> {
    let seed = Zeroizing::new(crate::rand::array::<{ libcrux_ml_kem::KEY_GENERATION_SEED_SIZE }>()?);
    let (private, public) = mlkem768::generate_key_pair(*seed).into_parts();
    Ok((DecapsulationKey(Box::new(private)), public.as_slice().to_vec()))
}

/// Encapsulates to a validated key; returns the ciphertext and the shared secret.
fn encapsulate(key: &MlKem768PublicKey) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), NoiseError> {
    let randomness = Zeroizing::new(crate::rand::array::<{ libcrux_ml_kem::ENCAPS_SEED_SIZE }>()?);
    let (ciphertext, shared) = mlkem768::encapsulate(key, *randomness);
    Ok((ciphertext.as_slice().to_vec(), Zeroizing::new(shared)))
}

/// Sets the PSK derived from the ML-KEM shared secret and the handshake hash after message 2.
fn set_psk(shared: &[u8; 32], state: &mut snow::HandshakeState) -> Result<(), NoiseError> {
    let psk = derive_psk(shared, state.get_handshake_hash())?;
    state.set_psk(PSK_POSITION, &psk[..]).map_err(|_| NoiseError::Internal)
}

/// `psk = HKDF-SHA256(salt = h after message 2, ikm = ML-KEM shared secret, info = PSK_INFO)`.
pub(crate) fn derive_psk(shared: &[u8; 32], handshake_hash: &[u8]) -> Result<Zeroizing<[u8; 32]>, NoiseError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, handshake_hash).extract(shared);
    let info = [PSK_INFO];
    let okm = prk.expand(&info, hkdf::HKDF_SHA256).map_err(|_| NoiseError::Internal)?;
    let mut psk = Zeroizing::new([0u8; 32]);
    okm.fill(&mut psk[..]).map_err(|_| NoiseError::Internal)?;
    Ok(psk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologue_is_length_prefixed_label_then_caller_prologue() {
        assert_eq!(PROLOGUE_LABEL.len(), 0x1e, "as the module docs say");
        let p = prologue(b"abc");
        assert_eq!(p[..2], [0, PROLOGUE_LABEL.len() as u8]);
        assert_eq!(&p[2..2 + PROLOGUE_LABEL.len()], PROLOGUE_LABEL);
        assert_eq!(&p[2 + PROLOGUE_LABEL.len()..], b"abc");
    }

    #[test]
    fn kem_round_trip_and_sizes() {
        let (key, public) = generate().unwrap();
        assert_eq!(public.len(), ENCAPSULATION_KEY_LEN);
        let public = MlKem768PublicKey::try_from(&public[..]).unwrap();
        let (ciphertext, shared) = encapsulate(&public).unwrap();
        assert_eq!(ciphertext.len(), CIPHERTEXT_LEN);
        let ciphertext = MlKem768Ciphertext::try_from(&ciphertext[..]).unwrap();
        assert_eq!(mlkem768::decapsulate(&key.0, &ciphertext), *shared);
    }

    #[test]
    fn psk_depends_on_secret_and_transcript() {
        let a = derive_psk(&[1; 32], &[2; 32]).unwrap();
        assert_ne!(*a, *derive_psk(&[1; 32], &[3; 32]).unwrap());
        assert_ne!(*a, *derive_psk(&[4; 32], &[2; 32]).unwrap());
        assert_ne!(*a, [0; 32]);
    }
}
