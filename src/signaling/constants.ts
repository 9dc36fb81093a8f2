/** Actions and defaults of the signaling guard. */

/** The policy actions (and audit actions) of the three kinds of signed signaling message. */
export const SIGNAL_ACTIONS = {
  offer: 'signal.offer',
  answer: 'signal.answer',
  candidate: 'signal.candidate',
} as const

/** One of {@link SIGNAL_ACTIONS}. */
export type SignalAction = (typeof SIGNAL_ACTIONS)[keyof typeof SIGNAL_ACTIONS]

/** How old a signed offer, answer or candidate may be, ms. */
export const DEFAULT_SIGNAL_WINDOW_MS = 60_000
