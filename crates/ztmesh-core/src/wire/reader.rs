//! The one bounds-checked cursor the wire formats decode untrusted bytes with: signed objects,
//! signaling bodies, presence leases and hub challenges all read through it, so a bounds rule is
//! written once. Every read either returns exactly what was asked for or [`Truncated`], which
//! each format turns into its own "malformed" error.

/// The input ended before a field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// A cursor over untrusted input; every read is bounds-checked.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A cursor at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self(input)
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], Truncated> {
        if len > self.0.len() {
            return Err(Truncated);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        self.take(N)?.try_into().map_err(|_| Truncated)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Bytes after a `u8` length.
    pub fn u8_prefixed(&mut self) -> Result<&'a [u8], Truncated> {
        let len = usize::from(self.u8()?);
        self.take(len)
    }

    /// Bytes after a big-endian `u16` length.
    pub fn u16_prefixed(&mut self) -> Result<&'a [u8], Truncated> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked_and_a_failed_read_takes_nothing() {
        let mut reader = Reader::new(&[1, 0, 2, 0xaa, 0xbb, 3]);
        assert_eq!(reader.u8(), Ok(1));
        assert_eq!(reader.u16_prefixed(), Ok(&[0xaa, 0xbb][..]));
        assert_eq!(reader.u64(), Err(Truncated));
        assert_eq!(reader.u8_prefixed(), Err(Truncated), "a length of 3 with nothing after it");
        assert_eq!(reader.rest(), &[] as &[u8]);
        assert!(reader.is_empty());
        let mut short = Reader::new(&[0, 5, 1]);
        assert_eq!(short.u16_prefixed(), Err(Truncated));
        assert_eq!(Reader::new(&[0, 0, 0, 7]).u32(), Ok(7));
    }
}
