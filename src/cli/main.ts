#!/usr/bin/env node
/**
 * The `ztmesh` command line.
 *
 * ```
 * ztmesh bench [--json] [--quick] [--filter OP]
 * ztmesh ca root init --dir R --name NAME [--org ORG]                       (offline)
 * ztmesh ca root sign --dir R --csr FILE [--tenant T]... [--days N] [--name CN] (offline)
 * ztmesh ca root crl --dir R [--revoke-site SERIAL] [--days N]                (offline)
 * ztmesh ca site csr --dir D --name NAME [--org ORG] [--tenant T]... [--tpm [--tcti T] [--seal-pcrs 7]]
 * ztmesh ca site install --dir D --chain FILE
 * ztmesh ca site root-crl --dir D --crl FILE
 * ztmesh ca init --dir D --name NAME [--org ORG] [--tenant T]...   (tests and demos: root key in D)
 * ztmesh ca trust|crl|fingerprint --dir D
 * ztmesh ca token --dir D --device ID --tenant T [--ttl SECONDS] [--roles R1,R2]
 * ztmesh ca attestation --dir D [--mode off|optional|required] [--pcr-policy FILE] [--on-drift revoke|demote] [--nonce-ttl S] [--max-failures N] [--max-silence S]
 * ztmesh ca reattest --dir D --store GW --nodes FILE [--protocol tls|noise] [--interval SECONDS]
 * ztmesh attest-responder --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise] [--peer GW | --role R | --policy FILE] [--crl FILE]
 * ztmesh echo-server --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise] [--peer ID | --role R | --policy FILE] [--crl FILE]
 * ztmesh connect --store DIR --trust CA.pem --to HOST:PORT [--protocol tls|noise] [--peer ID | --role R | --policy FILE] [--crl FILE]
 *   [--crl-state FILE] [--crl-grace SECONDS] [--crl-fail-open]   (attest-responder, echo-server)
 * ztmesh ca sign --dir D --csr FILE --token TOKEN
 * ztmesh ca revoke --dir D (--serial HEX | --spki SHA256 | --device ID [--tenant T]) [--reason R]
 * ztmesh ca serve --dir D --listen HOST:PORT --tenant T [--rotation-overlap SECONDS] [--insecure-http]
 * ztmesh enroll --url URL --token T --store DIR [--root-fingerprint HEX] [--device ID] [--tenant T] [--keystore tpm|software|auto] [--tcti T] [--attest auto|require|off] [--insecure-http]
 * ztmesh tpm info [--tcti T]
 * ztmesh tpm quote --nonce HEX --pcrs 0,1,2,3,7 --out DIR [--ak FILE] [--tcti T]
 * ztmesh tpm verify-quote --in DIR --nonce HEX [--policy FILE]
 * ztmesh verify-peer --dir D --cert FILE [--tenant T] [--device ID]
 * ztmesh gateway [--config gateway.yaml] [--dir CA_DIR] [--listen HOST:PORT] [--tenant T] [--redis URL]
 * ztmesh node [--config node.yaml] [--store DIR] [--gateway URL] [--mdns] [--bootstrap HOST:PORT,…] [--listen HOST:PORT] [--connect DEVICE_ID] [--send TEXT]
 * ztmesh demo [--keystore auto|tpm|software] [--keep]
 * ```
 */
import { parseArgs } from 'node:util'

import { ca, enrollCommand, verifyPeerCommand } from './ca.js'
import { attestResponder, connect, echoServer } from './channels.js'
import { demo, gateway, node } from './daemons.js'
import { tpm } from './tpm.js'
import { createError, ZtError } from '../errors.js'

const USAGE = `usage: ztmesh <command> [options]
(the TPM: --tcti, else TPM2TOOLS_TCTI, TCTI, /dev/tpmrm0)

commands:
  demo [--keystore auto|tpm|software] [--keep]
                                            run the main job: a gateway and three nodes on loopback in a
                                            temporary directory (TPM keys via swtpm when installed), a
                                            timeline of enrollment and revocation, then nothing left running
  gateway [--config gateway.yaml] [--dir CA_DIR] [--listen HOST:PORT] [--tenant T] [--redis URL]
                                            run the site: the CA API (TLS), the gateway's own identity
                                            (enrolled on first start, renewed), CRL distribution, the hub;
                                            SIGHUP reloads, SIGTERM stops gracefully (78: a config mistake)
  node [--config node.yaml] [--store DIR] [--gateway URL] [--mdns] [--bootstrap HOST:PORT,…]
       [--listen HOST:PORT] [--connect DEVICE_ID] [--send TEXT]
                                            run a device: its identity (enroll: {url, token} on first
                                            start), revocations from the gateway, the local API (mutual
                                            TLS, POST /offer); one JSON event per line on stdout
  bench [--json] [--quick] [--filter OP]   measure ztmesh against the Node alternatives
                                            (--filter idle-memory: only the memory of idle connections)
  ca root init --dir R --name NAME [--org ORG]
                                            create the root CA in R, on an offline machine
                                            (passphrase: ZTMESH_ROOT_PASSPHRASE, else R/passphrase)
  ca site csr --dir D --name NAME [--org ORG] [--tenant T]... [--tpm [--tcti T] [--seal-pcrs 7]]
                                            create the site CA key on the gateway; prints its CSR.
                                            --tpm: its passphrase is sealed to the TPM (PCRs, default 7)
                                            instead of written to D/passphrase
  ca root sign --dir R --csr FILE [--tenant T]... [--days N] [--name CN]
                                            sign a site CA (pathLen 0, bound to the tenants given)
                                            from a gateway's CSR; prints the chain (PEM)
  ca site install --dir D --chain FILE      check the chain and finish the gateway's CA in D
                                            (which never holds the root key)
  ca root crl --dir R [--revoke-site SERIAL] [--days N]
                                            sign the root CRL (revoked site CAs); prints it (PEM)
  ca site root-crl --dir D --crl FILE       check the root CRL (signed by D's root, not older than
                                            the last) and store it; verify-peer applies it
  ca init --dir D --name NAME [--org ORG] [--tenant T]...
                                            tests and demos: a root CA, a site CA (bound to the tenants
                                            given) and a registry in D, the root key included (warns)
  ca trust --dir D                          print the trust bundle (PEM)
  ca fingerprint --dir D                    print the root's SPKI SHA-256 (for --root-fingerprint)
  ca token --dir D --device ID --tenant T [--ttl SECONDS] [--roles R1,R2]
                                            create a one-time enrollment token (printed alone); it
                                            names the device and pins the root's SPKI SHA-256
  ca attestation --dir D [--mode off|optional|required] [--pcr-policy FILE]
         [--on-drift revoke|demote] [--nonce-ttl SECONDS]
         [--max-failures N] [--max-silence SECONDS]
                                            show or change the TPM attestation policy (JSON);
                                            policy file: {"7": "<sha256 hex>"}
  ca reattest --dir D --store GW --nodes FILE [--protocol tls|noise] [--interval SECONDS]
                                            ask each node (FILE: [{deviceId, host, port}]) for a fresh
                                            quote as the gateway enrolled in GW; on drift revoke or
                                            demote per the policy (audited); prints the results
  ca sign --dir D --csr FILE --token TOKEN  issue offline from a CSR; prints the chain (PEM)
  ca revoke --dir D (--serial HEX | --spki SHA256 | --device ID [--tenant T]) [--reason R]
                                            a serial or a key revokes the certificates rotated
                                            from it too; publishes the CRL
  ca serve --dir D --listen HOST:PORT --tenant T [--rotation-overlap SECONDS] [--insecure-http]
                                            run the enrollment API over TLS 1.3 (its certificate:
                                            device ca, role ca, in tenant T); a rotated certificate
                                            is superseded after the overlap (default 86400);
                                            --insecure-http serves plain HTTP, for tests only
  ca crl --dir D                            print the current CRL (PEM)
  enroll --url URL --token T --store DIR [--root-fingerprint HEX] [--device ID] [--tenant T]
         [--keystore tpm|software|auto] [--tcti T] [--attest auto|require|off] [--insecure-http]
                                            enroll this device, or enroll it again (a new token; a
                                            cleared TPM). The certificate must chain to the root the
                                            token pins (and --root-fingerprint, when given). The key lives in the TPM or in the software
                                            keystore (passphrase: ZTMESH_PASSPHRASE); auto (default)
                                            takes the TPM when one answers. With a TPM key the
                                            enrollment carries a quote when the CA takes one. URL is
                                            https: (the server must prove it is the CA API of the
                                            token's tenant under the pinned root); --insecure-http
                                            allows http:, for tests only
  tpm info [--tcti T]                       the TPM's vendor, firmware and whether ztmesh can use it (JSON)
  tpm quote --nonce HEX --pcrs 0,1,2,3,7 --out DIR [--ak FILE] [--tcti T]
                                            write quote.msg, quote.sig, pcrs.bin and ak.pub.pem (tpm2-tools
                                            formats); a new attestation key unless --ak names one
  tpm verify-quote --in DIR --nonce HEX [--policy FILE]
                                            check a quote (policy: {"7": "<sha256 hex>"}); prints what it
                                            says, or {code, message} and exit 1
  verify-peer --dir D --cert FILE [--tenant T] [--device ID]
                                            print the peer identity (JSON) or exit 1 with {code, message}
  attest-responder --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise]
         [--peer GW | --role R | --policy FILE] [--crl FILE]
                                            answer the gateway's quote requests with this device's TPM;
                                            only peers certified as gateway, or the device --peer names
  echo-server --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise]
         [--peer ID | --role R | --policy FILE] [--crl FILE]
         [--crl-state FILE] [--crl-grace SECONDS] [--crl-fail-open]
                                            a secure echo service; one JSON line per connection
  connect --store DIR --trust CA.pem --to HOST:PORT [--protocol tls|noise]
         [--peer ID | --role R | --policy FILE] [--crl FILE]
                                            a secure netcat: stdin to the peer, the peer to stdout; the
                                            server is checked against --crl, else the CA's CRL
  (secure links admit peers of this device's tenant only, --role: only those certified with role R;
   other tenants only through --policy FILE, a policy document naming them; decisions audited on stderr)
`

async function bench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, filter: { type: 'string' } },
    strict: true,
  })
  const quick = values.quick ?? false
  // The benchmarks and their comparison libraries (dev dependencies) are not in the published
  // package: `ztmesh bench` runs from a clone of the repository.
  const [{ formatTable, runBench }, { formatIdleMemory, measureIdleMemory }] = await Promise.all([import('../bench/index.js'), import('../bench/idle-memory.js')]).catch((cause: unknown) => {
    throw createError('ERR_NOT_FOUND', 'the benchmarks are not part of the installed package: run `npx ztmesh bench` in a clone of the ztmesh repository', { cause })
  })
  const rows = await runBench({ quick, ...(values.filter !== undefined && { filter: values.filter }) })
  // The idle-connection memory runs with the full bench, or alone with `--filter idle-memory`.
  const memory = values.filter === undefined || 'idle-memory'.includes(values.filter) ? await measureIdleMemory(quick ? 100 : 1000) : []
  if (values.json) process.stdout.write(`${JSON.stringify({ rows, idle_memory: memory }, null, 2)}\n`)
  else process.stdout.write([rows.length > 0 ? formatTable(rows) : '', memory.length > 0 ? formatIdleMemory(memory) : ''].filter(Boolean).map((part) => `${part}\n`).join('\n'))
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { 'attest-responder': attestResponder, bench, ca, connect, demo, 'echo-server': echoServer, enroll: enrollCommand, gateway, node, tpm, 'verify-peer': verifyPeerCommand }

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  const run = command === undefined ? undefined : COMMANDS[command]
  if (run === undefined) {
    process.stderr.write(USAGE)
    return command === undefined || command === 'help' || command === '--help' ? 0 : 2
  }
  try {
    await run(rest)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (error) {
    // Node's own errors carry codes too (ERR_PARSE_ARGS_…); anything else is internal.
    const raw = error instanceof ZtError ? error.code : (error as { code?: unknown } | null)?.code
    const code = typeof raw === 'string' && raw.startsWith('ERR_') ? raw : 'ERR_INTERNAL'
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`${JSON.stringify({ code, message })}\n`)
    return code.startsWith('ERR_PARSE_ARGS') ? 2 : 1
  }
}

// tpm2-tss logs every refused TPM command to stderr; ztmesh reports each failure as one typed
// error, so its logs stay off unless asked for (TSS2_LOG=all+ERROR).
process.env.TSS2_LOG ??= 'all+NONE'
process.exitCode = await main(process.argv.slice(2))
