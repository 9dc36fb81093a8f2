// The threat model cites a test for every defence; a citation that names no test proves nothing.
// This reads docs/threat-model.md and checks that every cited test exists: for `file › title`,
// the spec file exists and one of its test titles starts with the cited text (an ellipsis `…`
// stands for any text); for a Rust `module::item`, the module, or a function of that name in it, exists.
import test from 'ava'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = process.cwd()
const TESTS = join(ROOT, '__test__')
/** Where Rust citations are looked for: the core, its integration tests (`tpm_ek::…`) and the addon. */
const RUST_ROOTS = [join(ROOT, 'crates', 'ztmesh-core', 'src'), join(ROOT, 'crates', 'ztmesh-core', 'tests'), join(ROOT, 'src', 'addon')]

/** The titles of the tests declared in a spec file (`test(`, `test.serial(`, `tpmTest(`, `tpmTestSerial(`…). */
function titles(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  // `test(…)`, `test.serial(…)`, `someTest(…)`, a wrapper such as `withRedis('…'`, and a
  // registration returned by a call, `requirePeer(missing, test.serial)('…'`.
  return [...text.matchAll(/(?:(?:^|[^\w.])(?:test|\w*Test\w*|with[A-Z]\w*)(?:\.\w+)*|\))\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g)].map((m) => m[2]!.replace(/\\(.)/g, '$1'))
}

/**
 * Whether a title starts with a cited title: each `…` in the citation stands for any text, and
 * each `${…}` of a template-literal title (`over ${protocol}, …`) for any text too.
 */
function matches(title: string, cited: string): boolean {
  const c = cited.replace(/\s*…\s*/g, '…')
  const t = title.replace(/\$\{[^}]*\}/g, '\0')
  const seen = new Map<number, boolean>()
  const match = (i: number, j: number): boolean => {
    if (i === c.length) return true // the citation is a prefix of the title
    const key = i * (t.length + 1) + j
    const known = seen.get(key)
    if (known !== undefined) return known
    let result = false
    if (c[i] === '…') for (let k = j; k <= t.length && !result; k++) result = match(i + 1, k)
    else if (j < t.length && t[j] === '\0') for (let k = i; k <= c.length && !result; k++) result = match(k, j + 1)
    else result = j < t.length && c[i] === t[j] && match(i + 1, j + 1)
    seen.set(key, result)
    return result
  }
  return match(0, 0)
}

/**
 * The file that holds the Rust module `a::b` of the core or the addon: its own file, or the
 * file of its parent when it is an inline `mod` (undefined when there is no such module).
 */
function rustModuleFile(parts: string[]): string | undefined {
  for (const root of RUST_ROOTS) {
    const dir = join(root, ...parts.slice(0, -1))
    const last = parts.at(-1)!
    const own = [join(dir, `${last}.rs`), join(dir, last, 'mod.rs')].find((file) => existsSync(file))
    if (own !== undefined) return own
    const parent = [`${dir}.rs`, join(dir, 'mod.rs')].find((file) => existsSync(file))
    if (parent !== undefined && new RegExp(`\\bmod ${last}\\b`).test(readFileSync(parent, 'utf8'))) return parent
  }
  return undefined
}

/** Whether a Rust path names a module of the core or the addon, or a function (a test) in one. */
function rustPathExists(path: string): boolean {
  const parts = path.split('::')
  if (rustModuleFile(parts) !== undefined) return true
  const file = parts.length > 1 ? rustModuleFile(parts.slice(0, -1)) : undefined
  return file !== undefined && new RegExp(`\\bfn ${parts.at(-1)}\\b`).test(readFileSync(file, 'utf8'))
}

interface Citations {
  ava: Array<{ file: string; title: string }>
  rust: string[]
  specs: string[]
}

/** The citations in a threat-model text: every backquoted `file › title`, `a::b` and `file.spec`. */
function citations(text: string): Citations {
  const found: Citations = { ava: [], rust: [], specs: [] }
  for (const [, code] of text.matchAll(/`([^`\n]+)`/g)) {
    const ava = /^([a-z0-9-]+) › (.+)$/.exec(code!)
    if (ava !== null) found.ava.push({ file: ava[1]!, title: ava[2]! })
    else if (/^[a-z_]+(::[a-z_]+)+$/.test(code!)) found.rust.push(code!)
    else if (/^[a-z0-9-]+\.spec$/.test(code!)) found.specs.push(code!)
  }
  return found
}

/** What is wrong with the citations of a threat-model text (empty when every cited test exists). */
function brokenCitations(text: string): string[] {
  const { ava, rust, specs } = citations(text)
  const broken: string[] = []
  for (const { file, title } of ava) {
    if (file === 'file' && title === 'title') continue // the format, described in the introduction
    const spec = join(TESTS, `${file}.spec.ts`)
    if (!existsSync(spec)) broken.push(`${file} › ${title}: no __test__/${file}.spec.ts`)
    else if (!titles(spec).some((candidate) => matches(candidate, title))) broken.push(`${file} › ${title}: no such test in ${file}.spec.ts`)
  }
  for (const path of rust) if (!rustPathExists(path)) broken.push(`${path}: no such Rust module or function`)
  for (const spec of specs) if (!existsSync(join(TESTS, `${spec}.ts`))) broken.push(`${spec}: no __test__/${spec}.ts`)
  return broken
}

test('the check itself sees citations, and refuses titles, files and modules that do not exist', (t) => {
  t.true(matches('a peer of another tenant is refused even by a rule', 'a peer of another tenant is refused…'))
  t.true(matches('on the wire, both roles: x, y and a replayed message 3 all fail', 'on the wire, both roles: … a replayed message 3 all fail'))
  t.false(matches('a peer of another tenant is refused', 'a peer of another tenant is refused even…'))
  t.true(matches('a decision whose audit row cannot be written is denied, twice', 'a decision whose audit row cannot be written is denied'), 'a prefix')
  t.false(matches('so a decision whose audit row cannot be written is denied', 'a decision whose audit row cannot be written is denied'), 'from the start')
  t.deepEqual(
    brokenCitations('`policy › no such test…`; `nosuch › a test`; `policy › a decision whose audit row cannot be written is denied`; `link::nosuch`; `link::tests`; `nosuch.spec`; `mux › over noise, a hostile responder is cut off…`; `mux › under noise, a hostile responder`; `link::tests::no_such_test`; `ids::parse_serial`'),
    ['policy › no such test…: no such test in policy.spec.ts', 'nosuch › a test: no __test__/nosuch.spec.ts', 'mux › under noise, a hostile responder: no such test in mux.spec.ts', 'link::nosuch: no such Rust module or function', 'link::tests::no_such_test: no such Rust module or function', 'nosuch.spec: no __test__/nosuch.spec.ts'],
  )
  t.true(titles(join(TESTS, 'bench.spec.ts')).includes('bench --filter tpm reports TPM signing and quotes on a private swtpm, and exits'), 'titles of tpmTest( too')
})

test('every test cited in docs/threat-model.md exists', (t) => {
  const text = readFileSync(join(ROOT, 'docs', 'threat-model.md'), 'utf8')
  const { ava, rust } = citations(text)
  t.true(ava.length > 30 && rust.length > 4, 'the check sees the citations')
  t.deepEqual(brokenCitations(text), [])
})
