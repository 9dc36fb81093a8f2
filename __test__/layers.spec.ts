// The one rule of the layers, checked: the Rust core owns every byte that crosses a trust
// boundary. No TypeScript file parses a certificate or a public key, or signs or verifies
// with node:crypto; it calls the core (inspectCertificate, verifyPeer, signObject…) instead.
// No TypeScript file builds a signed message (a domain label such as `ztmesh-rotate-v1` lives
// in the core's registry only) or encodes a binary frame (length prefixes, headers): the
// core's codecs do.
// And the layers of docs/ARCHITECTURE.md, checked on the import graph: a folder of src/ imports
// only from its own layer or a lower one, and only native.ts imports the generated binding.
// Like the error-code scan, this reads the sources, so a new violation fails CI at once.
import test from 'ava'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'

import { relativeImports } from './helpers/imports.js'

const SRC = join(process.cwd(), 'src')

/** What non-protocol code may take from node:crypto: randomness, plain hashing, constant-time comparison. */
const ALLOWED_CRYPTO = new Set(['randomBytes', 'randomInt', 'randomUUID', 'createHash', 'timingSafeEqual'])

/** Names that mean "parsing keys or certificates, or signing/verifying, in TypeScript", wherever they appear. */
const FORBIDDEN_NAMES = ['X509Certificate', 'createPublicKey', 'createPrivateKey', 'createSign', 'createVerify', 'subtle', 'webcrypto']

/** Building signed messages or binary frames by hand: a domain label, or a fixed-width integer written into bytes. */
const FORBIDDEN_PATTERNS: [string, RegExp][] = [
  ['domain label', /['"`]ztmesh-[a-z-]+-v\d/],
  ['binary encoding', /\.write(U?[Ii]nt(8|16|32)(BE|LE)?|Big(U?)[Ii]nt64(BE|LE)?)\(|\bnew DataView\b|\.set(Ui|I)nt(8|16|32)\(/],
]

/**
 * The explicit exceptions, each with why: the benchmarks measure the core against node:crypto
 * doing the same work by hand, so the baseline must use node:crypto. Every entry must still be
 * used (a stale exception fails too).
 */
const EXCEPTIONS: Record<string, string[]> = {
  'src/bench/index.ts': ['createCipheriv', 'createPublicKey', 'verify', 'binary encoding'], // AEAD and Ed25519 baselines; AEAD nonces counted by hand
  // The audit log's hash chain is local storage, not a protocol: a length prefix keeps its
  // hashed fields unambiguous. Its signed checkpoints (issue 10) will be the core's.
  'src/audit/index.ts': ['binary encoding'],
  'src/bench/pki.ts': ['createSign', 'generateKeyPairSync', 'X509Certificate'], // verify-peer baseline
  'src/bench/channels.ts': ['createPrivateKey'], // libp2p-noise baseline keys
  'src/bench/signal.ts': ['X509Certificate', 'verify'], // offer-verify baseline
}

interface Violation {
  file: string
  what: string
}

/** The violations in one source text. Exported shape kept small so the self-test can feed it. */
function scan(file: string, text: string): Violation[] {
  const found: Violation[] = []
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
  for (const match of code.matchAll(/import\s+([^'";]+?)\s+from\s+['"](node:)?crypto['"]/g)) {
    const clause = match[1]!.trim()
    const named = /^\{([^}]*)\}$/.exec(clause)
    if (named === null) {
      found.push({ file, what: `import ${clause} from node:crypto (only named imports can be checked)` })
      continue
    }
    for (const part of named[1]!.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const name = part.replace(/^type\s+/, '').split(/\s+as\s+/)[0]!.trim()
      if (!ALLOWED_CRYPTO.has(name)) found.push({ file, what: name })
    }
  }
  for (const match of code.matchAll(/(require|import)\(\s*['"](node:)?crypto['"]\s*\)/g)) found.push({ file, what: match[0] })
  for (const name of FORBIDDEN_NAMES) {
    if (new RegExp(`\\b${name}\\b`).test(code)) found.push({ file, what: name })
  }
  for (const [what, pattern] of FORBIDDEN_PATTERNS) {
    if (pattern.test(code)) found.push({ file, what })
  }
  return found
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sources(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : []
  })
}

test('the scan itself catches every form of the violations it looks for', (t) => {
  const cases = [
    "import { X509Certificate } from 'node:crypto'",
    "import { createPublicKey, randomBytes } from 'crypto'",
    "import { sign } from 'node:crypto'",
    "import { verify as v } from 'node:crypto'",
    "import * as crypto from 'node:crypto'",
    "import crypto from 'node:crypto'",
    "const { createSign } = require('crypto')",
    "const c = await import('node:crypto')",
    'const key = await globalThis.crypto.subtle.importKey(...args)',
    'new X509Certificate(pem)',
    "const message = Buffer.from(`ztmesh-key-check-v1\\n${dir}`)",
    "sign(Buffer.from('ztmesh-rotate-v1'))",
    'frame.writeUInt16BE(body.length, 0)',
    'header.writeUint32LE(id)',
    'new DataView(buffer).setUint16(0, length)',
    'out.writeBigUInt64BE(timestamp)',
  ]
  for (const text of cases) t.true(scan('x.ts', text).length > 0, text)
  t.deepEqual(scan('x.ts', "import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'"), [])
  t.deepEqual(scan('x.ts', '// X509Certificate used to be here\n/** createPublicKey too, and the `ztmesh-rotate-v1` label */'), [], 'comments do not count')
  t.deepEqual(scan('x.ts', "const id = 'ztmesh-test'; buffer.readUInt16BE(0)"), [], 'reading bytes and other names are not building messages')
})

test('no TypeScript file parses certificates or keys, signs, verifies, builds a signed message or encodes a frame, outside the listed exceptions', (t) => {
  const files = sources(SRC)
  t.true(files.length > 40, 'the scan sees the sources')
  const violations: string[] = []
  const used = new Map<string, Set<string>>()
  for (const path of files) {
    const file = relative(process.cwd(), path)
    const allowed = new Set(EXCEPTIONS[file] ?? [])
    for (const v of scan(file, readFileSync(path, 'utf8'))) {
      if (allowed.has(v.what)) used.set(file, (used.get(file) ?? new Set()).add(v.what))
      else violations.push(`${v.file}: ${v.what}`)
    }
  }
  t.deepEqual(violations, [], 'call the core (inspectCertificate, verifyPeer, signObject, akPublicKeySha256…) instead')
  for (const [file, names] of Object.entries(EXCEPTIONS)) {
    t.deepEqual([...(used.get(file) ?? [])].sort(), [...names].sort(), `${file}: stale exception`)
  }
})

/**
 * The layers of docs/ARCHITECTURE.md, bottom up: each file or folder of src/ (a folder of
 * `primitives/` counts on its own) and its layer. Not published, `harness/` (swtpm for the tests
 * and the benchmarks) sits with the infrastructure, `bench/` with the composition.
 */
const LAYERS: Record<string, number> = {
  'native.ts': 1,
  'errors.ts': 1,
  'error-catalog.ts': 1,
  'schema.ts': 1,
  'slab.ts': 1,
  'rate-limit.ts': 1,
  'primitives/crypto': 2,
  'primitives/noise': 2,
  'primitives/pki': 2,
  'primitives/keystore': 2,
  'primitives/tpm': 2,
  protocol: 3,
  channels: 3,
  policy: 3,
  audit: 3,
  storage: 3,
  harness: 3,
  webrtc: 3,
  identity: 4,
  ca: 4,
  attestation: 4,
  discovery: 4,
  signaling: 4,
  hub: 4,
  staff: 4,
  peering: 4,
  daemon: 5,
  cli: 5,
  bench: 5,
  'index.ts': 5, // the package entry re-exports every layer
}

/** The entry of {@link LAYERS} a source file (relative to src/) belongs to, if any. */
function unitOf(file: string): string | undefined {
  const parts = file.split('/')
  return parts[0] === 'primitives' ? parts.slice(0, 2).join('/') : parts[0]
}

/** The imports of the given files (relative to src/) that break the layer rule or the binding rule. */
function layerViolations(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = []
  for (const [file, imports] of graph) {
    const unit = unitOf(file)!
    const layer = LAYERS[unit]
    if (layer === undefined) {
      found.push(`${file}: ${unit} has no layer (place it in docs/ARCHITECTURE.md and LAYERS)`)
      continue
    }
    for (const target of imports) {
      if (target === '../binding.ts' || target.endsWith('/binding.ts')) {
        if (file !== 'native.ts') found.push(`${file} imports the binding (only native.ts may)`)
        continue
      }
      if (target.startsWith('..')) {
        found.push(`${file} imports ${target}, outside src/`)
        continue
      }
      const targetLayer = LAYERS[unitOf(target)!]
      if (targetLayer !== undefined && targetLayer > layer) found.push(`${file} (layer ${layer}) imports ${target} (layer ${targetLayer})`)
    }
  }
  return found
}

test('the layer scan catches an upward import, an unplaced folder and a second importer of the binding', (t) => {
  const graph = new Map([
    ['primitives/tpm/index.ts', ['attestation/index.ts', 'native.ts']],
    ['policy/index.ts', ['audit/index.ts', 'primitives/pki/index.ts', 'errors.ts']],
    ['gadgets/index.ts', ['errors.ts']],
    ['primitives/pki/index.ts', ['../binding.ts']],
    ['native.ts', ['../binding.ts', 'errors.ts']],
  ])
  t.deepEqual(layerViolations(graph), [
    'primitives/tpm/index.ts (layer 2) imports attestation/index.ts (layer 4)',
    'gadgets/index.ts: gadgets has no layer (place it in docs/ARCHITECTURE.md and LAYERS)',
    'primitives/pki/index.ts imports the binding (only native.ts may)',
  ])
})

test('every folder of src/ imports only from its own layer or a lower one, and only native.ts imports the binding', (t) => {
  const graph = new Map<string, string[]>()
  for (const path of sources(SRC)) {
    graph.set(
      relative(SRC, path),
      relativeImports(path).map((target) => relative(SRC, target)),
    )
  }
  t.true(graph.size > 40, 'the scan sees the sources')
  t.true([...graph.values()].flat().length > 100, 'the scan sees the imports')
  t.deepEqual(layerViolations(graph), [])
  // Every layer entry is still a part of src/ (a stale entry fails too).
  const units = new Set([...graph.keys()].map(unitOf))
  t.deepEqual(Object.keys(LAYERS).filter((unit) => !units.has(unit)), [])
})
