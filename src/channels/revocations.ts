/**
 * Revocation that reaches live links: {@link LiveLinks} tracks open secure streams and closes
 * every one whose peer a new revocation set names; {@link watchCrlFile} reloads a CRL file the
 * moment it changes (polled every 250 ms, so a replaced file applies well within 2 seconds).
 * CRL numbers only go up: the watcher saves the numbers it applied next to the store and refuses
 * an older CRL (`ERR_REVOCATION_ROLLBACK`), on a reload and after a restart.
 */

import { existsSync, readFileSync, unwatchFile, watchFile } from 'node:fs'

import { writeFileAtomic } from '../storage/files.js'
import { RevocationSet, type RevocationSetInit, type TrustStore } from '../primitives/pki/index.js'
import type { SecureStream } from './noise-link.js'

/** The open secure links of a process. */
export class LiveLinks {
  readonly #links = new Set<SecureStream>()
  /** The revocations applied last: a link added later is checked against them. */
  #revocations: RevocationSet | undefined

  /**
   * Tracks `stream` until it closes, and returns true; a stream whose peer the revocations applied
   * last name (its handshake was decided under older ones) is closed with `ERR_CERT_REVOKED`
   * instead, and false returned.
   */
  add(stream: SecureStream): boolean {
    if (this.#revocations !== undefined) {
      // A refused stream reaches nobody who could hear its error: the caller reports the refusal.
      const unheard = () => {}
      stream.on('error', unheard)
      if (stream.closeIfRevoked(this.#revocations)) return false
      stream.off('error', unheard)
    }
    this.#links.add(stream)
    stream.once('close', () => this.#links.delete(stream))
    return true
  }

  get size(): number {
    return this.#links.size
  }

  /** The open links. */
  list(): SecureStream[] {
    return [...this.#links]
  }

  /** Closes (with `ERR_CERT_REVOKED`) every link whose peer `revocations` names; returns how many. */
  apply(revocations: RevocationSet): number {
    this.#revocations = revocations
    let closed = 0
    for (const link of this.#links) if (link.closeIfRevoked(revocations)) closed++
    return closed
  }
}

/** Options of {@link watchCrlFile}. */
export interface WatchCrlInit {
  trust: TrustStore
  /** The CA chain that issued the CRL (site CA, up to the root). */
  issuerChainPem: string
  /** Called with a fresh set each time the file holds a valid CRL, as new as the last one or newer. */
  onUpdate(revocations: RevocationSet): void
  /**
   * Called when the file is missing or its CRL is refused (the previous set stays in force):
   * `ERR_REVOCATION_ROLLBACK` for an older CRL, `ERR_REVOCATION_STALE` for one past nextUpdate
   * plus the grace period. Report it: it is the audit trail of an attempted rollback.
   */
  onError?(error: unknown): void
  /**
   * Where the CRL numbers applied are saved (written atomically after each CRL applied) and read
   * back at start, so an older CRL is refused after a restart too. Without it, only reloads
   * within this process are monotonic.
   */
  statePath?: string
  /** The freshness rule of the sets built (default: fail closed one day past nextUpdate). */
  freshness?: RevocationSetInit
  intervalMs?: number
}

/**
 * Loads the CRL now and on every change; returns a function that stops watching. The first load
 * throws instead of calling `onError` (a server must not start with no revocations in force), as
 * does a `statePath` holding something other than saved progress (`ERR_REVOCATION_MALFORMED`:
 * better than forgetting which CRLs were applied).
 */
export function watchCrlFile(path: string, init: WatchCrlInit): () => void {
  let progress: Uint8Array | undefined
  if (init.statePath !== undefined && existsSync(init.statePath)) {
    progress = readFileSync(init.statePath)
    new RevocationSet().restoreProgress(progress)
  }
  const apply = () => {
    const revocations = new RevocationSet(init.freshness)
    if (progress !== undefined) revocations.restoreProgress(progress)
    revocations.addCrl(readFileSync(path), init.issuerChainPem, init.trust)
    progress = revocations.progress()
    if (init.statePath !== undefined) writeFileAtomic(init.statePath, progress)
    init.onUpdate(revocations)
  }
  const load = () => {
    try {
      apply()
    } catch (error) {
      init.onError?.(error)
    }
  }
  apply()
  watchFile(path, { interval: init.intervalMs ?? 250, persistent: false }, (current, previous) => {
    if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size || current.ino !== previous.ino) load()
  })
  return () => unwatchFile(path)
}
