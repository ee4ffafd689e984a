// The connection's identity: a token from the app's `getToken`, sent in
// band before the connection subscribes, refreshed before it expires,
// retried with backoff when refused, and fetched again when the server says
// it expired.
//
// `authTransition` is the token lifecycle's state machine, pure like the
// connection's (state.ts): what the connection's identity is after each
// event. `Authenticator` drives it connection after connection: it calls
// `getToken`, owns the retry and refresh timers, and counts the answers
// still to come, so that a late token or answer is dropped.
import type { Authenticated, ErrorMessage } from './generated'
import { backoffDelay } from './backoff'
import type { Diagnostics } from './diagnostics'
import { isAuthErrorCode, LiveAuthError } from './errors'
import type { Transport } from './transport'

export interface AuthOptions {
  /**
   * Returns the token to authenticate with. Called for every new connection
   * (so a reconnect uses a fresh token), before the token expires (to
   * refresh it in band, without resubscribing), and after `reauthenticate()`.
   * Null means "no token": the connection reads as the server's anonymous
   * role. Without `getToken`, the client never authenticates.
   */
  getToken?: () => Promise<string | null>
  /** Refresh a token this long before it expires (ms, default 30 s; at most a quarter of its life). */
  refreshBeforeMs?: number
}

/** Who the connection reads as, once a token was accepted. */
export interface LiveIdentity {
  role: string
  /** Unix seconds; 0 when the token never expires. */
  expiresAt: number
}

/**
 * Where the connection's token stands:
 * - `none`: no token on this connection: not connected, no `getToken`, or
 *   none to send (the connection reads as the anonymous role).
 * - `authenticating`: the connection waits for its identity: a token is
 *   being fetched or checked, and new subscriptions are held for it.
 * - `authenticated`: a token was accepted; the connection reads as
 *   `identity` until `identity.expiresAt`, and refreshes it before.
 * - `refreshing`: a newer token is on its way in band; `identity` holds
 *   meanwhile.
 * - `expired`: the server said the token expired, and stopped the
 *   connection's subscriptions.
 * - `refused`: the token was refused, or could not be had, while the
 *   connection waited for its identity; it is retried with backoff.
 */
export type AuthStage = 'none' | 'authenticating' | 'authenticated' | 'refreshing' | 'expired' | 'refused'

export interface AuthState {
  readonly stage: AuthStage
  /** Who the connection reads as; it holds through a refresh and a reauthentication until a new token is accepted. */
  readonly identity: LiveIdentity | null
  /**
   * Why the connection has no identity, while it has none: the status shows
   * it. It outlives the connection, until an identity is settled or rows arrive.
   */
  readonly error: LiveAuthError | null
}

export type AuthEvent =
  /** The connection must establish its identity (it opened, or the user changed); subscriptions wait for it. */
  | { type: 'authenticate' }
  /** A token is being fetched: a refresh while the connection has an identity, else the identity itself. */
  | { type: 'fetching' }
  /** There is no token to send: the connection reads as the anonymous role. */
  | { type: 'anonymous' }
  /** The server accepted a token; `last` when no newer token is on its way (else that one's answer settles it). */
  | { type: 'accepted'; identity: LiveIdentity; last: boolean }
  /** The last token on its way was refused, or could not be had. */
  | { type: 'refused'; error: LiveAuthError }
  /** The server said the token expired. */
  | { type: 'expired' }
  /** The server said the connection has no identity to read as, other than in answer to a token. */
  | { type: 'denied'; error: LiveAuthError }
  /** Rows arrived: whatever identity the connection has, it may read. */
  | { type: 'rows' }
  /** The connection closed: its identity went with it. */
  | { type: 'closed' }

/** Before the first connection. */
export const NO_TOKEN: AuthState = { stage: 'none', identity: null, error: null }

/** Whether the connection waits for its identity in `stage` (its phase is `authenticating`). */
function waitsForIdentity(stage: AuthStage): boolean {
  return stage === 'authenticating' || stage === 'refused' || stage === 'expired'
}

/** The token's next state. */
export function authTransition(state: AuthState, event: AuthEvent): AuthState {
  switch (event.type) {
    case 'authenticate':
      return { ...state, stage: 'authenticating' }
    case 'fetching':
      return {
        ...state,
        stage: waitsForIdentity(state.stage) || state.stage === 'none' ? 'authenticating' : 'refreshing',
      }
    case 'anonymous':
      return { ...state, stage: 'none', error: null }
    case 'accepted':
      // The server answers in order: this is who the connection is now,
      // even if a newer token is on its way.
      if (!event.last) return { ...state, identity: event.identity }
      return { stage: 'authenticated', identity: event.identity, error: null }
    case 'refused':
      // While the connection waits for an identity, it has none: the app
      // shows why. A failed refresh leaves the current identity in place
      // until it expires.
      if (waitsForIdentity(state.stage)) return { ...state, stage: 'refused', error: event.error }
      return state.stage === 'refreshing' ? { ...state, stage: 'authenticated' } : state
    case 'expired':
      return { ...state, stage: 'expired', identity: null }
    case 'denied':
      return { ...state, error: event.error }
    case 'rows':
      return state.error === null ? state : { ...state, error: null }
    case 'closed':
      return { stage: 'none', identity: null, error: state.error }
  }
}

/** Refreshes are never scheduled sooner than this (ms), whatever the clocks say. */
const MIN_REFRESH_MS = 1000

/**
 * How long to wait before refreshing a token that has `leftMs` to live:
 * `refreshBeforeMs` before it expires, or a quarter of its life for a short
 * one, and never sooner than a second.
 */
export function refreshDelay(leftMs: number, refreshBeforeMs: number): number {
  const left = Math.max(leftMs, 0)
  const margin = Math.min(refreshBeforeMs, left / 4)
  return Math.max(left - margin, MIN_REFRESH_MS)
}

/** What the authenticator tells the client. */
export interface AuthEvents {
  /** The connection knows who it is (a token accepted, or none to send): held subscriptions may go out. */
  settled(): void
  /** The identity's error may have changed without anything settling: the status may show it. */
  changed(): void
  /** An error about the connection's identity, for `onError`. */
  report(error: LiveAuthError): void
  /** The token expired on the server: its subscriptions stopped there, and wait for the next identity. */
  expired(): void
  /** The connection is about to be replaced by a new one, for `reason` (shown in the status history). */
  restarting(reason: string): void
}

/** The token lifecycle of one client, across its connections. */
export class Authenticator {
  private readonly getToken: (() => Promise<string | null>) | null
  private readonly refreshBeforeMs: number
  private state: AuthState = NO_TOKEN
  /** Whether this connection sent a token (then only a new connection can drop it). */
  private sentToken = false
  /** A token is being fetched (for the latest round). */
  private fetching = false
  /** `auth` messages sent on this connection that the server has not answered yet. */
  private inFlight = 0
  /** Bumped by every round and every close, so a late token or answer is dropped. */
  private round = 0
  /** Refusals in a row, for the retry's backoff; reset by an identity settled. */
  private attempt = 0
  /** The retry after a refusal; a new round and a close clear it. */
  private retryTimer: unknown = null
  /** The refresh before the token expires; a close and an expiry clear it. */
  private refreshTimer: unknown = null

  constructor(
    options: AuthOptions,
    private readonly transport: Transport,
    private readonly diagnostics: Diagnostics,
    private readonly now: () => number,
    private readonly events: AuthEvents,
  ) {
    this.getToken = options.getToken ?? null
    this.refreshBeforeMs = options.refreshBeforeMs ?? 30_000
  }

  /** Whether connections authenticate (the app gave a `getToken`). */
  get enabled(): boolean {
    return this.getToken !== null
  }

  /** Who the connection reads as (after a token was accepted), else null. */
  get identity(): LiveIdentity | null {
    return this.state.identity
  }

  /** Why the connection has no identity, while it has none. */
  get error(): LiveAuthError | null {
    return this.state.error
  }

  /** The token's state, for tests. */
  get current(): AuthState {
    return this.state
  }

  /** The connection (newly open, or with a new user) establishes its identity: a token is fetched now. */
  authenticate(): void {
    if (!this.getToken) return
    this.apply({ type: 'authenticate' })
    this.start()
  }

  /** The server accepted a token. */
  accepted(msg: Authenticated): void {
    this.inFlight = Math.max(this.inFlight - 1, 0)
    const last = !this.pending
    this.apply({ type: 'accepted', identity: { role: msg.role, expiresAt: msg.expires_at }, last })
    this.diagnostics.count('authentications')
    this.scheduleRefresh(msg.expires_at)
    if (!last) return
    this.attempt = 0
    this.clearTimer('retryTimer')
    this.events.settled()
  }

  /**
   * An `error` frame about the whole connection: true when it concerns the
   * connection's identity, and was handled here.
   */
  connectionError(frame: ErrorMessage): boolean {
    const { code } = frame
    if (isAuthErrorCode(code) && this.inFlight > 0) {
      // The answer to an `auth`: the token was refused.
      this.inFlight -= 1
      this.refused(new LiveAuthError(code, frame.message))
      return true
    }
    if (code === 'token_expired') {
      this.expire(new LiveAuthError(code, frame.message))
      return true
    }
    if (code === 'unauthenticated') {
      // No identity and none coming (the server is about to close): say so.
      const error = new LiveAuthError(code, frame.message)
      this.deny(error)
      this.events.report(error)
      this.events.changed()
      return true
    }
    return false
  }

  /** The server says the connection has no identity to read as (the status shows `error`). */
  deny(error: LiveAuthError): void {
    this.apply({ type: 'denied', error })
  }

  /** Rows arrived: whatever identity the connection has, it may read. */
  rowsArrived(): void {
    this.apply({ type: 'rows' })
  }

  /** The connection closed: forgets its token, its answers and its timers. */
  closed(): void {
    this.round += 1
    this.fetching = false
    this.inFlight = 0
    this.sentToken = false
    this.apply({ type: 'closed' })
    this.clearTimer('retryTimer')
    this.clearTimer('refreshTimer')
  }

  /** Whether the identity is being (re)established: a token fetched or an `auth` unanswered. */
  private get pending(): boolean {
    return this.fetching || this.inFlight > 0
  }

  private apply(event: AuthEvent): void {
    this.state = authTransition(this.state, event)
  }

  /** Fetches a token and sends it; the answer is `authenticated` or an error. */
  private start(): void {
    const getToken = this.getToken
    if (!getToken) return
    this.clearTimer('retryTimer')
    const round = (this.round += 1)
    this.fetching = true
    this.apply({ type: 'fetching' })
    let token: Promise<string | null>
    try {
      token = getToken()
    } catch (e) {
      // A getToken that throws instead of rejecting fails the same way.
      token = Promise.reject(e instanceof Error ? e : new Error(String(e)))
    }
    token.then(
      (value) => {
        if (round !== this.round || !this.transport.isOpen) return
        this.fetching = false
        if (value === null) {
          if (this.sentToken) {
            // In band, a connection can only move to another token: signing
            // out takes a new connection, which starts anonymous.
            this.events.restarting('signed out: a new connection reads as the anonymous role')
            this.transport.restart()
            return
          }
          this.attempt = 0
          this.apply({ type: 'anonymous' })
          this.events.settled()
          return
        }
        if (this.transport.send({ type: 'auth', token: value })) {
          this.sentToken = true
          this.inFlight += 1
        }
      },
      (cause: unknown) => {
        if (round !== this.round || !this.transport.isOpen) return
        this.fetching = false
        const why = cause instanceof Error ? cause.message : String(cause)
        this.refused(new LiveAuthError('token_unavailable', `could not get a token: ${why}`, { cause }))
      },
    )
  }

  private refused(error: LiveAuthError): void {
    this.events.report(error)
    // A newer token is already on its way: its answer decides.
    if (this.pending) return
    this.apply({ type: 'refused', error })
    const delay = backoffDelay(this.attempt, this.transport.random, this.transport.backoff)
    this.attempt += 1
    this.clearTimer('retryTimer')
    this.retryTimer = this.transport.timers.setTimeout(() => {
      this.retryTimer = null
      if (this.transport.isOpen) this.start()
    }, delay)
    this.events.changed()
  }

  /** The token expired on the server: its subscriptions stopped there. */
  private expire(error: LiveAuthError): void {
    this.events.report(error)
    this.apply({ type: 'expired' })
    this.clearTimer('refreshTimer')
    this.events.expired()
    if (this.getToken) this.start()
    else {
      this.deny(error)
      this.events.changed()
    }
  }

  private scheduleRefresh(expiresAt: number): void {
    this.clearTimer('refreshTimer')
    if (!this.getToken || expiresAt === 0) return
    const delay = refreshDelay(expiresAt * 1000 - this.now(), this.refreshBeforeMs)
    this.refreshTimer = this.transport.timers.setTimeout(() => {
      this.refreshTimer = null
      if (this.transport.isOpen && !this.pending) this.start()
    }, delay)
  }

  private clearTimer(which: 'retryTimer' | 'refreshTimer'): void {
    const handle = this[which]
    if (handle !== null) {
      this.transport.timers.clearTimeout(handle)
      this[which] = null
    }
  }
}
