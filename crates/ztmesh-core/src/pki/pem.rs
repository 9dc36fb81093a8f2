//! Strict PEM (RFC 7468) decoding and encoding.
//!
//! Lenient PEM parsers skip what they do not understand: an unterminated last block in a
//! bundle silently disappears, explanatory text hides a second, unexpected block. Here the
//! input must be nothing but blocks and whitespace: each block is `-----BEGIN <label>-----`,
//! lines of padded base64, and the matching `-----END <label>-----`; no headers (encrypted
//! PEM is not supported), no text outside blocks. Line endings may be LF or CRLF.
//!
//! Base64 is decoded in constant time (base64ct), and the decoding buffer of a private key
//! is zeroized ([`decode_private_key`]).

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use super::error::{PemError, VerifyError};

/// The label of certificates.
pub const CERTIFICATE: &str = "CERTIFICATE";
/// The label of PKCS#10 certificate signing requests.
pub const CERTIFICATE_REQUEST: &str = "CERTIFICATE REQUEST";
/// The label of CRLs.
pub const X509_CRL: &str = "X509 CRL";
/// The label of PKCS#8 private keys.
pub const PRIVATE_KEY: &str = "PRIVATE KEY";

/// The most blocks one input may hold: far above any chain or trust bundle ztmesh uses.
const MAX_BLOCKS: usize = 256;

/// Decodes every block of `input`, each of which must carry `label`. At least one block is
/// required.
pub fn decode_all(input: &str, label: &'static str) -> Result<Vec<Vec<u8>>, PemError> {
    let blocks = parse(input)?;
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        if block.label != label {
            return Err(PemError::UnexpectedLabel { expected: label, found: block.label.to_owned() });
        }
        out.push(decode_base64(&block.base64)?);
    }
    Ok(out)
}

/// Decodes the one block of `input`, which must carry `label`.
pub fn decode_one(input: &str, label: &'static str) -> Result<Vec<u8>, PemError> {
    let mut blocks = decode_all(input, label)?;
    match (blocks.pop(), blocks.is_empty()) {
        (Some(block), true) => Ok(block),
        _ => Err(PemError::Framing),
    }
}

/// Decodes a single `PRIVATE KEY` block into a buffer that is zeroized when dropped.
pub fn decode_private_key(input: &str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let mut blocks = parse(input)?;
    let block = match (blocks.pop(), blocks.is_empty()) {
        (Some(block), true) => block,
        _ => return Err(PemError::Framing),
    };
    if block.label != PRIVATE_KEY {
        return Err(PemError::UnexpectedLabel { expected: PRIVATE_KEY, found: block.label.to_owned() });
    }
    Ok(Zeroizing::new(decode_base64(&block.base64)?))
}

/// Parses a PEM bundle of certificates (leaf first for a chain) into DER, checking that each
/// block is one well-formed X.509 certificate with nothing after it.
///
/// Any problem, PEM or DER, is [`VerifyError::Malformed`] (`ERR_CERT_MALFORMED`).
pub fn parse_certificates(input: &str) -> Result<Vec<Vec<u8>>, VerifyError> {
    let ders = decode_all(input, CERTIFICATE)?;
    for der in &ders {
        super::cert::ParsedCert::from_der(der).map_err(|()| VerifyError::Malformed)?;
    }
    Ok(ders)
}

/// Encodes `der` as one PEM block with `label`, 64 base64 characters per line, LF endings.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = Base64::encode_string(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    write_block(&mut out, label, &body);
    out
}

/// Encodes a private key as a `PRIVATE KEY` block in a string zeroized when dropped.
pub fn encode_private_key(pkcs8: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(Base64::encode_string(pkcs8));
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    write_block(&mut out, PRIVATE_KEY, &body);
    out
}

/// Appends the BEGIN line, `body` in 64-character lines, and the END line. `out` is sized by
/// the caller, so a zeroizing buffer never reallocates (leaving a copy behind).
fn write_block(out: &mut String, label: &str, body: &str) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body;
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// One block: its label and its base64 body with the line breaks removed.
struct Block<'a> {
    label: &'a str,
    base64: Zeroizing<String>,
}

fn parse(input: &str) -> Result<Vec<Block<'_>>, PemError> {
    let mut blocks = Vec::new();
    let mut open: Option<Block<'_>> = None;
    for line in input.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line).trim_end_matches([' ', '\t']);
        match open.take() {
            None => {
                if line.trim_start().is_empty() {
                    continue;
                }
                let label = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                    .filter(|label| is_valid_label(label))
                    .ok_or(PemError::Framing)?;
                if blocks.len() == MAX_BLOCKS {
                    return Err(PemError::Framing);
                }
                open = Some(Block { label, base64: Zeroizing::new(String::new()) });
            }
            Some(mut block) => {
                if let Some(rest) = line.strip_prefix("-----END ") {
                    if rest.strip_suffix("-----") != Some(block.label) || block.base64.is_empty() {
                        return Err(PemError::Framing);
                    }
                    blocks.push(block);
                } else if line.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
                    block.base64.push_str(line);
                    open = Some(block);
                } else {
                    // A header ("Proc-Type: …"), a stray BEGIN or any other text.
                    return Err(PemError::Framing);
                }
            }
        }
    }
    if open.is_some() {
        return Err(PemError::Framing);
    }
    if blocks.is_empty() {
        return Err(PemError::NoBlocks);
    }
    Ok(blocks)
}

/// RFC 7468 labels: printable ASCII other than `-`, no leading/trailing or double spaces.
fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with(' ')
        && !label.ends_with(' ')
        && !label.contains("  ")
        && label.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'-')
}

fn decode_base64(body: &str) -> Result<Vec<u8>, PemError> {
    let der = Base64::decode_vec(body).map_err(|_| PemError::Base64)?;
    if der.is_empty() {
        return Err(PemError::Base64);
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_several_blocks() {
        let a = encode(CERTIFICATE, &[1u8; 100]);
        let b = encode(CERTIFICATE, &[2u8; 3]);
        let bundle = format!("\n{a}\r\n{}", b.replace('\n', "\r\n"));
        assert_eq!(decode_all(&bundle, CERTIFICATE).unwrap(), vec![vec![1u8; 100], vec![2u8; 3]]);
        assert_eq!(decode_one(&a, CERTIFICATE).unwrap(), vec![1u8; 100]);
        assert_eq!(decode_one(&bundle, CERTIFICATE), Err(PemError::Framing));
        let key = encode_private_key(&[9u8; 40]);
        assert_eq!(*decode_private_key(&key).unwrap(), vec![9u8; 40]);
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        let good = encode(CERTIFICATE, &[1u8; 10]);
        assert_eq!(decode_all("", CERTIFICATE), Err(PemError::NoBlocks));
        assert_eq!(decode_all(" \n\n", CERTIFICATE), Err(PemError::NoBlocks));
        // Unterminated second block, text outside, header, mismatched END, empty block.
        let unterminated = format!("{good}-----BEGIN CERTIFICATE-----\nAAAA\n");
        assert_eq!(decode_all(&unterminated, CERTIFICATE), Err(PemError::Framing));
        assert_eq!(decode_all(&format!("hello\n{good}"), CERTIFICATE), Err(PemError::Framing));
        let header = good.replacen("-----\n", "-----\nProc-Type: 4,ENCRYPTED\n", 1);
        assert_eq!(decode_all(&header, CERTIFICATE), Err(PemError::Framing));
        let mismatched = good.replace("END CERTIFICATE", "END X509 CRL");
        assert_eq!(decode_all(&mismatched, CERTIFICATE), Err(PemError::Framing));
        let empty = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_all(empty, CERTIFICATE), Err(PemError::Framing));
        // Bad base64 (wrong padding) and the wrong label.
        let bad64 = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_all(bad64, CERTIFICATE), Err(PemError::Base64));
        let crl = encode(X509_CRL, &[1]);
        assert!(matches!(decode_all(&crl, CERTIFICATE), Err(PemError::UnexpectedLabel { .. })));
        assert!(matches!(decode_private_key(&crl), Err(PemError::UnexpectedLabel { .. })));
        // Certificates must also be valid DER.
        assert_eq!(parse_certificates(&good), Err(VerifyError::Malformed));
    }
}
