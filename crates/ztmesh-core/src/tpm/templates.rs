//! The public templates of the objects ztmesh creates in a TPM (tabled in the
//! [module documentation](super)), and the checks a loaded blob's public area must pass.
//!
//! The primary is the key `tpm2_createprimary -C o -G ecc256:aes128cfb` makes: the same
//! template always derives the same key from the owner hierarchy's seed, so it is re-created
//! when needed and never stored.

use tss_esapi::attributes::{ObjectAttributes, ObjectAttributesBuilder};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, KeyedHashScheme, Public, PublicBuilder,
    PublicEccParametersBuilder, PublicKeyedHashParameters, SymmetricDefinitionObject,
};

use super::error::{from_tss, TpmError};

/// The scheme of every ztmesh signing key and AK.
const ECDSA_SHA256: EccScheme = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256));

/// The storage primary key under the owner hierarchy.
pub(crate) fn storage_primary() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(from_tss)?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(from_tss)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(from_tss)
}

/// An ECDSA P-256 key that never leaves the TPM; `restricted` makes it an attestation key
/// (it then signs only structures the TPM made itself).
pub(crate) fn ecdsa_key(restricted: bool) -> Result<Public, TpmError> {
    let parameters = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::Null)
        .with_ecc_scheme(ECDSA_SHA256)
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(true)
        .with_is_decryption_key(false)
        .with_restricted(restricted)
        .build()
        .map_err(from_tss)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(key_attributes(restricted)?)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(from_tss)
}

fn key_attributes(restricted: bool) -> Result<ObjectAttributes, TpmError> {
    ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .with_restricted(restricted)
        .build()
        .map_err(from_tss)
}

/// A sealed data object usable only through `policy`.
pub(crate) fn sealed_object(policy: Digest) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .build()
        .map_err(from_tss)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(from_tss)
}

/// The uncompressed point of an ECDSA P-256 key made from [`ecdsa_key`]`(restricted)`, or
/// [`TpmError::Blob`] if `public` is anything else.
pub(crate) fn ecdsa_point(public: &Public, restricted: bool) -> Result<[u8; 65], TpmError> {
    let Public::Ecc { object_attributes, name_hashing_algorithm, parameters, unique, .. } = public else {
        return Err(TpmError::Blob);
    };
    if *object_attributes != key_attributes(restricted)?
        || *name_hashing_algorithm != HashingAlgorithm::Sha256
        || parameters.ecc_curve() != EccCurve::NistP256
        || parameters.ecc_scheme() != ECDSA_SHA256
        || parameters.key_derivation_function_scheme() != KeyDerivationFunctionScheme::Null
        || parameters.symmetric_definition_object() != SymmetricDefinitionObject::Null
    {
        return Err(TpmError::Blob);
    }
    let mut point = [0u8; 65];
    point[0] = 0x04;
    let (x, y) = (unique.x().value(), unique.y().value());
    if x.is_empty() || y.is_empty() || x.len() > 32 || y.len() > 32 {
        return Err(TpmError::Blob);
    }
    point[33 - x.len()..33].copy_from_slice(x);
    point[65 - y.len()..].copy_from_slice(y);
    Ok(point)
}

/// Whether `public` is a sealed data object made from [`sealed_object`].
pub(crate) fn is_sealed_object(public: &Public) -> bool {
    match (public, sealed_object(Digest::default())) {
        (
            Public::KeyedHash { object_attributes, name_hashing_algorithm, parameters, .. },
            Ok(Public::KeyedHash { object_attributes: want, parameters: want_parameters, .. }),
        ) => {
            *object_attributes == want
                && *name_hashing_algorithm == HashingAlgorithm::Sha256
                && *parameters == want_parameters
        }
        _ => false,
    }
}
