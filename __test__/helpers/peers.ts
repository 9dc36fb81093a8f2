/**
 * The one rule for tests that need a program from outside the project (a peer: swtpm,
 * tpm2-tools, openssl, Go) or a build feature (TPM support): where it is missing, the tests are
 * skipped with a visible message, except under CI (`CI` set, and not `0` or `false`), where each
 * of them fails. Never a quiet skip.
 */
import test from 'ava'
import { spawnSync } from 'node:child_process'

/** Whether this is a CI run, where every peer must be installed. */
export const inCi = !['', '0', 'false'].includes((process.env.CI ?? '').trim())

/**
 * `register` (ava's `test` or `test.serial`) when nothing is missing (`missing` is undefined).
 * Otherwise, under CI, a registration whose test fails naming what is missing; elsewhere
 * `register.skip`, after printing why once.
 */
export function requirePeer<T extends typeof test | typeof test.serial>(missing: string | undefined, register: T): T {
  if (missing === undefined) return register
  if (inCi) {
    const failing = (title: string) => register(title, (t) => t.fail(`${missing}, and CI=true requires every interoperability peer`))
    return failing as unknown as T
  }
  if (!reported.has(missing)) console.error(`SKIPPED: ${missing}; the tests that need it did not run (set CI=true to make this a failure)`)
  reported.add(missing)
  return register.skip as unknown as T
}

const reported = new Set<string>()

/** Whether `program` runs and exits successfully with `args` (such as `--version`). */
export function runs(program: string, args: string[]): boolean {
  return spawnSync(program, args, { stdio: 'ignore' }).status === 0
}
