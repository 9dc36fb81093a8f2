/**
 * The node daemon with no peer connector (no signaling guard): every offer is refused, fail
 * closed. `ztmesh node` itself plugs in the WebRTC connector. Run as
 * `node --import=tsx __test__/helpers/node-bare.ts --config FILE`.
 */
import { runNode } from '../../src/daemon/node.js'

process.exit(await runNode())
