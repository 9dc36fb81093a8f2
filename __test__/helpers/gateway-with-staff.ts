/**
 * The gateway daemon with a real HubServer in its hub slot (exposed as `server`, so that
 * `staff.listen` serves the staff page joined to it); the hub's port is reported as an event
 * line. Run as `node --import=tsx __test__/helpers/gateway-with-staff.ts --config FILE`.
 */
import { runGateway } from '../../src/daemon/gateway.js'
import { HubServer } from '../../src/hub/index.js'

process.exit(
  await runGateway({
    hub: ({ identity, trustPem, revocations, audit, daemon }) => {
      const server = new HubServer({ identity, trustPem, revocations, audit })
      return {
        server,
        async start() {
          const { port } = await server.listen(0, '127.0.0.1')
          daemon.emit({ event: 'hub', port })
        },
        stop: () => server.close(),
        setRevocations: (next, crlPem) => server.setRevocations(next, crlPem),
      }
    },
  }),
)
