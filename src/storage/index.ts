/**
 * SQLite storage, the embedded default (better-sqlite3): one file per component directory,
 * WAL journal, foreign keys on, a busy timeout so a second process waits instead of failing,
 * and schema migrations numbered by `PRAGMA user_version`.
 *
 * better-sqlite3 is synchronous on purpose: a transaction runs to its end without yielding to
 * the event loop, so requests racing inside one process are serialized by construction, and
 * `BEGIN IMMEDIATE` serializes writers across processes.
 */

import Database from 'better-sqlite3'

import { createError } from '../errors.js'

/** An open database. */
export type Db = Database.Database

/** One schema step: the SQL that moves `user_version` from its index to its index + 1. */
export type Migration = string

/** Options of {@link openDatabase}. */
export interface OpenDatabaseInit {
  /** Schema steps, applied in order from the file's current `user_version`. */
  migrations: readonly Migration[]
  /** How long a writer waits for another process's lock, in ms. Default 5000. */
  busyTimeoutMs?: number
}

/**
 * Opens (or creates) a database file and brings its schema up to date.
 *
 * @example
 * ```ts
 * const db = openDatabase('/var/lib/ztmesh/ca/registry.db', { migrations: ['CREATE TABLE t (x)'] })
 * ```
 */
export function openDatabase(path: string, init: OpenDatabaseInit): Db {
  let db: Db
  try {
    db = new Database(path, { timeout: init.busyTimeoutMs ?? 5000 })
  } catch (error) {
    throw createError('ERR_STORAGE', `cannot open the database: ${(error as Error).message}`, { cause: error })
  }
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    migrate(db, init.migrations)
    return db
  } catch (error) {
    db.close()
    throw error
  }
}

function migrate(db: Db, migrations: readonly Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > migrations.length) {
    throw createError('ERR_STORAGE', `the database schema (version ${current}) is newer than this build knows`)
  }
  for (let version = current; version < migrations.length; version++) {
    db.transaction(() => {
      db.exec(migrations[version]!)
      db.pragma(`user_version = ${version + 1}`)
    }).immediate()
  }
}
