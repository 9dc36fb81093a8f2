//! PCR banks, PCR selections, and PCR values in the file format of tpm2-tools
//! ([`PcrValues`], whose documentation describes the format).

use ring::digest::{Context, SHA256};

use super::error::AttestError;
use super::wire::Reader;

/// The most banks a `TPML_PCR_SELECTION` may hold (`TPM2_NUM_PCR_BANKS`).
const MAX_BANKS: usize = 16;
/// The largest `sizeofSelect` (`TPM2_PCR_SELECT_MAX`): 32 PCRs.
const MAX_SELECT: usize = 4;
/// The most `TPML_DIGEST`s in a PCR values file (`TPM2_MAX_PCRS` in tpm2-tools).
const MAX_DIGEST_LISTS: usize = 32;
/// The most digests in one `TPML_DIGEST`.
const DIGESTS_PER_LIST: usize = 8;
/// The size of a digest buffer (`sizeof(TPMU_HA)`).
const DIGEST_BUFFER: usize = 64;
/// `sizeof(TPMS_PCR_SELECTION)`, padding included.
const SELECTION_SLOT: usize = 8;
/// `sizeof(TPML_PCR_SELECTION)`.
const SELECTION_LIST: usize = 4 + MAX_BANKS * SELECTION_SLOT;
/// `sizeof(TPML_DIGEST)`.
const DIGEST_LIST: usize = 4 + DIGESTS_PER_LIST * (2 + DIGEST_BUFFER);

/// A PCR bank, named by its hash algorithm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PcrBank {
    /// SHA-1 (`TPM_ALG_SHA1`, 0x0004).
    Sha1,
    /// SHA-256 (`TPM_ALG_SHA256`, 0x000B).
    Sha256,
    /// SHA-384 (`TPM_ALG_SHA384`, 0x000C).
    Sha384,
    /// SHA-512 (`TPM_ALG_SHA512`, 0x000D).
    Sha512,
    /// SM3-256 (`TPM_ALG_SM3_256`, 0x0012).
    Sm3_256,
}

impl PcrBank {
    /// The bank of a TPM hash algorithm identifier, if it is one of the above.
    pub fn from_algorithm_id(id: u16) -> Option<Self> {
        match id {
            0x0004 => Some(Self::Sha1),
            0x000b => Some(Self::Sha256),
            0x000c => Some(Self::Sha384),
            0x000d => Some(Self::Sha512),
            0x0012 => Some(Self::Sm3_256),
            _ => None,
        }
    }

    /// The TPM hash algorithm identifier (`TPM_ALG_ID`).
    pub fn algorithm_id(self) -> u16 {
        match self {
            Self::Sha1 => 0x0004,
            Self::Sha256 => 0x000b,
            Self::Sha384 => 0x000c,
            Self::Sha512 => 0x000d,
            Self::Sm3_256 => 0x0012,
        }
    }

    /// The bank's name as tpm2-tools spells it: `sha1`, `sha256`, `sha384`, `sha512`, `sm3_256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
            Self::Sm3_256 => "sm3_256",
        }
    }

    /// The size of the bank's PCR values in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sm3_256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// One PCR and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PcrValue {
    /// The bank.
    pub bank: PcrBank,
    /// The PCR index, 0 to 31.
    pub index: u8,
    /// The value, [`PcrBank::digest_len`] bytes.
    pub value: Vec<u8>,
}

/// One bank's entry of a `TPML_PCR_SELECTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BankSelection {
    pub(crate) bank: PcrBank,
    pub(crate) size_of_select: u8,
    /// Bit `i` selects PCR `i`; only the first `size_of_select` bytes may be set.
    pub(crate) bitmap: u32,
}

impl BankSelection {
    /// The selected PCRs in ascending order.
    fn indexes(self) -> impl Iterator<Item = u8> {
        (0u8..32).filter(move |i| self.bitmap & (1 << i) != 0)
    }

    /// Builds an entry from the `sizeofSelect` and `pcrSelect` bytes, if the size is in range.
    fn new(bank: PcrBank, size_of_select: u8, select: &[u8]) -> Option<Self> {
        if usize::from(size_of_select) > MAX_SELECT || select.len() < usize::from(size_of_select) {
            return None;
        }
        let mut bytes = [0u8; 4];
        bytes[..usize::from(size_of_select)].copy_from_slice(&select[..usize::from(size_of_select)]);
        Some(Self { bank, size_of_select, bitmap: u32::from_le_bytes(bytes) })
    }
}

/// The `(bank, index)` pairs a selection names, in the order the TPM hashes their values.
pub(crate) fn selected(selection: &[BankSelection]) -> Vec<(PcrBank, u8)> {
    selection.iter().flat_map(|s| s.indexes().map(move |i| (s.bank, i))).collect()
}

/// Parses a marshalled `TPML_PCR_SELECTION` (TPM byte order). Refuses more than 16 banks, a
/// bank named twice, an unknown bank and a `sizeofSelect` above 4.
pub(crate) fn read_selection(reader: &mut Reader<'_>) -> Option<Vec<BankSelection>> {
    let count = usize::try_from(reader.u32_be()?).ok()?;
    if count > MAX_BANKS {
        return None;
    }
    let mut banks: Vec<BankSelection> = Vec::with_capacity(count);
    for _ in 0..count {
        let bank = PcrBank::from_algorithm_id(reader.u16_be()?)?;
        let size = reader.u8()?;
        let select = reader.take(usize::from(size))?;
        if banks.iter().any(|b| b.bank == bank) {
            return None;
        }
        banks.push(BankSelection::new(bank, size, select)?);
    }
    Some(banks)
}

/// PCR values and the selection they answer, as carried next to a quote.
///
/// # The PCR values file
///
/// `tpm2_quote -o pcrs.bin` writes, and `tpm2_checkquote -f pcrs.bin` reads, the "serialized"
/// format of tpm2-tools (`pcr_fwrite_serialized` in its `lib/pcr.c`): raw C structures as the
/// TSS headers lay them out on a 64-bit Linux host, every integer little-endian.
///
/// | offset | length | field |
/// | --- | --- | --- |
/// | 0 | 4 | `TPML_PCR_SELECTION.count` `c`, at most 16 |
/// | 4 | 16 × 8 | `pcrSelections[16]`, of which the first `c` count; each is `hash` (2), `sizeofSelect` (1, at most 4), `pcrSelect[4]`, one byte of padding |
/// | 132 | 4 | `n`, the number of `TPML_DIGEST`s that follow, at most 32 |
/// | 136 | `n` × 532 | `n` × `TPML_DIGEST`: `count` (4, at most 8), then `digests[8]`, each `size` (2, at most 64) and `buffer[64]` |
///
/// The values are the digests of the `TPML_DIGEST`s taken in order, `count` from each, and
/// belong to the selected PCRs in selection order: bank by bank, each bank's PCRs in ascending
/// index (the order `TPM2_PCR_Read` and `TPM2_Quote` use). Unused array slots and padding are
/// ignored when reading and written as zeros. A file must be exactly `136 + n × 532` bytes long,
/// name each bank at most once, and hold exactly one value, of the bank's digest size, per
/// selected PCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrValues {
    selection: Vec<BankSelection>,
    values: Vec<PcrValue>,
}

impl PcrValues {
    /// Parses the PCR values file of tpm2-tools (see [above](Self)).
    pub fn from_tpm2_tools(bytes: &[u8]) -> Result<Self, AttestError> {
        parse_tpm2_tools(bytes).ok_or(AttestError::Malformed)
    }

    /// SHA-256 PCR values, from `(index, value)` pairs in any order. Fails with
    /// [`AttestError::Malformed`] for an index above 31 or an index given twice.
    pub fn sha256(values: &[(u8, [u8; 32])]) -> Result<Self, AttestError> {
        let mut sorted: Vec<(u8, [u8; 32])> = values.to_vec();
        sorted.sort_by_key(|(index, _)| *index);
        let mut bitmap = 0u32;
        for (index, _) in &sorted {
            let bit = 1u32.checked_shl(u32::from(*index)).ok_or(AttestError::Malformed)?;
            if bitmap & bit != 0 {
                return Err(AttestError::Malformed);
            }
            bitmap |= bit;
        }
        // Three bytes (24 PCRs, what TPMs implement) unless a higher PCR is named.
        let size_of_select = if bitmap >> 24 == 0 { 3 } else { 4 };
        let selection = vec![BankSelection { bank: PcrBank::Sha256, size_of_select, bitmap }];
        let values = sorted
            .into_iter()
            .map(|(index, value)| PcrValue { bank: PcrBank::Sha256, index, value: value.to_vec() })
            .collect();
        Ok(Self { selection, values })
    }

    /// Encodes the values in the PCR values file format of tpm2-tools.
    pub fn to_tpm2_tools(&self) -> Vec<u8> {
        let lists = self.values.len().div_ceil(DIGESTS_PER_LIST);
        let mut out = Vec::with_capacity(SELECTION_LIST + 4 + lists * DIGEST_LIST);
        out.extend_from_slice(&le_u32(self.selection.len()));
        for slot in 0..MAX_BANKS {
            match self.selection.get(slot) {
                Some(s) => {
                    out.extend_from_slice(&s.bank.algorithm_id().to_le_bytes());
                    out.push(s.size_of_select);
                    out.extend_from_slice(&s.bitmap.to_le_bytes());
                    out.push(0);
                }
                None => out.extend_from_slice(&[0; SELECTION_SLOT]),
            }
        }
        out.extend_from_slice(&le_u32(lists));
        for chunk in self.values.chunks(DIGESTS_PER_LIST) {
            out.extend_from_slice(&le_u32(chunk.len()));
            for slot in 0..DIGESTS_PER_LIST {
                let mut buffer = [0u8; DIGEST_BUFFER];
                let value = chunk.get(slot).map_or(&[][..], |v| v.value.as_slice());
                buffer[..value.len()].copy_from_slice(value);
                out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&buffer);
            }
        }
        out
    }

    /// The values, in selection order.
    pub fn values(&self) -> &[PcrValue] {
        &self.values
    }

    /// The value of PCR `index` in `bank`, if selected.
    pub fn get(&self, bank: PcrBank, index: u8) -> Option<&[u8]> {
        self.values.iter().find(|v| v.bank == bank && v.index == index).map(|v| v.value.as_slice())
    }

    /// The `(bank, index)` pairs, in selection order.
    pub(crate) fn selected(&self) -> Vec<(PcrBank, u8)> {
        selected(&self.selection)
    }

    /// SHA-256 over the values in order: the PCR digest (`pcrDigest`) a quote of these PCRs
    /// by an attestation key that signs with SHA-256 carries.
    pub fn quote_digest(&self) -> [u8; 32] {
        let mut context = Context::new(&SHA256);
        for value in &self.values {
            context.update(&value.value);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }
}

/// A count as the little-endian `UINT32` of a C structure (counts here are small by construction).
fn le_u32(count: usize) -> [u8; 4] {
    u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes()
}

fn parse_tpm2_tools(bytes: &[u8]) -> Option<PcrValues> {
    let mut reader = Reader::new(bytes);
    let count = usize::try_from(reader.u32_le()?).ok()?;
    if count > MAX_BANKS {
        return None;
    }
    let mut selection: Vec<BankSelection> = Vec::with_capacity(count);
    for slot in 0..MAX_BANKS {
        let raw = reader.take(SELECTION_SLOT)?;
        if slot >= count {
            continue;
        }
        let mut entry = Reader::new(raw);
        let bank = PcrBank::from_algorithm_id(entry.u16_le()?)?;
        let size = entry.u8()?;
        let select = entry.take(MAX_SELECT)?;
        if selection.iter().any(|s| s.bank == bank) {
            return None;
        }
        selection.push(BankSelection::new(bank, size, select)?);
    }
    let lists = usize::try_from(reader.u32_le()?).ok()?;
    if lists > MAX_DIGEST_LISTS || reader.remaining() != lists * DIGEST_LIST {
        return None;
    }
    let mut digests: Vec<&[u8]> = Vec::new();
    for _ in 0..lists {
        let used = usize::try_from(reader.u32_le()?).ok()?;
        if used > DIGESTS_PER_LIST {
            return None;
        }
        for slot in 0..DIGESTS_PER_LIST {
            let size = usize::from(reader.u16_le()?);
            let buffer = reader.take(DIGEST_BUFFER)?;
            if slot < used {
                digests.push(buffer.get(..size)?);
            }
        }
    }
    let pcrs = selected(&selection);
    if !reader.is_empty() || pcrs.len() != digests.len() {
        return None;
    }
    let mut values = Vec::with_capacity(pcrs.len());
    for ((bank, index), digest) in pcrs.into_iter().zip(digests) {
        if digest.len() != bank.digest_len() {
            return None;
        }
        values.push(PcrValue { bank, index, value: digest.to_vec() });
    }
    Some(PcrValues { selection, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWELVE: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-12pcrs.pcrs");
    const TWO_BANKS: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-2banks.pcrs");
    const PCR16: &str = "90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365";

    #[test]
    fn reads_files_written_by_tpm2_tools() {
        let twelve = PcrValues::from_tpm2_tools(TWELVE).unwrap();
        let indexes: Vec<u8> = twelve.values().iter().map(|v| v.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16]);
        assert!(twelve.values().iter().all(|v| v.bank == PcrBank::Sha256));
        assert_eq!(hex::encode(twelve.get(PcrBank::Sha256, 16).unwrap()), PCR16);
        assert_eq!(twelve.get(PcrBank::Sha256, 0).unwrap(), [0; 32]);
        assert_eq!(twelve.get(PcrBank::Sha256, 11), None);
        // Written back byte for byte.
        assert_eq!(twelve.to_tpm2_tools(), TWELVE);

        let two = PcrValues::from_tpm2_tools(TWO_BANKS).unwrap();
        let pcrs: Vec<(PcrBank, u8, usize)> = two.values().iter().map(|v| (v.bank, v.index, v.value.len())).collect();
        assert_eq!(pcrs, [(PcrBank::Sha1, 0, 20), (PcrBank::Sha1, 16, 20), (PcrBank::Sha256, 16, 32)]);
        assert_eq!(two.to_tpm2_tools(), TWO_BANKS);
    }

    #[test]
    fn builds_sha256_values() {
        let built = PcrValues::sha256(&[(16, [7; 32]), (0, [1; 32])]).unwrap();
        assert_eq!(built.selected(), [(PcrBank::Sha256, 0), (PcrBank::Sha256, 16)]);
        assert_eq!(PcrValues::from_tpm2_tools(&built.to_tpm2_tools()).unwrap(), built);
        let high = PcrValues::sha256(&[(31, [7; 32])]).unwrap();
        assert_eq!(PcrValues::from_tpm2_tools(&high.to_tpm2_tools()).unwrap(), high);
        assert_eq!(PcrValues::sha256(&[(32, [0; 32])]), Err(AttestError::Malformed));
        assert_eq!(PcrValues::sha256(&[(3, [0; 32]), (3, [1; 32])]), Err(AttestError::Malformed));
        let empty = PcrValues::sha256(&[]).unwrap();
        assert_eq!(PcrValues::from_tpm2_tools(&empty.to_tpm2_tools()).unwrap(), empty);
        assert_eq!(empty.quote_digest(), crate::pki::sha256(b""));
    }

    #[test]
    fn rejects_malformed_files() {
        // Every truncation, and any byte appended.
        for len in 0..TWELVE.len() {
            assert_eq!(PcrValues::from_tpm2_tools(&TWELVE[..len]), Err(AttestError::Malformed), "{len}");
        }
        let mut long = TWELVE.to_vec();
        long.push(0);
        assert_eq!(PcrValues::from_tpm2_tools(&long), Err(AttestError::Malformed));

        let edit = |offset: usize, bytes: &[u8]| {
            let mut file = TWELVE.to_vec();
            file[offset..offset + bytes.len()].copy_from_slice(bytes);
            PcrValues::from_tpm2_tools(&file)
        };
        // Huge or out-of-range counts.
        assert_eq!(edit(0, &u32::MAX.to_le_bytes()), Err(AttestError::Malformed));
        assert_eq!(edit(0, &17u32.to_le_bytes()), Err(AttestError::Malformed));
        assert_eq!(edit(132, &u32::MAX.to_le_bytes()), Err(AttestError::Malformed));
        assert_eq!(edit(136, &9u32.to_le_bytes()), Err(AttestError::Malformed));
        // Unknown bank, sizeofSelect above 4, the same bank twice.
        assert_eq!(edit(4, &[0x99, 0x00]), Err(AttestError::Malformed));
        assert_eq!(edit(6, &[5]), Err(AttestError::Malformed));
        assert_eq!(edit(0, &2u32.to_le_bytes()), Err(AttestError::Malformed));
        let mut twice = TWELVE.to_vec();
        twice[0] = 2;
        twice[12..20].copy_from_slice(&TWELVE[4..12]);
        assert_eq!(PcrValues::from_tpm2_tools(&twice), Err(AttestError::Malformed));
        // A PCR more or fewer selected than values given.
        assert_eq!(edit(9, &[0x03]), Err(AttestError::Malformed));
        assert_eq!(edit(9, &[0x00]), Err(AttestError::Malformed));
        // A digest of the wrong size, or larger than its buffer.
        assert_eq!(edit(140, &20u16.to_le_bytes()), Err(AttestError::Malformed));
        assert_eq!(edit(140, &65u16.to_le_bytes()), Err(AttestError::Malformed));
        // Fewer digests used in a list than selected PCRs.
        assert_eq!(edit(136, &7u32.to_le_bytes()), Err(AttestError::Malformed));
        // Padding and unused slots are ignored.
        assert!(edit(11, &[0xff]).is_ok());
        assert!(edit(20, &[0xff; 8]).is_ok());
    }

    #[test]
    fn parses_tpm_selections() {
        let marshalled = [0, 0, 0, 2, 0x00, 0x04, 3, 0x01, 0x00, 0x01, 0x00, 0x0b, 3, 0x00, 0x00, 0x01];
        let selection = read_selection(&mut Reader::new(&marshalled)).unwrap();
        assert_eq!(selected(&selection), [(PcrBank::Sha1, 0), (PcrBank::Sha1, 16), (PcrBank::Sha256, 16)]);
        for len in 0..marshalled.len() {
            assert_eq!(read_selection(&mut Reader::new(&marshalled[..len])), None);
        }
        assert_eq!(read_selection(&mut Reader::new(&[0xff, 0xff, 0xff, 0xff])), None);
        assert_eq!(read_selection(&mut Reader::new(&[0, 0, 0, 1, 0, 0x0b, 5, 0, 0, 0, 0, 0])), None);
        assert_eq!(read_selection(&mut Reader::new(&[0, 0, 0, 1, 0, 0x99, 3, 0, 0, 0])), None);
        let twice = [0, 0, 0, 2, 0, 0x0b, 3, 1, 0, 0, 0, 0x0b, 3, 2, 0, 0];
        assert_eq!(read_selection(&mut Reader::new(&twice)), None);
    }
}
