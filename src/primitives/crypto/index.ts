/** Cryptographic primitives of the Rust core. */
export * from './aead.js'
export * from './kem.js'
export * from './sign.js'
export * from './x25519.js'
