/**
 * The TypeScript side of `tests/link_interop.rs`: one Noise link through `wrapNoise`, against a
 * Rust program that speaks the link with the core crate alone.
 *
 * Environment: `LINK_ROLE` (`responder`: listen on 127.0.0.1 and print `PORT <n>`; `initiator`:
 * dial `LINK_PORT`), `LINK_DIR` holding `chain.pem`, `key.der` (PKCS#8) and `trust.pem`,
 * optionally `LINK_EXPECT_TENANT`. Prints `PEER <device> <tenant> <protocol>` once the link is
 * up, `ERROR <code>` if it is not. The responder echoes everything back; the initiator sends
 * `hello from typescript`, prints the answer as `GOT <text>` and closes.
 */
import { readFileSync } from 'node:fs'
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'

import { RevocationSet, Signer, TrustStore, wrapNoise, type SecureStream } from '../../../../src/index.js'

const dir = process.env.LINK_DIR!
const role = process.env.LINK_ROLE === 'initiator' ? 'initiator' : 'responder'
const init = {
  role,
  identity: { certificateChainPem: readFileSync(join(dir, 'chain.pem'), 'utf8'), signer: Signer.fromPkcs8(readFileSync(join(dir, 'key.der'))) },
  trust: TrustStore.fromPem(readFileSync(join(dir, 'trust.pem'), 'utf8')),
  revocations: new RevocationSet(),
  ...(process.env.LINK_EXPECT_TENANT !== undefined && { policy: { expectedTenant: process.env.LINK_EXPECT_TENANT } }),
} as const

async function secure(socket: Socket): Promise<SecureStream | undefined> {
  try {
    const link = await wrapNoise(socket, init)
    console.log(`PEER ${link.peer.deviceId} ${link.peer.tenant} ${link.kxGroup}`)
    return link
  } catch (error) {
    console.log(`ERROR ${(error as { code?: string }).code}`)
    return undefined
  }
}

if (role === 'responder') {
  const server = createServer(async (socket) => {
    server.close()
    const link = await secure(socket)
    if (link === undefined) return
    link.pipe(link)
    link.once('end', () => link.end())
  })
  server.listen(0, '127.0.0.1', () => console.log(`PORT ${(server.address() as AddressInfo).port}`))
} else {
  const socket = createConnection({ host: '127.0.0.1', port: Number(process.env.LINK_PORT) })
  socket.once('connect', async () => {
    const link = await secure(socket)
    if (link === undefined) return
    link.once('data', (answer: Buffer) => {
      console.log(`GOT ${answer.toString()}`)
      link.end()
    })
    link.write('hello from typescript')
  })
}
