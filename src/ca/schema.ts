/** The CA registry's schema, one migration step per release that changed it. */

import { AUDIT_MIGRATION } from '../audit/index.js'
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
]
