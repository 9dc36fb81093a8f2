/** Measuring: ns per operation, both sides in one process and one run. */

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** Options of {@link measurePair}. */
export interface MeasureOptions {
  /** Wall time one round should last at least, in ms. */
  roundMs: number
  /** Rounds to run per side; the median is reported. */
  rounds: number
}

/** An operation: returns how many logical operations it did, at once or when it settles. */
export type Operation = () => number | Promise<number>

/** ns per logical operation of each side. */
export interface PairTiming {
  ztmeshNs: number
  baselineNs: number
}

/**
 * Measures ztmesh and its baseline in alternating rounds (ztmesh, baseline, ztmesh, ...) and
 * returns the median ns per logical operation of each.
 *
 * Alternating means both sides meet the same machine state (CPU frequency, a neighbour's load),
 * and a full garbage collection before every round keeps one side's garbage from being
 * collected on the other's clock. Each operation returns how many logical operations one call
 * did (a batch call returns its batch size), so batch figures come out per item. Every loop is
 * bounded: calibration stops at 2^24 iterations.
 */
export async function measurePair(ztmesh: Operation, baseline: Operation, options: MeasureOptions): Promise<PairTiming> {
  const sides = []
  for (const operation of [ztmesh, baseline]) sides.push({ operation, iterations: await calibrate(operation, options), perOp: [] as number[] })
  for (let round = 0; round < options.rounds; round++) {
    for (const side of sides) {
      collectGarbage()
      const start = process.hrtime.bigint()
      const count = await runRound(side.operation, side.iterations)
      side.perOp.push(Number(process.hrtime.bigint() - start) / count)
    }
  }
  const [ours, theirs] = sides.map((side) => median(side.perOp))
  return { ztmeshNs: ours!, baselineNs: theirs! }
}

/**
 * Runs `iterations` calls and returns the logical operations done. Synchronous operations run
 * in a plain loop (no promise per call, which would cost more than the fastest operations).
 */
async function runRound(operation: Operation, iterations: number): Promise<number> {
  let count = 0
  for (let i = 0; i < iterations; i++) {
    const done = operation()
    count += typeof done === 'number' ? done : await done
  }
  return count
}

/** Doubles the iteration count until one round lasts a quarter of `roundMs`, then takes 4x that. */
async function calibrate(operation: Operation, options: MeasureOptions): Promise<number> {
  let iterations = 1
  for (;;) {
    const start = process.hrtime.bigint()
    await runRound(operation, iterations)
    const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6
    if (elapsedMs >= options.roundMs / 4 || iterations >= 1 << 24) break
    iterations *= 2
  }
  return Math.max(1, iterations * 4)
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

let gc: (() => void) | undefined

/** A full collection, through V8's `gc` exposed at run time (the bench runs without flags). */
function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}
