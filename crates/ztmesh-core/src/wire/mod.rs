//! What crosses a trust boundary, in one place: the registry of domain-separation labels
//! ([`labels`]), and the signed objects ([`signed`]) every offer, gossip message, bundle and
//! policy document is made of.
//!
//! Every byte a ztmesh peer signs or verifies is encoded by the core, so a Rust gateway and the
//! Node runtime can never disagree on it.

pub mod challenge;
pub mod checkpoint;
pub mod labels;
pub mod presence;
pub mod reader;
pub mod signed;

pub use labels::Label;
pub use signed::{SignedObject, Verified, WireError};
