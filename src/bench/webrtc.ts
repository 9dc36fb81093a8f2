/**
 * WebRTC benchmark cases: the time from the first offer call to an open data channel at both
 * ends, on loopback, both peers in this process (`datachannel-open`, stack part): the shipped
 * stack (node-datachannel) against werift in the same run. The signed variant (signing and
 * verifying offers and answers through openChannelPair's hooks) is measured against this one.
 */

import { setTimeout as sleep } from 'node:timers/promises'

import { createStack, createWeriftStackForTestingOnly, openChannelPair, type ChannelPair, type PairInit, type WebRtcStack } from '../webrtc/index.js'
import type { Operation } from './harness.js'
import type { Case } from './index.js'

/**
 * One open, both sessions and the channel open at both ends. The pairs stay open until
 * `closeAll`, so that no close runs during the measurement. libdatachannel loses about 1 loopback
 * open in 500 (ERR_WEBRTC_ICE or ERR_WEBRTC_DTLS between genuine peers): such an attempt is
 * retried, and its time counts.
 */
export function opener(offering: WebRtcStack, answering: WebRtcStack = offering, init: PairInit = {}): { open: Operation; closeAll: () => Promise<void> } {
  const pairs: ChannelPair[] = []
  return {
    open: async () => {
      pairs.push(await openChannelPair(offering, answering, { retries: 2, ...init }))
      return 1
    },
    closeAll: async () => {
      for (const pair of pairs.splice(0)) pair.close()
      await sleep(100)
    },
  }
}

export const WEBRTC_CASES: Case[] = [
  {
    op: 'datachannel-open',
    baseline: 'werift 0.24.4, same steps (ztmesh: node-datachannel)',
    target: null,
    setup: async () => {
      const ztmesh = opener(createStack())
      const baseline = opener(createWeriftStackForTestingOnly())
      // A first open of each loads the stack (werift is imported on first use) outside the clock.
      await ztmesh.open()
      await baseline.open()
      return {
        ztmesh: ztmesh.open,
        baseline: baseline.open,
        teardown: async () => {
          await ztmesh.closeAll()
          await baseline.closeAll()
        },
      }
    },
  },
]
