//! ChaCha20-Poly1305 and AES-256-GCM.

use napi::bindgen_prelude::{Buffer, BufferSlice, Uint32ArraySlice};
use napi_derive::napi;
use ztmesh_core::aead::{self, Algorithm};

use crate::error::{byte_length, sync, Failure, Result};

/// An AEAD key with its key schedule computed once (`chacha20-poly1305` or `aes-256-gcm`).
#[napi]
pub struct AeadKey {
    inner: aead::Key,
}

#[napi]
impl AeadKey {
    /// Builds a key from 32 raw bytes.
    #[napi(constructor)]
    pub fn new(algorithm: String, key: &[u8]) -> Result<Self> {
        sync(|| Ok(AeadKey { inner: aead::Key::new(Algorithm::from_name(&algorithm)?, key)? }))
    }

    /// The algorithm name.
    #[napi(getter)]
    pub fn algorithm(&self) -> &'static str {
        self.inner.algorithm().name()
    }

    /// Seals `plaintext` into `out` (at least `plaintext.length + 16` bytes, not overlapping
    /// the input) and returns the ciphertext length. No allocation happens.
    #[napi]
    pub fn seal_into(&self, nonce: &[u8], plaintext: &[u8], mut out: BufferSlice, aad: Option<&[u8]>) -> Result<u32> {
        sync(|| {
            refuse_overlap(plaintext, &out)?;
            byte_length(self.inner.seal_into(nonce, aad.unwrap_or_default(), plaintext, &mut out)?)
        })
    }

    /// Opens `ciphertext` into `out` (at least `ciphertext.length - 16` bytes, not overlapping
    /// the input) and returns the plaintext length.
    #[napi]
    pub fn open_into(&self, nonce: &[u8], ciphertext: &[u8], mut out: BufferSlice, aad: Option<&[u8]>) -> Result<u32> {
        sync(|| {
            refuse_overlap(ciphertext, &out)?;
            byte_length(self.inner.open_into(nonce, aad.unwrap_or_default(), ciphertext, &mut out)?)
        })
    }

    /// Seals many messages in one call: message `i` is the next `lengths[i]` bytes of
    /// `plaintexts`, sealed under the `i`-th 12 bytes of `nonces`; the sealed messages go to
    /// `out` back to back. Returns the bytes written.
    #[napi]
    pub fn seal_batch(
        &self,
        nonces: &[u8],
        plaintexts: &[u8],
        lengths: Uint32ArraySlice,
        mut out: BufferSlice,
        aad: Option<&[u8]>,
    ) -> Result<u32> {
        sync(|| {
            refuse_overlap(plaintexts, &out)?;
            byte_length(self.inner.seal_batch(nonces, aad.unwrap_or_default(), plaintexts, &lengths, &mut out)?)
        })
    }

    /// Opens a batch sealed by `sealBatch` (`lengths` are the plaintext lengths) into `out`.
    /// All or nothing: one inauthentic message fails the batch and leaves `out` zeroed.
    #[napi]
    pub fn open_batch(
        &self,
        nonces: &[u8],
        ciphertexts: &[u8],
        lengths: Uint32ArraySlice,
        mut out: BufferSlice,
        aad: Option<&[u8]>,
    ) -> Result<u32> {
        sync(|| {
            refuse_overlap(ciphertexts, &out)?;
            byte_length(self.inner.open_batch(nonces, aad.unwrap_or_default(), ciphertexts, &lengths, &mut out)?)
        })
    }

    /// Seals `plaintext` and returns `ciphertext ‖ tag` in a new buffer.
    #[napi]
    pub fn seal(&self, nonce: &[u8], plaintext: &[u8], aad: Option<&[u8]>) -> Result<Buffer> {
        sync(|| Ok(self.inner.seal(nonce, aad.unwrap_or_default(), plaintext)?.into()))
    }

    /// Opens `ciphertext ‖ tag` and returns the plaintext in a new buffer.
    #[napi]
    pub fn open(&self, nonce: &[u8], ciphertext: &[u8], aad: Option<&[u8]>) -> Result<Buffer> {
        sync(|| Ok(self.inner.open(nonce, aad.unwrap_or_default(), ciphertext)?.into()))
    }
}

fn refuse_overlap(input: &[u8], out: &[u8]) -> std::result::Result<(), Failure> {
    let (a, b) = (input.as_ptr_range(), out.as_ptr_range());
    if !input.is_empty() && !out.is_empty() && a.start < b.end && b.start < a.end {
        return Err(Failure::new("ERR_BUFFER_OVERLAP", "output buffer overlaps the input"));
    }
    Ok(())
}
