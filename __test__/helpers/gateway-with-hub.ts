/**
 * The gateway daemon with a recording hub in its hub slot (the hub part plugs HubServer in
 * there): each call is reported as an event line. Run as
 * `node --import=tsx __test__/helpers/gateway-with-hub.ts --config FILE`.
 */
import { inspectCertificate } from '../../src/primitives/pki/index.js'
import { runGateway } from '../../src/daemon/gateway.js'

process.exit(
  await runGateway({
    hub: ({ identity, daemon, revocations }) => ({
      start() {
        daemon.emit({ event: 'hub', call: 'start', identity: inspectCertificate(identity.certificateChainPem).deviceId, revocations: revocations !== undefined })
      },
      stop() {
        daemon.emit({ event: 'hub', call: 'stop' })
      },
      setRevocations(_revocations, crlPem) {
        daemon.emit({ event: 'hub', call: 'setRevocations', crl: crlPem?.includes('BEGIN X509 CRL') === true })
      },
    }),
  }),
)
