/** Names, limits and defaults of discovery (mDNS, the bootstrap list, the fallback chain). */

/** The DNS-SD service type every ztmesh device advertises and browses. */
export const SERVICE_TYPE = '_ztmesh._tcp.local'

/** The suffix of every instance name of {@link SERVICE_TYPE}. */
export const INSTANCE_SUFFIX = `.${SERVICE_TYPE}`

/** The mDNS group and port (RFC 6762). */
export const MDNS_GROUP = '224.0.0.251'
export const MDNS_PORT = 5353

/** The version of the TXT record layout (`v=1`). */
export const TXT_VERSION = '1'

/** The roles a device may advertise. */
export const ADVERTISED_ROLES = ['node', 'gateway'] as const

/** TTL of advertised records, seconds (RFC 6762 recommends 120 for records naming a host). */
export const DEFAULT_TTL_SECONDS = 120

/** Longest TTL believed from an announcement, seconds: a hostile TTL cannot pin a table entry for hours. */
export const MAX_TTL_SECONDS = 600

/** Most peers the browse table holds; a flood of distinct names beyond it is dropped (counted). */
export const DEFAULT_MAX_PEERS = 256

/** Largest TXT record accepted, bytes of all its strings together. */
export const MAX_TXT_BYTES = 512

/** Most strings in one accepted TXT record. */
export const MAX_TXT_ENTRIES = 16

/** Most records (answers + additionals) looked at in one packet; a packet with more is malformed. */
export const MAX_RECORDS_PER_PACKET = 64

/** Most questions answered in one query packet. */
export const MAX_QUESTIONS_PER_PACKET = 16

/** Least time between two multicast answers of the same advertisement (a query flood is not amplified). */
export const MIN_ANSWER_INTERVAL_MS = 250

/** Delay of the second announcement after a start (RFC 6762 §8.3: at least two, one second apart). */
export const REANNOUNCE_MS = 1000

/** How often the expiry sweep runs, ms. */
export const SWEEP_INTERVAL_MS = 1000

/** Longest bootstrap list accepted, characters, and most entries in it. */
export const MAX_BOOTSTRAP_LENGTH = 4096
export const MAX_BOOTSTRAP_PEERS = 64

/** The paths of the fallback chain, in the order they are tried. */
export const FALLBACK_PATHS = ['gateway', 'mdns', 'cloud', 'manual'] as const

/** Largest per-attempt timeout, ms (what setTimeout can hold). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1
