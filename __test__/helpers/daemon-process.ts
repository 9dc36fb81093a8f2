// The ztmesh CLI as a child process (through tsx, from the sources), with its JSON event lines
// (stdout) and logs (stderr) handed out in order; killed in teardown.
import type { ExecutionContext } from 'ava'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { onJsonLines } from '../../src/daemon/demo.js'

export const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts')

export type Line = Record<string, unknown>

export interface CliProcess {
  child: ChildProcess
  /** The first stdout event after the last one handed out for which `match` holds (60 s at most). */
  next(match: (event: Line) => boolean): Promise<Line>
  /** Every stdout event so far. */
  events(): Line[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr(): string
}

/** Parses a stream's JSON lines and hands out the ones asked for, in order. */
export function jsonLines(stream: NodeJS.ReadableStream, describe: () => string, all: Line[] = []): (match: (line: Line) => boolean) => Promise<Line> {
  const waiters: Array<{ match: (line: Line) => boolean; resolve: (line: Line) => void }> = []
  let cursor = 0
  onJsonLines(stream, (line) => {
    all.push(line)
    const waiter = waiters.find((w) => w.match(line))
    if (waiter !== undefined) {
      waiters.splice(waiters.indexOf(waiter), 1)
      cursor = all.length
      waiter.resolve(line)
    }
  })
  return (match) =>
    new Promise((resolve, reject) => {
      const index = all.findIndex((line, i) => i >= cursor && match(line))
      if (index >= 0) {
        cursor = index + 1
        return resolve(all[index]!)
      }
      const timer = setTimeout(() => reject(new Error(`no matching line (${describe()}) after ${JSON.stringify(all)}`)), 60_000)
      waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) })
    })
}

/** Runs `ztmesh ARGS` (or `script ARGS` when given) until teardown. */
export function startCli(t: ExecutionContext, args: string[], init: { script?: string; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, ['--import=tsx', init.script ?? MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...init.env } })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  let exit = 'running'
  child.once('exit', (code, signal) => (exit = `${code} ${signal}`))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const all: Line[] = []
  return { child, exited, stderr: () => stderr, events: () => all, next: jsonLines(child.stdout!, () => `${exit}; stderr: ${stderr.slice(-3000)}`, all) }
}

/** A temporary directory removed in teardown. */
export function workdir(t: ExecutionContext, prefix = 'ztmesh-daemons-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Writes `text` to `dir/name`; returns the path. */
export function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
