//! Parsers for the two structures a TPM quote consists of: the `TPMS_ATTEST` the attestation
//! key signs, and the `TPMT_SIGNATURE` it signs it with (TPM 2.0 Part 2, big-endian).
//!
//! Both are strict: every length is checked against the structure's bound, every count is
//! bounded, nothing may follow the structure, and only what ztmesh uses is accepted (a quote,
//! an ECDSA signature with SHA-256 over P-256).

use super::pcrs::{read_selection, BankSelection};
use super::wire::Reader;
use super::ClockInfo;

/// `TPM_GENERATED_VALUE`: the magic a TPM puts first in every structure it signs, and which it
/// never signs for external data with a restricted key.
pub(crate) const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub(crate) const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_ECDSA`.
pub(crate) const TPM_ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_SHA256`.
pub(crate) const TPM_ALG_SHA256: u16 = 0x000b;

/// `sizeof(TPMU_NAME)`: a hash algorithm and a digest of up to 64 bytes.
const MAX_NAME: usize = 2 + 64;
/// `sizeof(TPMT_HA)`, the bound of `TPM2B_DATA`.
const MAX_DATA: usize = 2 + 64;
/// `sizeof(TPMU_HA)`, the bound of `TPM2B_DIGEST`.
const MAX_DIGEST: usize = 64;
/// The size of a P-256 scalar.
const P256_SCALAR: usize = 32;

/// A parsed `TPMS_ATTEST` of type quote.
#[derive(Debug)]
pub(crate) struct QuoteAttest<'a> {
    pub(crate) qualified_signer: &'a [u8],
    pub(crate) extra_data: &'a [u8],
    pub(crate) clock: ClockInfo,
    pub(crate) firmware_version: u64,
    pub(crate) selection: Vec<BankSelection>,
    pub(crate) pcr_digest: &'a [u8],
}

/// Parses a marshalled `TPMS_ATTEST`; `None` unless it is a well-formed, TPM-generated quote
/// with nothing after it.
pub(crate) fn parse_quote_attest(bytes: &[u8]) -> Option<QuoteAttest<'_>> {
    let mut reader = Reader::new(bytes);
    if reader.u32_be()? != TPM_GENERATED_VALUE || reader.u16_be()? != TPM_ST_ATTEST_QUOTE {
        return None;
    }
    let qualified_signer = reader.tpm2b(MAX_NAME)?;
    let extra_data = reader.tpm2b(MAX_DATA)?;
    let clock = reader.u64_be()?;
    let reset_count = reader.u32_be()?;
    let restart_count = reader.u32_be()?;
    let safe = match reader.u8()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let firmware_version = reader.u64_be()?;
    let selection = read_selection(&mut reader)?;
    let pcr_digest = reader.tpm2b(MAX_DIGEST)?;
    if !reader.is_empty() {
        return None;
    }
    Some(QuoteAttest {
        qualified_signer,
        extra_data,
        clock: ClockInfo { clock, reset_count, restart_count, safe },
        firmware_version,
        selection,
        pcr_digest,
    })
}

/// Parses a marshalled `TPMT_SIGNATURE` holding an ECDSA signature with SHA-256 and returns
/// its `r ‖ s`, each left-padded to 32 bytes. `None` for another algorithm or hash, a scalar
/// longer than 32 bytes, or trailing bytes.
pub(crate) fn parse_ecdsa_sha256_signature(bytes: &[u8]) -> Option<[u8; 2 * P256_SCALAR]> {
    let mut reader = Reader::new(bytes);
    if reader.u16_be()? != TPM_ALG_ECDSA || reader.u16_be()? != TPM_ALG_SHA256 {
        return None;
    }
    let r = reader.tpm2b(P256_SCALAR)?;
    let s = reader.tpm2b(P256_SCALAR)?;
    if !reader.is_empty() {
        return None;
    }
    let mut raw = [0u8; 2 * P256_SCALAR];
    raw[P256_SCALAR - r.len()..P256_SCALAR].copy_from_slice(r);
    raw[2 * P256_SCALAR - s.len()..].copy_from_slice(s);
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::pcrs::{selected, PcrBank};

    const MSG: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-12pcrs.msg");
    const SIG: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-12pcrs.sig");

    /// The offsets of the length fields in `MSG`: the signer name and the extra data.
    const NAME_LEN_AT: usize = 6;

    #[test]
    fn parses_a_swtpm_quote() {
        let quote = parse_quote_attest(MSG).unwrap();
        assert_eq!(quote.qualified_signer.len(), 34);
        assert_eq!(hex::encode(quote.extra_data), include_str!("../../tests/tpm_common/vectors/swtpm-nonce.hex"));
        assert!(quote.clock.safe);
        assert_eq!(quote.pcr_digest.len(), 32);
        let indexes: Vec<(PcrBank, u8)> = selected(&quote.selection);
        assert_eq!(indexes.len(), 12);
        assert_eq!(indexes[11], (PcrBank::Sha256, 16));
    }

    #[test]
    fn rejects_malformed_attest() {
        for len in 0..MSG.len() {
            assert!(parse_quote_attest(&MSG[..len]).is_none(), "{len}");
        }
        let mut long = MSG.to_vec();
        long.push(0);
        assert!(parse_quote_attest(&long).is_none());
        let edit = |offset: usize, bytes: &[u8]| {
            let mut msg = MSG.to_vec();
            msg[offset..offset + bytes.len()].copy_from_slice(bytes);
            parse_quote_attest(&msg).is_none()
        };
        assert!(edit(0, &[0xff, 0x54, 0x43, 0x48]), "bad magic");
        assert!(edit(4, &[0x80, 0x17]), "a certification, not a quote");
        assert!(edit(NAME_LEN_AT, &[0xff, 0xff]), "huge name");
        assert!(edit(NAME_LEN_AT, &[0x00, 0x43]), "name over its bound");
        let data_len_at = NAME_LEN_AT + 2 + 34;
        assert!(edit(data_len_at, &[0x00, 0x43]), "extra data over its bound");
        let safe_at = data_len_at + 2 + 32 + 16;
        assert!(edit(safe_at, &[2]), "safe is not a TPMI_YES_NO");
        let count_at = safe_at + 1 + 8;
        assert!(edit(count_at, &[0xff, 0xff, 0xff, 0xff]), "huge selection count");
        assert!(edit(count_at, &[0, 0, 0, 17]), "more banks than a TPM has");
        assert!(edit(count_at + 6, &[5]), "sizeofSelect above 4");
        let digest_len_at = count_at + 4 + 2 + 1 + 3;
        assert!(edit(digest_len_at, &[0x00, 0x41]), "digest over its bound");
        assert!(!edit(digest_len_at + 2, &[0]), "the digest's content is not checked here");
    }

    #[test]
    fn parses_ecdsa_signatures() {
        let raw = parse_ecdsa_sha256_signature(SIG).unwrap();
        assert_eq!(raw[..32], SIG[6..38]);
        for len in 0..SIG.len() {
            assert!(parse_ecdsa_sha256_signature(&SIG[..len]).is_none(), "{len}");
        }
        let mut long = SIG.to_vec();
        long.push(0);
        assert!(parse_ecdsa_sha256_signature(&long).is_none());
        let edit = |offset: usize, bytes: &[u8]| {
            let mut sig = SIG.to_vec();
            sig[offset..offset + bytes.len()].copy_from_slice(bytes);
            parse_ecdsa_sha256_signature(&sig)
        };
        assert!(edit(0, &[0x00, 0x14]).is_none(), "RSASSA");
        assert!(edit(2, &[0x00, 0x0c]).is_none(), "SHA-384");
        assert!(edit(4, &[0x00, 0x21]).is_none(), "r over 32 bytes");
        assert!(edit(4, &[0xff, 0xff]).is_none(), "huge r");
        // Short scalars (leading zeros dropped) are padded back.
        let short = [&[0x00, 0x18, 0x00, 0x0b, 0x00, 0x01, 0x07, 0x00, 0x02, 0x01, 0x02][..]].concat();
        let raw = parse_ecdsa_sha256_signature(&short).unwrap();
        assert_eq!((raw[31], raw[62], raw[63]), (7, 1, 2));
        assert!(raw[..31].iter().chain(&raw[32..62]).all(|b| *b == 0));
    }
}
