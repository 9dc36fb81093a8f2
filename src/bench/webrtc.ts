/**
 * WebRTC benchmark cases: the time from the first offer call to an open data channel at both
 * ends, on loopback, both peers in this process (`datachannel-open-stack`): the shipped
 * stack (node-datachannel) against werift in the same run. The signed variant, `datachannel-open`
 * (./peering.ts), measures the verified open against the same stack unsigned.
 */

import { createStack, createWeriftStackForTestingOnly, openChannelPair, type PairInit, type WebRtcStack } from '../webrtc/index.js'
import type { Operation } from './harness.js'
import type { Case } from './index.js'

/**
 * One open (both sessions, the channel open at both ends), then both closed. libdatachannel
 * loses about 1 loopback open in 300–500 (ERR_WEBRTC_ICE or ERR_WEBRTC_DTLS between genuine
 * peers, more often next to a close): such an attempt is retried, and its time counts.
 */
export function openOnce(offering: WebRtcStack, answering: WebRtcStack = offering, init: PairInit = {}): Operation {
  return async () => {
    const pair = await openChannelPair(offering, answering, { retries: 2, ...init })
    pair.close()
    return 1
  }
}

export const WEBRTC_CASES: Case[] = [
  {
    op: 'datachannel-open-stack',
    baseline: 'werift 0.24.4, same steps (ztmesh: node-datachannel)',
    target: null,
    setup: async () => {
      const ztmesh = openOnce(createStack())
      const baseline = openOnce(createWeriftStackForTestingOnly())
      // A first open of each loads the stack (werift is imported on first use) outside the clock.
      await ztmesh()
      await baseline()
      return { ztmesh, baseline }
    },
  },
]
