/** `ztmesh gateway`, `ztmesh node`, `ztmesh demo`: argument parsing only; the daemons do the rest. */

import { runDemo } from '../daemon/demo.js'
import { runGateway } from '../daemon/gateway.js'
import { gatewayHubServer } from '../daemon/hub.js'
import { runNode } from '../daemon/node.js'
import { WebRtcConnector } from '../peering/index.js'

/**
 * `ztmesh gateway [--config gateway.yaml] [--dir CA_DIR] [--listen HOST:PORT] [--tenant T] [--redis URL]
 * [--hub-listen HOST:PORT] [--mdns]`, with the signaling hub in its hub slot.
 * Exits with the daemon's status (78 for a configuration mistake), leaving nothing behind.
 */
export async function gateway(args: string[]): Promise<void> {
  process.exit(await runGateway({ argv: args, hub: gatewayHubServer }))
}

/**
 * `ztmesh node [--config node.yaml] [--store DIR] [--gateway URL] [--mdns] [--bootstrap HOST:PORT,…]
 * [--listen HOST:PORT] [--hub HOST:PORT] [--cloud HOST:PORT] [--connect DEVICE_ID] [--send TEXT]`,
 * with verified WebRTC data channels (the peer connector of src/peering).
 */
export async function node(args: string[]): Promise<void> {
  process.exit(await runNode({ argv: args, connector: new WebRtcConnector() }))
}

/** `ztmesh demo [--keystore auto|tpm|software] [--keep]`: a whole site on loopback, then gone. */
export async function demo(args: string[]): Promise<void> {
  process.exit(await runDemo(args))
}
