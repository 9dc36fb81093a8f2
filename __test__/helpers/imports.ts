/** The import graph of the TypeScript sources, for the tests that hold the layering rules. */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/**
 * The relative imports of a TypeScript file (static `import`/`export … from`, `import type`, and
 * `import()`), resolved to the `.ts` files they name.
 */
export function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"](\.[^'"]+)['"]/g)]
  return found.map((m) => resolve(dirname(file), (m[1] ?? m[2] ?? m[3])!.replace(/\.js$/, '.ts')))
}

/** Every source file reachable from `entry` through relative imports. */
export function reachable(entry: string): Set<string> {
  const seen = new Set<string>()
  const queue = [resolve(entry)]
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file) || !existsSync(file)) continue
    seen.add(file)
    queue.push(...relativeImports(file))
  }
  return seen
}
