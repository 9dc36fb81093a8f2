/** Measuring: ns per operation, both sides in one process and one run. */

/** Options of {@link measure}. */
export interface MeasureOptions {
  /** Wall time one round should last at least, in ms. */
  roundMs: number
  /** Rounds to run; the median is reported. */
  rounds: number
}

/**
 * Runs `operation` in calibrated rounds and returns the median ns per call.
 *
 * `operation` returns how many logical operations one call did (a batch call returns its batch
 * size), so batch figures come out per item. Every loop is bounded: calibration stops at 2^24
 * iterations.
 */
export function measure(operation: () => number, options: MeasureOptions): number {
  let iterations = 1
  for (;;) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) operation()
    const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6
    if (elapsedMs >= options.roundMs / 4 || iterations >= 1 << 24) break
    iterations *= 2
  }
  iterations = Math.max(1, iterations * 4)
  const perOp: number[] = []
  for (let round = 0; round < options.rounds; round++) {
    let count = 0
    const start = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) count += operation()
    perOp.push(Number(process.hrtime.bigint() - start) / count)
  }
  perOp.sort((a, b) => a - b)
  return perOp[Math.floor(perOp.length / 2)]!
}
