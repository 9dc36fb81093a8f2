//! The one rule for a list of SHA-256 PCRs to quote.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::EnrollError;

/// The highest PCR index of the PC client profile (24 PCRs).
pub const MAX_PCR_INDEX: u8 = 23;

/// A selection of SHA-256 PCRs: 1 to 24 distinct indices in `0..=23`, kept ascending.
///
/// Order carries no meaning (a TPM selection is a bitmap, and the quoted values come back in
/// index order), so any order is accepted and the selection is kept ascending: one selection,
/// one encoding. A duplicate is refused rather than merged: a list that names a PCR twice was
/// built by mistake or by someone probing the parser.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PcrSelection(Vec<u8>);

impl PcrSelection {
    /// Checks a list of PCR indices; [`EnrollError::InvalidArgument`] when it breaks the rule.
    pub fn new(indices: &[u32]) -> Result<Self, EnrollError> {
        Self::check(indices).map_err(EnrollError::InvalidArgument)
    }

    /// The indices, ascending.
    pub fn indices(&self) -> &[u8] {
        &self.0
    }

    /// The rule, with a detail message naming what broke it.
    pub(crate) fn check(indices: &[u32]) -> Result<Self, String> {
        if indices.is_empty() || indices.len() > usize::from(MAX_PCR_INDEX) + 1 {
            return Err("a PCR selection names 1 to 24 PCRs".into());
        }
        let mut seen = [false; MAX_PCR_INDEX as usize + 1];
        for &index in indices {
            let slot = usize::try_from(index).ok().and_then(|i| seen.get_mut(i));
            match slot {
                None => return Err("PCR indices are 0 to 23".into()),
                Some(true) => return Err("a PCR selection names each PCR once".into()),
                Some(slot) => *slot = true,
            }
        }
        Ok(Self((0..=MAX_PCR_INDEX).filter(|&i| seen[usize::from(i)]).collect()))
    }
}

impl Serialize for PcrSelection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PcrSelection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // At most 25 elements are read before the rule refuses the list, so a long array costs nothing.
        struct Bounded(Vec<u32>);
        impl<'de> Deserialize<'de> for Bounded {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = Bounded;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a list of PCR indices")
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bounded, A::Error> {
                        let mut out = Vec::new();
                        while let Some(index) = seq.next_element::<u32>()? {
                            if out.len() > usize::from(MAX_PCR_INDEX) {
                                return Err(serde::de::Error::custom("a PCR selection names 1 to 24 PCRs"));
                            }
                            out.push(index);
                        }
                        Ok(Bounded(out))
                    }
                }
                deserializer.deserialize_seq(Visitor)
            }
        }
        let Bounded(indices) = Bounded::deserialize(deserializer)?;
        Self::check(&indices).map_err(serde::de::Error::custom)
    }
}
