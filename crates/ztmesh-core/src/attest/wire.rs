//! A bounds-checked reader over TPM structures.
//!
//! TPM 2.0 marshalling (Part 2) is big-endian; the tpm2-tools PCR file stores C structures in
//! little-endian order, so both are here. Every read checks the remaining length and returns
//! `None` instead of panicking; callers turn `None` into their error.

/// A cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len()
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.input.len() {
            return None;
        }
        let (head, tail) = self.input.split_at(len);
        self.input = tail;
        Some(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16_be(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32_be(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64_be(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16_le(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32_le(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    /// A `TPM2B_*`: a big-endian `u16` size, then at most `max` bytes.
    pub(crate) fn tpm2b(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = usize::from(self.u16_be()?);
        if len > max {
            return None;
        }
        self.take(len)
    }
}

/// Appends a `TPM2B_*` holding `data` (at most `u16::MAX` bytes; callers bound it lower).
#[cfg(test)]
pub(crate) fn push_tpm2b(out: &mut Vec<u8>, data: &[u8]) -> Option<()> {
    out.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
    out.extend_from_slice(data);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[0x00, 0x02, 0xaa, 0xbb, 0x01]);
        assert_eq!(r.tpm2b(2), Some(&[0xaa, 0xbb][..]));
        assert_eq!(r.u16_be(), None);
        assert_eq!(r.u8(), Some(1));
        assert!(r.is_empty());
        assert_eq!(Reader::new(&[0x00, 0x03, 1, 2, 3]).tpm2b(2), None);
        assert_eq!(Reader::new(&[0x00, 0x03, 1, 2]).tpm2b(8), None);
        assert_eq!(Reader::new(&[1, 0, 0, 0]).u32_le(), Some(1));
        assert_eq!(Reader::new(&[0, 0, 0, 1]).u32_be(), Some(1));
        let mut out = Vec::new();
        assert_eq!(push_tpm2b(&mut out, b"ab"), Some(()));
        assert_eq!(out, [0, 2, b'a', b'b']);
    }
}
