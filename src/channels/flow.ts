/** Flow control shared by the secure streams. */

import type { Duplex } from 'node:stream'

/** Calls `callback` once `duplex` has drained, or at once if it closes first. */
export function whenDrained(duplex: Duplex, callback: () => void): void {
  const done = () => {
    duplex.off('drain', done).off('close', done)
    callback()
  }
  duplex.once('drain', done).once('close', done)
}
