import type { ExecutionContext } from 'ava'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CaService } from '../src/ca/index.js'
import { createEnrollmentServer } from '../src/ca/server.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { inspectCertificate } from '../src/primitives/pki/index.js'
import { startSwtpm, tpmTest, type Swtpm } from './helpers/swtpm.js'

const CLI = join(process.cwd(), 'dist/cli/main.js')

interface Run {
  code: number
  stdout: string
  stderr: string
  /** The JSON the command printed (stdout, else stderr). */
  json: Record<string, unknown>
}

/** Runs `ztmesh …` with `env` (the swtpm's TPM2TOOLS_TCTI); resolves whatever the exit code. */
function ztmesh(env: NodeJS.ProcessEnv, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [CLI, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      let json: Record<string, unknown> = {}
      try {
        json = JSON.parse((stdout.trim() || stderr.trim()).split('\n').pop()!) as Record<string, unknown>
      } catch {
        // not JSON: the assertions on `json` say so
      }
      resolve({ code, stdout, stderr, json })
    })
  })
}

function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-tpmcli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A new CA in `dir` and its enrollment API on 127.0.0.1, both closed in the teardown. */
async function startCa(t: ExecutionContext, dir: string, name: string): Promise<{ ca: CaService; url: string }> {
  await CaService.init({ dir, name })
  const ca = await CaService.open({ dir })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca, tenant: 'hotel-1' })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { ca, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** The files of a `tpm2_quote` quote of PCRs 0 and 7 over `nonce`, with tpm2-tools' own AK. */
async function toolsQuote(swtpm: Swtpm, dir: string, nonce: string): Promise<void> {
  const file = (name: string) => join(dir, name)
  // tpm2-tools without a resource manager: flush what each tool leaves loaded (swtpm has 3 slots).
  await swtpm.tool('tpm2_createek', ['-c', file('ek.ctx'), '-G', 'ecc', '-u', file('ek.pub')])
  await swtpm.tool('tpm2_flushcontext', ['-t'])
  await swtpm.tool('tpm2_createak', ['-C', file('ek.ctx'), '-c', file('ak.ctx'), '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', file('ak.pub.pem'), '-f', 'pem', '-n', file('ak.name')])
  await swtpm.tool('tpm2_flushcontext', ['-t'])
  await swtpm.tool('tpm2_flushcontext', ['-s'])
  await swtpm.tool('tpm2_quote', ['-c', file('ak.ctx'), '-l', 'sha256:0,7', '-q', nonce, '-m', file('quote.msg'), '-s', file('quote.sig'), '-o', file('pcrs.bin'), '-g', 'sha256'])
  await swtpm.tool('tpm2_flushcontext', ['-t'])
}

tpmTest('tpm info prints the vendor, the firmware and whether the TPM is usable; no TPM is a typed error', async (t) => {
  const swtpm = await startSwtpm(t)
  const info = await ztmesh(swtpm.env, ['tpm', 'info'])
  t.is(info.code, 0, info.stderr)
  t.like(info.json, { vendor: 'SWTPM', manufacturer: 'IBM', family: '2.0', usable: true })
  t.regex(info.json.firmwareVersion as string, /^[0-9a-f]+$/)
  const gone = await ztmesh(swtpm.env, ['tpm', 'info', '--tcti', 'swtpm:host=127.0.0.1,port=1'])
  t.is(gone.code, 1)
  t.like(gone.json, { code: 'ERR_TPM_UNAVAILABLE' })
  t.notRegex(gone.stderr, /ERROR:tcti/, 'tpm2-tss logs stay off: the typed error says it')
  t.like((await ztmesh(swtpm.env, ['tpm', 'frobnicate'])).json, { code: 'ERR_INVALID_ARG' })
})

tpmTest('a ztmesh quote verifies with tpm2_checkquote and with tpm verify-quote; an --ak file is created once and reused', async (t) => {
  const swtpm = await startSwtpm(t)
  const dir = scratch(t)
  const nonce = randomBytes(32).toString('hex')
  const quoted = await ztmesh(swtpm.env, ['tpm', 'quote', '--nonce', nonce, '--pcrs', '0,1,2,3,7', '--out', join(dir, 'q')])
  t.is(quoted.code, 0, quoted.stderr)
  t.like(quoted.json, { nonce, pcrs: [0, 1, 2, 3, 7] })
  const file = (name: string) => join(dir, 'q', name)
  const checked = await swtpm.tool('tpm2_checkquote', ['-u', file('ak.pub.pem'), '-m', file('quote.msg'), '-s', file('quote.sig'), '-f', file('pcrs.bin'), '-g', 'sha256', '-q', nonce])
  t.regex(checked.stdout, /sha256:/)
  const verified = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', join(dir, 'q'), '--nonce', nonce])
  t.is(verified.code, 0, verified.stdout)
  t.deepEqual((verified.json.pcrs as Array<{ index: number }>).map((p) => p.index), [0, 1, 2, 3, 7])
  await t.throwsAsync(swtpm.tool('tpm2_checkquote', ['-u', file('ak.pub.pem'), '-m', file('quote.msg'), '-s', file('quote.sig'), '-f', file('pcrs.bin'), '-g', 'sha256', '-q', randomBytes(32).toString('hex')]))

  const ak = join(dir, 'ak.blob')
  t.is((await ztmesh(swtpm.env, ['tpm', 'quote', '--nonce', nonce, '--pcrs', 'sha256:7', '--out', join(dir, 'a'), '--ak', ak])).code, 0)
  t.is(statSync(ak).mode & 0o777, 0o600)
  t.is((await ztmesh(swtpm.env, ['tpm', 'quote', '--nonce', nonce, '--pcrs', '7', '--out', join(dir, 'b'), '--ak', ak])).code, 0)
  t.is(readFileSync(join(dir, 'a', 'ak.pub.pem'), 'utf8'), readFileSync(join(dir, 'b', 'ak.pub.pem'), 'utf8'), 'the same attestation key')
  t.not(readFileSync(join(dir, 'q', 'ak.pub.pem'), 'utf8'), readFileSync(join(dir, 'a', 'ak.pub.pem'), 'utf8'), 'without --ak, a new one')

  const x = join(dir, 'x')
  for (const bad of [['--nonce', 'xyz', '--out', x], ['--nonce', nonce, '--pcrs', '0,24', '--out', x], ['--nonce', nonce, '--pcrs', '7,7', '--out', x], ['--nonce', nonce]]) {
    const refused = await ztmesh(swtpm.env, ['tpm', 'quote', ...bad])
    t.is(refused.code, 1, bad.join(' '))
    t.like(refused.json, { code: 'ERR_INVALID_ARG' }, bad.join(' '))
  }
  t.deepEqual(await swtpm.transientHandles(), [], 'no transient handle is left behind')
})

tpmTest('a tpm2_quote quote verifies with tpm verify-quote; a wrong nonce, a policy not met and malformed files exit 1 with their code', async (t) => {
  const swtpm = await startSwtpm(t)
  const dir = scratch(t)
  await swtpm.tool('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`])
  const nonce = randomBytes(32).toString('hex')
  await toolsQuote(swtpm, dir, nonce)
  const pcr7 = (await swtpm.tool('tpm2_pcrread', ['sha256:7'])).stdout.match(/7 *: *0x([0-9A-Fa-f]{64})/)![1]!.toLowerCase()
  const policy = join(dir, 'policy.json')
  writeFileSync(policy, JSON.stringify({ 0: '00'.repeat(32), 7: pcr7 }))

  const ok = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce, '--policy', policy])
  t.is(ok.code, 0, ok.stdout + ok.stderr)
  t.deepEqual(ok.json.pcrs, [
    { index: 0, bank: 'sha256', value: '00'.repeat(32) },
    { index: 7, bank: 'sha256', value: pcr7 },
  ])

  const wrongNonce = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', randomBytes(32).toString('hex')])
  t.is(wrongNonce.code, 1)
  t.like(wrongNonce.json, { code: 'ERR_ATTEST_NONCE' })
  t.is(typeof wrongNonce.json.message, 'string')

  writeFileSync(join(dir, 'other.json'), JSON.stringify({ 7: '00'.repeat(32) }))
  const notMet = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce, '--policy', join(dir, 'other.json')])
  t.is(notMet.code, 1)
  t.like(notMet.json, { code: 'ERR_ATTEST_PCR_MISMATCH' })

  for (const [name, contents] of [['bad.json', '{"7": "zz"}'], ['worse.json', '[1]'], ['broken.json', '{']] as const) {
    writeFileSync(join(dir, name), contents)
    const refused = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce, '--policy', join(dir, name)])
    t.is(refused.code, 1, name)
    t.like(refused.json, { code: 'ERR_INVALID_ARG' }, name)
  }
  t.like((await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', join(dir, 'nowhere'), '--nonce', nonce])).json, { code: 'ERR_INVALID_ARG' })

  // Malformed files: a truncated signature, garbage PCR values, a key that is not one; a
  // truncated quote is checked against its signature first.
  truncateSync(join(dir, 'quote.sig'), 40)
  const truncated = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce])
  t.is(truncated.code, 1)
  t.like(truncated.json, { code: 'ERR_ATTEST_MALFORMED' })
  await toolsQuote(swtpm, dir, nonce)
  truncateSync(join(dir, 'quote.msg'), 40)
  t.like((await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce])).json, { code: 'ERR_ATTEST_SIGNATURE' })
  await toolsQuote(swtpm, dir, nonce)
  writeFileSync(join(dir, 'pcrs.bin'), Buffer.from('not pcr values'))
  t.like((await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce])).json, { code: 'ERR_ATTEST_MALFORMED' })
  await toolsQuote(swtpm, dir, nonce)
  writeFileSync(join(dir, 'ak.pub.pem'), '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')
  const badKey = await ztmesh(swtpm.env, ['tpm', 'verify-quote', '--in', dir, '--nonce', nonce])
  t.is(badKey.code, 1)
  t.like(badKey.json, { code: 'ERR_ATTEST_MALFORMED' })
  t.deepEqual(await swtpm.transientHandles(), [], 'no transient handle is left behind')
})

tpmTest('ztmesh enroll --keystore tpm keeps the key in the TPM; --keystore auto without a TPM uses the software keystore', async (t) => {
  const swtpm = await startSwtpm(t)
  const dir = scratch(t)
  const { ca, url } = await startCa(t, join(dir, 'ca'), 'CLI Hotel')
  const token = () => ca.createToken({ deviceId: 'kiosk-4', tenant: 'hotel-1' }).token
  const store = join(dir, 'kiosk-4')
  const enroll = (env: NodeJS.ProcessEnv, ...extra: string[]) => ztmesh(env, ['enroll', '--url', url, '--token', token(), '--store', store, '--device', 'kiosk-4', '--tenant', 'hotel-1', ...extra])

  const tpm = await enroll(swtpm.env, '--keystore', 'tpm')
  t.is(tpm.code, 0, tpm.stderr)
  t.like(tpm.json, { store, keystore: 'tpm', attested: true })
  t.like(JSON.parse(readFileSync(join(store, 'key.json'), 'utf8')), { keystore: 'tpm' })
  t.is(statSync(join(store, 'tpm-key.blob')).mode & 0o777, 0o600)
  t.is((await DeviceIdentity.open(store, undefined, url, { tcti: swtpm.tcti })).keystore, 'tpm')

  const noTpm = { ...swtpm.env, TPM2TOOLS_TCTI: 'swtpm:host=127.0.0.1,port=1' }
  const withoutPassphrase = await enroll(noTpm, '--keystore', 'auto')
  t.is(withoutPassphrase.code, 1)
  t.like(withoutPassphrase.json, { code: 'ERR_KEYSTORE_PASSPHRASE' })
  const software = await enroll({ ...noTpm, ZTMESH_PASSPHRASE: 'pw' }, '--keystore', 'auto')
  t.is(software.code, 0, software.stderr)
  t.like(software.json, { keystore: 'software', attested: false })
  t.is((await DeviceIdentity.open(store, 'pw')).keystore, 'software')
  t.like((await enroll(swtpm.env, '--keystore', 'hsm')).json, { code: 'ERR_INVALID_ARG' })
  t.deepEqual(await swtpm.transientHandles(), [])
})

tpmTest('attest-responder and ca reattest: a fresh quote passes, a PCR extend is drift and revokes the node', async (t) => {
  const swtpm = await startSwtpm(t)
  const dir = scratch(t)
  const { ca, url } = await startCa(t, join(dir, 'ca'), 'Reattest Hotel')
  // The gateway carries the role nodes answer quote requests for.
  const enroll = (env: NodeJS.ProcessEnv, device: string, ...extra: string[]) =>
    ztmesh(env, ['enroll', '--url', url, '--token', ca.createToken({ deviceId: device, tenant: 'hotel-1', roles: device === 'gw-1' ? ['gateway'] : [] }).token, '--store', join(dir, device), '--device', device, '--tenant', 'hotel-1', ...extra])
  const node = await enroll(swtpm.env, 'kiosk-4', '--keystore', 'tpm')
  t.like(node.json, { attested: true }, node.stderr)
  const gatewayEnv = { ...swtpm.env, ZTMESH_PASSPHRASE: 'gw-pass' }
  t.is((await enroll(gatewayEnv, 'gw-1', '--keystore', 'software')).code, 0)

  // The node answers quote requests, as a separate process with its TPM.
  const responder = spawn('node', [CLI, 'attest-responder', '--store', join(dir, 'kiosk-4'), '--trust', join(dir, 'ca', 'trust.pem'), '--listen', '127.0.0.1:0', '--device', 'gw-1'], { env: swtpm.env, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => void responder.kill('SIGKILL'))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('attest-responder did not start')), 20_000)
    responder.stdout.setEncoding('utf8').on('data', (line: string) => {
      const event = JSON.parse(line.split('\n')[0]!) as { event: string; port?: number }
      if (event.event === 'listening') {
        clearTimeout(timer)
        resolve(event.port!)
      }
    })
  })
  writeFileSync(join(dir, 'nodes.json'), JSON.stringify([{ deviceId: 'kiosk-4', host: '127.0.0.1', port }]))
  const reattest = () => ztmesh(gatewayEnv, ['ca', 'reattest', '--dir', join(dir, 'ca'), '--store', join(dir, 'gw-1'), '--nodes', join(dir, 'nodes.json')])

  const fresh = await reattest()
  t.is(fresh.code, 0, fresh.stderr)
  t.like(JSON.parse(fresh.stdout), [{ deviceId: 'kiosk-4', verdict: 'ok', action: 'none' }])

  await swtpm.tool('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`])
  const drifted = await reattest()
  t.is(drifted.code, 0, drifted.stderr)
  const [result] = JSON.parse(drifted.stdout) as Array<{ verdict: string; action: string; revoked: string[] }>
  t.like(result, { verdict: 'drift', action: 'revoke' })
  t.is(result!.revoked.length, 1)
  t.true(ca.revocations().isRevoked(result!.revoked[0]!, '00'.repeat(32), inspectCertificate(ca.caChain()).spkiSha256), 'the CRL names the node certificate')
  t.like(await ztmesh(gatewayEnv, ['ca', 'reattest', '--dir', join(dir, 'ca'), '--store', join(dir, 'gw-1'), '--nodes', join(dir, 'missing.json')]), { code: 1, json: { code: 'ERR_INVALID_ARG' } })
})
