// One hub instance in its own process (for the tests that kill one): reads its identity and the
// Redis URL from HUB_INSTANCE (JSON), prints {"port"} once listening, runs until killed.
import { HubServer, RedisBus } from '../../src/hub/index.js'
import { Signer } from '../../src/index.js'

const config = JSON.parse(process.env.HUB_INSTANCE ?? '{}') as { chainPem: string; keyB64: string; trustPem: string; redisUrl: string; hubId?: string }
const hub = new HubServer({
  identity: { certificateChainPem: config.chainPem, signer: Signer.fromPkcs8(Buffer.from(config.keyB64, 'base64')) },
  trustPem: config.trustPem,
  bus: new RedisBus(config.redisUrl),
  ...(config.hubId !== undefined && { hubId: config.hubId }),
})
const { port } = await hub.listen(0, '127.0.0.1')
process.stdout.write(`${JSON.stringify({ port })}\n`)
