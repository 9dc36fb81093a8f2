//! The SDP rule of signed signaling: a session description carries exactly one DTLS
//! certificate fingerprint, `a=fingerprint:sha-256 XX:XX:…` (RFC 8122), at the session level or
//! in every media section, all agreeing.
//!
//! The fingerprint is what binds the DTLS handshake to the signed offer: the WebRTC stack must
//! refuse a DTLS peer whose certificate does not hash to it. An SDP with no fingerprint, one of
//! another hash function, two different ones, or a media section without one leaves the stack a
//! choice, so it is refused here ([`SignalError::Sdp`]) before anything is signed or accepted.

use super::SignalError;

/// The SHA-256 DTLS certificate fingerprint that `sdp` commits to; [`SignalError::Sdp`] unless
/// there is exactly one (session-level, or in every media section), sha-256, all agreeing.
/// Lines end with CRLF or LF; the hash function's name is matched in any case, the hex digits
/// in any case, always 32 bytes separated by `:`.
pub fn sdp_fingerprint(sdp: &str) -> Result<[u8; 32], SignalError> {
    // The fingerprint of each section: the session (index 0), then each `m=` section.
    let mut sections: Vec<Option<[u8; 32]>> = vec![None];
    for line in sdp.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with("m=") {
            sections.push(None);
            continue;
        }
        let Some(value) = line.strip_prefix("a=fingerprint:") else { continue };
        let fingerprint = parse_fingerprint(value)?;
        let slot = sections.last_mut().ok_or(SignalError::Sdp)?;
        // A second fingerprint line in one section, even the same, is refused: one and only one.
        if slot.replace(fingerprint).is_some() {
            return Err(SignalError::Sdp);
        }
    }
    let (session, media) = sections.split_first().ok_or(SignalError::Sdp)?;
    let mut found: Option<[u8; 32]> = *session;
    // A media section without its own fingerprint inherits the session's; with none, it has none.
    for section in media {
        let effective = section.or(*session).ok_or(SignalError::Sdp)?;
        match found {
            Some(f) if f != effective => return Err(SignalError::Sdp),
            _ => found = Some(effective),
        }
    }
    found.ok_or(SignalError::Sdp)
}

/// `sha-256 XX:XX:…:XX` → the 32 bytes; anything else is [`SignalError::Sdp`].
fn parse_fingerprint(value: &str) -> Result<[u8; 32], SignalError> {
    let (function, hex) = value.split_once(' ').ok_or(SignalError::Sdp)?;
    if !function.eq_ignore_ascii_case("sha-256") {
        return Err(SignalError::Sdp);
    }
    let hex = hex.trim_end_matches([' ', '\t']).as_bytes();
    if hex.len() != 32 * 3 - 1 {
        return Err(SignalError::Sdp);
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = &hex[i * 3..i * 3 + 2];
        if i < 31 && hex[i * 3 + 2] != b':' {
            return Err(SignalError::Sdp);
        }
        let digit = |b: u8| char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok()).ok_or(SignalError::Sdp);
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Ok(out)
}
