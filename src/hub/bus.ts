/**
 * The bus hub instances share presence and relay through: publish a message on a channel, and
 * every subscriber of that channel (on any instance) receives it. {@link MemoryBus} serves one
 * process (a single hub, or several in one test); {@link RedisBus} spreads N instances over
 * Redis pub/sub. Delivery is at most once, like Redis pub/sub: what a hub needs to survive a
 * lost message (presence) is republished by the devices themselves.
 */

import { createRequire } from 'node:module'

import type { Redis, RedisOptions } from 'ioredis'

import { createError } from '../errors.js'

export interface Bus {
  publish(channel: string, message: Buffer): Promise<void>
  /** Subscribes `onMessage` to `channel`; the returned function unsubscribes it. */
  subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<() => Promise<void>>
  close(): Promise<void>
}

/** Subscribers by channel, shared by both buses. */
class Subscribers {
  readonly #map = new Map<string, Set<(message: Buffer) => void>>()

  /** Adds one; true when it is the channel's first. */
  add(channel: string, onMessage: (message: Buffer) => void): boolean {
    const set = this.#map.get(channel)
    if (set !== undefined) {
      set.add(onMessage)
      return false
    }
    this.#map.set(channel, new Set([onMessage]))
    return true
  }

  /** Removes one; true when the channel has none left. */
  remove(channel: string, onMessage: (message: Buffer) => void): boolean {
    const set = this.#map.get(channel)
    if (set === undefined || !set.delete(onMessage)) return false
    if (set.size > 0) return false
    this.#map.delete(channel)
    return true
  }

  deliver(channel: string, message: Buffer): void {
    for (const onMessage of this.#map.get(channel) ?? []) {
      try {
        onMessage(message)
      } catch (error) {
        process.emitWarning(`a hub bus subscriber threw: ${(error as Error).message}`, { code: 'ZTMESH_HUB_BUS' })
      }
    }
  }

  clear(): void {
    this.#map.clear()
  }
}

/** A bus inside one process: several hubs given the same instance share it. */
export class MemoryBus implements Bus {
  readonly #subscribers = new Subscribers()
  #closed = false

  async publish(channel: string, message: Buffer): Promise<void> {
    if (this.#closed) throw createError('ERR_CLOSED', 'the bus is closed')
    // Delivered on a later tick, as a networked bus would: a publisher never re-enters itself.
    queueMicrotask(() => this.#subscribers.deliver(channel, message))
  }

  async subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<() => Promise<void>> {
    if (this.#closed) throw createError('ERR_CLOSED', 'the bus is closed')
    this.#subscribers.add(channel, onMessage)
    return async () => void this.#subscribers.remove(channel, onMessage)
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#subscribers.clear()
  }
}

/** Options of {@link RedisBus}: a `redis://` URL or ioredis options. */
export type RedisBusInit = string | RedisOptions

/**
 * Redis pub/sub: one connection publishes, one subscribes (a subscribed Redis connection can do
 * nothing else). Channels are prefixed with `prefix` (default `ztmesh:`).
 */
export class RedisBus implements Bus {
  readonly #pub: Redis
  readonly #sub: Redis
  readonly #prefix: string
  readonly #subscribers = new Subscribers()

  constructor(init: RedisBusInit, options: { prefix?: string } = {}) {
    const base: RedisOptions = { maxRetriesPerRequest: 3, enableOfflineQueue: true, lazyConnect: false }
    const Client = redisClient()
    this.#pub = typeof init === 'string' ? new Client(init, base) : new Client({ ...base, ...init })
    this.#sub = this.#pub.duplicate()
    this.#prefix = options.prefix ?? 'ztmesh:'
    // Connection errors are retried by ioredis; they surface to callers as rejected publishes.
    this.#pub.on('error', () => {})
    this.#sub.on('error', () => {})
    this.#sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const name = channel.toString('utf8')
      if (name.startsWith(this.#prefix)) this.#subscribers.deliver(name.slice(this.#prefix.length), message)
    })
  }

  async publish(channel: string, message: Buffer): Promise<void> {
    try {
      await this.#pub.publish(this.#prefix + channel, message)
    } catch (error) {
      throw createError('ERR_UNREACHABLE', 'the Redis bus did not take the message', { cause: error })
    }
  }

  async subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<() => Promise<void>> {
    if (this.#subscribers.add(channel, onMessage)) {
      try {
        await this.#sub.subscribe(this.#prefix + channel)
      } catch (error) {
        this.#subscribers.remove(channel, onMessage)
        throw createError('ERR_UNREACHABLE', 'the Redis bus did not take the subscription', { cause: error })
      }
    }
    return async () => {
      if (this.#subscribers.remove(channel, onMessage)) await this.#sub.unsubscribe(this.#prefix + channel).catch(() => {})
    }
  }

  async close(): Promise<void> {
    this.#subscribers.clear()
    await Promise.allSettled([this.#pub.quit(), this.#sub.quit()])
    this.#pub.disconnect()
    this.#sub.disconnect()
  }
}

/** ioredis, loaded when the first `RedisBus` is made: importing the package must not load it. */
function redisClient(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis
}
