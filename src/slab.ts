/**
 * Output memory for the native record layers, carved from shared slabs.
 *
 * Records and plaintext go from Rust straight into a region of a large buffer instead of into a
 * fresh allocation per call: the native side writes once, nothing is copied afterwards, and the
 * allocator is asked for 1 MiB at a time rather than 64 KiB per chunk (fresh memory costs page
 * faults). Regions are handed out once and never reused, so a stream or socket may keep its
 * region as long as it likes; a slab is freed when no region of it is referenced any more, as
 * with Node's own Buffer pool. One slab per thread serves every link, so idle links hold none.
 * As with that pool, a region's `.buffer` is the whole slab: code in this process could read other
 * links' bytes through it, as it could read any memory of the process.
 */

const SLAB_SIZE = 1 << 20

let slab = Buffer.allocUnsafeSlow(SLAB_SIZE)
let offset = 0

/** A writable region of at least `size` bytes, valid until the next call here. */
export function reserve(size: number): Buffer {
  if (slab.length - offset < size) {
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, size))
    offset = 0
  }
  return slab.subarray(offset)
}

/** Takes the first `used` bytes of the region {@link reserve} returned: they are the caller's now. */
export function take(used: number): Buffer {
  const region = slab.subarray(offset, offset + used)
  // Keep the next region 8-byte aligned, as typed arrays over it may want.
  offset = Math.min(slab.length, offset + ((used + 7) & ~7))
  return region
}
