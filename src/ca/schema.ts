/** The CA registry's schema, one migration step per release that changed it. */

import { AUDIT_CHECKPOINT_MIGRATION, AUDIT_MIGRATION } from '../audit/index.js'
import type { Migration } from '../storage/index.js'

export const CA_MIGRATIONS: readonly Migration[] = [
  `
  CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    serial TEXT
  );
  CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    spki_sha256 TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    pem TEXT NOT NULL,
    revoked_at INTEGER,
    revocation_reason TEXT
  );
  CREATE INDEX certificates_by_device ON certificates (tenant, device_id);
  CREATE INDEX certificates_by_spki ON certificates (spki_sha256);
  CREATE TABLE rotations (
    serial TEXT PRIMARY KEY,
    last_timestamp INTEGER NOT NULL
  );
  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  ${AUDIT_MIGRATION}
  `,
  // TPM attestation: single-use nonces for enrollment quotes, and per device what its enrollment
  // proved (attestation key, quoted PCRs) and how its re-attestations went. Tokens carry the
  // roles of the certificate they pay for (what a PCR drift can demote).
  `
  ALTER TABLE tokens ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
  CREATE TABLE attest_nonces (
    nonce TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
  );
  CREATE INDEX attest_nonces_by_node ON attest_nonces (node_id, created_at);
  CREATE INDEX attest_nonces_by_expiry ON attest_nonces (expires_at);
  CREATE TABLE attestations (
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    attested INTEGER NOT NULL CHECK (attested IN (0, 1)),
    ak_public_pem TEXT,
    pcrs TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    last_checked_at INTEGER,
    last_attested_at INTEGER,
    last_verdict TEXT,
    last_reason TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    demoted_at INTEGER,
    demoted_roles TEXT,
    PRIMARY KEY (tenant, device_id)
  );
  `,
  // Certificate lineage: a rotated certificate names its predecessor, and a certificate has at
  // most one successor (the unique index is the rule's backstop). The predecessor is revoked as
  // superseded at overlap_ends_at. The lineage also makes the rotations table's replay marks
  // redundant: a replayed rotation names a certificate that already has its successor.
  `
  ALTER TABLE certificates ADD COLUMN predecessor TEXT REFERENCES certificates (serial);
  ALTER TABLE certificates ADD COLUMN overlap_ends_at INTEGER;
  CREATE UNIQUE INDEX certificates_by_predecessor ON certificates (predecessor) WHERE predecessor IS NOT NULL;
  CREATE INDEX certificates_by_overlap_end ON certificates (overlap_ends_at) WHERE overlap_ends_at IS NOT NULL AND revoked_at IS NULL;
  DROP TABLE rotations;
  `,
  // Enrollment tokens bound to the CSR: a request carries the token's id and a signature under
  // its proof key, never the token; the registry keeps the public key (tokens of the earlier
  // format, without one, are refused).
  `
  ALTER TABLE tokens ADD COLUMN proof_key TEXT;
  `,
  // Signed audit checkpoints (issue 10 §5): what truncation and retention are checked against.
  AUDIT_CHECKPOINT_MIGRATION,
  // Credential activation (issue 10 §3): what a nonce's challenge expects back, and for which AK.
  `
  ALTER TABLE attest_nonces ADD COLUMN credential_sha256 TEXT;
  ALTER TABLE attest_nonces ADD COLUMN ak_spki_sha256 TEXT;
  `,
]
