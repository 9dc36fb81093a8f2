/**
 * The node daemon with a stand-in in its connector slot (the lead plugs discovery, the hub client
 * and WebRTC in there): its `handleOffer` answers `answer:<link peer>:<offer>`, and refuses the
 * offers `forged` (ERR_SIGNATURE), `other-tenant` (ERR_TENANT_MISMATCH) and `crash` (a bug);
 * revocations, connections and sends are reported as event lines. Run as
 * `node --import=tsx __test__/helpers/node-with-connector.ts --config FILE`.
 */
import { createError } from '../../src/errors.js'
import { runNode, type PeerConnectorContext } from '../../src/daemon/node.js'

let context: PeerConnectorContext | undefined
process.exit(
  await runNode({
    connector: {
      start(init) {
        context = init
      },
      async connect(deviceId) {
        if (deviceId === 'nobody') throw createError('ERR_UNREACHABLE', 'no transport in this stand-in')
        context?.emit({ event: 'connector', call: 'connect', deviceId })
        return { send: (data) => context?.emit({ event: 'connector', call: 'send', data: String(data) }), close() {} }
      },
      setRevocations() {
        context?.emit({ event: 'connector', call: 'setRevocations' })
      },
      async handleOffer(offer, peer) {
        const text = offer.toString('utf8')
        if (text === 'forged') throw createError('ERR_SIGNATURE', 'the offer signature does not verify')
        if (text === 'other-tenant') throw createError('ERR_TENANT_MISMATCH', 'the offer names another tenant')
        if (text === 'crash') throw new Error('a bug with a secret in its message')
        return Buffer.from(`answer:${peer.deviceId}:${text}`)
      },
      stop() {},
    },
  }),
)
