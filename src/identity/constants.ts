/** The files of an identity directory. */
export const FILES = {
  /** The software keystore (entry {@link KEY_NAME}), encrypted under the passphrase. */
  keystore: 'keystore.ztks',
  /** Where the device key lives: `{"version":1,"keystore":"tpm"|"software","tcti"?}`. */
  key: 'key.json',
  /** The TPM blob of the device's signing key (only that TPM can load it). */
  tpmKey: 'tpm-key.blob',
  /** The TPM blob of the device's attestation key. */
  tpmAk: 'tpm-ak.blob',
  certificate: 'cert.pem',
  caChain: 'ca.pem',
  trust: 'trust.pem',
  /** The CA's config for devices. */
  config: 'config.json',
} as const

/** The software keystore's entry for the device key. */
export const KEY_NAME = 'device'

/** The PCRs an enrollment quote covers: firmware, its configuration, option ROMs, Secure Boot. */
export const DEFAULT_ATTESTATION_PCRS: readonly number[] = [0, 1, 2, 3, 7]

/** Per-request time limit towards the CA, ms. */
export const DEFAULT_TIMEOUT_MS = 15_000
