//! The identity payload of a link: a certificate chain and the binding signature, in the compact
//! binary form of the [module docs](super):
//!
//! ```text
//! 0x01 ‖ u8 n (1..=3) ‖ n × (u16 length ‖ DER) ‖ u8 length (1..=72) ‖ signature ‖ zero padding
//! ```
//!
//! The padding brings the payload to a multiple of [`PAD_TO`] bytes. Decoding is strict: any
//! other version, count or length, a truncation, or a non-zero padding byte is
//! [`LinkError::Identity`].

use super::LinkError;

/// The only version.
const VERSION: u8 = 1;
/// The most certificates in a chain (leaf, site CA, root), as `verify_peer` accepts.
pub(super) const MAX_CHAIN_LEN: usize = 3;
/// The longest DER ECDSA P-256 signature.
const MAX_SIGNATURE_LEN: usize = 72;
/// Payloads are padded to a multiple of this many bytes.
const PAD_TO: usize = 256;

/// A decoded identity, borrowing the payload.
#[derive(Debug)]
pub(super) struct Identity<'a> {
    /// The chain, DER, leaf first.
    pub(super) chain: Vec<&'a [u8]>,
    /// The certificate key's signature over the static-key binding.
    pub(super) signature: &'a [u8],
}

/// The most bytes [`encode`] produces for `chain`.
pub(super) fn encoded_len_bound(chain: &[Vec<u8>]) -> usize {
    let unpadded = 2 + chain.iter().map(|cert| 2 + cert.len()).sum::<usize>() + 1 + MAX_SIGNATURE_LEN;
    unpadded.next_multiple_of(PAD_TO)
}

/// Encodes `chain` (1 to 3 certificates of 1 to 65535 bytes) and `signature`.
pub(super) fn encode(chain: &[Vec<u8>], signature: &[u8]) -> Result<Vec<u8>, LinkError> {
    let count = u8::try_from(chain.len()).ok().filter(|n| (1..=MAX_CHAIN_LEN as u8).contains(n));
    let signature_len = u8::try_from(signature.len()).ok().filter(|n| (1..=MAX_SIGNATURE_LEN as u8).contains(n));
    let (Some(count), Some(signature_len)) = (count, signature_len) else {
        return Err(if count.is_none() { LinkError::Config } else { LinkError::Signer });
    };
    let mut out = Vec::with_capacity(encoded_len_bound(chain));
    out.extend_from_slice(&[VERSION, count]);
    for cert in chain {
        let len = u16::try_from(cert.len()).ok().filter(|len| *len > 0).ok_or(LinkError::Config)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(cert);
    }
    out.push(signature_len);
    out.extend_from_slice(signature);
    out.resize(out.len().next_multiple_of(PAD_TO), 0);
    Ok(out)
}

/// Decodes a payload; see the module docs for what is refused.
pub(super) fn decode(payload: &[u8]) -> Result<Identity<'_>, LinkError> {
    let mut reader = Reader(payload);
    if reader.byte()? != VERSION {
        return Err(LinkError::Identity);
    }
    let count = usize::from(reader.byte()?);
    if !(1..=MAX_CHAIN_LEN).contains(&count) {
        return Err(LinkError::Identity);
    }
    let mut chain = Vec::with_capacity(count);
    for _ in 0..count {
        let [high, low] = reader.take(2)? else { return Err(LinkError::Identity) };
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        if len == 0 {
            return Err(LinkError::Identity);
        }
        chain.push(reader.take(len)?);
    }
    let signature_len = usize::from(reader.byte()?);
    if !(1..=MAX_SIGNATURE_LEN).contains(&signature_len) {
        return Err(LinkError::Identity);
    }
    let signature = reader.take(signature_len)?;
    if reader.0.iter().any(|byte| *byte != 0) || !payload.len().is_multiple_of(PAD_TO) {
        return Err(LinkError::Identity);
    }
    Ok(Identity { chain, signature })
}

/// [`decode`], for fuzzing: the decoder a receiver runs on message 3's payload and on the
/// confirmation, which Noise only hands over once they decrypt, so a fuzzer feeding the handshake
/// never reaches it. Returns the chain and the signature.
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub fn decode_for_fuzzing(payload: &[u8]) -> Result<(Vec<&[u8]>, &[u8]), LinkError> {
    decode(payload).map(|identity| (identity.chain, identity.signature))
}

/// [`encode`], for fuzzing: what a decoded identity must encode back to (up to padding).
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub fn encode_for_fuzzing(chain: &[Vec<u8>], signature: &[u8]) -> Result<Vec<u8>, LinkError> {
    encode(chain, signature)
}

/// A cursor over untrusted bytes; running past the end is [`LinkError::Identity`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], LinkError> {
        if self.0.len() < len {
            return Err(LinkError::Identity);
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, LinkError> {
        Ok(self.take(1)?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_padded_to_256_bytes() {
        let chain = vec![vec![1u8; 300], vec![2u8; 5]];
        let encoded = encode(&chain, &[9u8; 70]).unwrap();
        assert_eq!(encoded.len() % PAD_TO, 0);
        assert!(encoded.len() <= encoded_len_bound(&chain));
        let decoded = decode(&encoded).unwrap();
        assert_eq!(decoded.chain, vec![&chain[0][..], &chain[1][..]]);
        assert_eq!(decoded.signature, &[9u8; 70]);
    }

    #[test]
    fn strict_decoding_refuses_every_deviation() {
        let good = encode(&[vec![1u8; 10]], &[9u8; 70]).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), vec![1], good[..good.len() - 1].to_vec()];
        let mut version = good.clone();
        version[0] = 2;
        cases.push(version);
        for count in [0u8, 4] {
            let mut bad = good.clone();
            bad[1] = count;
            cases.push(bad);
        }
        let mut padding = good.clone();
        *padding.last_mut().unwrap() = 1;
        cases.push(padding);
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; PAD_TO]);
        assert!(decode(&longer).is_ok(), "more zero padding is still a multiple");
        longer.push(0);
        cases.push(longer);
        let mut zero_cert = vec![VERSION, 1, 0, 0, 1, 9];
        zero_cert.resize(PAD_TO, 0);
        cases.push(zero_cert);
        let mut no_signature = vec![VERSION, 1, 0, 1, 7, 0];
        no_signature.resize(PAD_TO, 0);
        cases.push(no_signature);
        for case in cases {
            assert_eq!(decode(&case).unwrap_err(), LinkError::Identity, "{case:?}");
        }
        assert_eq!(encode(&[], &[1]).unwrap_err(), LinkError::Config);
        assert_eq!(encode(&[vec![1]], &[]).unwrap_err(), LinkError::Signer);
    }

    #[test]
    fn seeded_garbage_is_refused_typed_or_decodes_to_what_encodes_back() {
        let good = encode(&[vec![1u8; 10], vec![2u8; 20]], &[9u8; 70]).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut decoded = 0;
        for round in 0..4000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Half the rounds mutate a valid identity (a few bytes), half are garbage.
            let bytes: Vec<u8> = if round % 2 == 0 {
                let mut bytes = good.clone();
                for i in 0..(seed % 4) as usize {
                    let at = (seed >> (8 * i)) as usize % (bytes.len() + 1);
                    match at.checked_sub(1) {
                        Some(at) => bytes[at] = (seed >> (i + 3)) as u8,
                        None => bytes.truncate((seed % 300) as usize),
                    }
                }
                bytes
            } else {
                (0..(seed % 600) as usize).map(|i| (seed >> (i % 56)) as u8).collect()
            };
            match decode_for_fuzzing(&bytes) {
                Err(error) => assert_eq!(error, LinkError::Identity),
                Ok((chain, signature)) => {
                    decoded += 1;
                    let owned: Vec<Vec<u8>> = chain.iter().map(|cert| cert.to_vec()).collect();
                    let again = encode_for_fuzzing(&owned, signature).unwrap();
                    assert!(bytes.starts_with(&again) && bytes[again.len()..].iter().all(|b| *b == 0));
                }
            }
        }
        assert!(decoded > 0, "some mutations keep a valid identity");
    }
}
