/** Flow control shared by the secure streams. */

import type { Duplex } from 'node:stream'

/** Calls `callback` once `duplex` has drained, or at once if it closes first. */
export function whenDrained(duplex: Duplex, callback: () => void): void {
  // Already closed: no 'close' will come again, and nothing will ever drain.
  if (duplex.destroyed) return void process.nextTick(callback)
  const done = () => {
    duplex.off('drain', done).off('close', done)
    callback()
  }
  duplex.once('drain', done).once('close', done)
}
