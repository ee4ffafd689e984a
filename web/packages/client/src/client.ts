// LiveClient: one WebSocket to the pglive server, any number of live queries
// over it. Framework-free: plain TypeScript typed by the generated bindings,
// usable from Vue, React or a script alike.
//
// The pieces: `Transport` owns the socket and its reconnects,
// `MaterializedRows` holds each subscription's rows and version across
// connections, and `transition`/`deriveStatus` (state.ts) are the
// connection's state machine and the status the app shows. This file wires
// them together: identity (tokens, refresh, expiry), subscribing and
// resuming, and the server's messages.
import type {
  Authenticated,
  DelayReason,
  ErrorCode,
  ErrorMessage,
  LiveQuery,
  LiveState,
  Resumed,
  ServerMessage,
  Status,
} from './generated'
import { backoffDelay } from './backoff'
import { isAuthErrorCode, LiveAuthError, LiveConnectionError, LiveSubscriptionError, type LiveError } from './errors'
import { keyColumn } from './keys'
import { MaterializedRows } from './materialized'
import {
  deriveStatus,
  isConnected,
  sameStatus,
  transition,
  type ConnectionStatus,
  type Phase,
  type PhaseEvent,
} from './state'
import { Transport, type TransportOptions } from './transport'
import type { AnyRow, DiffMessage, ErrorFrame, KeyColumn, RowOf, SnapshotMessage, Table } from './types'

export interface LiveClientOptions extends TransportOptions {
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
  /** The current time in ms since the epoch; default `Date.now`. */
  now?: () => number
}

/** Receives one subscription's results. */
export interface LiveSubscriber<R> {
  /** The complete, current result (a new array on every change). */
  next(rows: R[], version: number): void
  /** The server refused or dropped the subscription. */
  error?(error: LiveSubscriptionError): void
  /**
   * The server's status of this subscription alone: `delayed` (with a
   * reason, e.g. `query_failing` while its query keeps failing and is being
   * retried), then `live` again. Null when a new connection starts.
   */
  status?(status: SubscriptionStatus | null): void
}

/** What the server last said about one subscription (a `status` message with its id). */
export interface SubscriptionStatus {
  readonly state: LiveState
  readonly reason: DelayReason | null
  /** When the client received it (ms since the epoch, client clock). */
  readonly at: number
}

/**
 * One subscription as a diagnostics view (a live-query inspector) shows it.
 * Times are ms since the epoch; `lastNoticedAt` is by the server's clock.
 */
export interface SubscriptionInfo {
  /** Stable for the subscription's life (wire ids change with every connection). */
  readonly key: number
  readonly query: LiveQuery
  /** The id on the current connection, or null while not subscribed there. */
  readonly wireId: string | null
  readonly epoch: string | null
  readonly version: number | null
  /** Rows held, or null before the first snapshot. */
  readonly rows: number | null
  /** Snapshots received (the first load, and each resync or resume that fell back to one). */
  readonly snapshots: number
  /** Times a diff did not fit and the client asked for a fresh snapshot. */
  readonly resyncs: number
  /** Reconnects that resumed without a snapshot. */
  readonly resumes: number
  /** Diffs applied. */
  readonly diffs: number
  /** When the rows last changed (snapshot or diff), client clock; null before the first snapshot. */
  readonly lastChangeAt: number | null
  /** The last applied diff's `noticed_at`: when the server learned of the change (server clock). */
  readonly lastNoticedAt: number | null
  /** What the server last said about this subscription alone, if anything on this connection. */
  readonly status: SubscriptionStatus | null
  readonly error: LiveSubscriptionError | null
}

/** A change the inspector may want to show; `noticedAt` is set for diffs that carried `noticed_at`. */
export interface InspectEvent {
  readonly key: number
  readonly kind: 'subscribed' | 'snapshot' | 'diff' | 'resumed' | 'resync' | 'status' | 'error' | 'unsubscribed'
  /** Client clock, ms since the epoch. */
  readonly at: number
  /** The diff's `noticed_at` (server clock), when it had one. */
  readonly noticedAt?: number
}

/** One entry of the connection's status history. */
export interface StatusChange {
  /** Client clock, ms since the epoch. */
  readonly at: number
  readonly status: ConnectionStatus
}

/** How many status changes `getStatusHistory()` keeps. */
const STATUS_HISTORY = 50

/** Counters for diagnostics and tests. */
export interface LiveStats {
  /** Connections opened. */
  connections: number
  /** Snapshots received (first loads, and resyncs when a resume was not possible). */
  snapshots: number
  /** Subscriptions resumed after a reconnect without a new snapshot. */
  resumes: number
  /** Subscriptions restarted from a snapshot because a diff did not fit. */
  resyncs: number
  /** Tokens accepted by the server (first ones and refreshes). */
  authentications: number
}

/** Who the connection reads as, once a token was accepted. */
export interface LiveIdentity {
  role: string
  /** Unix seconds; 0 when the token never expires. */
  expiresAt: number
}

/**
 * Subscription errors after which asking again may succeed; the client
 * retries those with backoff. Others (an invalid query, say) wait for the
 * next reconnect. `server_busy` means the server holds as many live queries
 * or rows as it may, and `query_failed` that the database kept failing the
 * query: both may clear by themselves, so they are retried, never hammered.
 */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'rate_limited',
  'query_failed',
  'server_busy',
  'unavailable',
  'too_many_subscriptions',
  'internal',
])

/** The close code of a connection that did not authenticate in time. */
const CLOSE_UNAUTHENTICATED = 4401

/** Refreshes are never scheduled sooner than this (ms), whatever the clocks say. */
const MIN_REFRESH_MS = 1000

interface Subscription {
  readonly key: number
  readonly query: LiveQuery
  /** The query's table: frames for another table are not this subscription's. */
  readonly table: Table
  readonly subscriber: LiveSubscriber<AnyRow>
  /** Rows, epoch and version; kept across connections for resuming. */
  readonly view: MaterializedRows<AnyRow, KeyColumn<Table>>
  /** The id on the current connection, or null when not subscribed there. */
  wireId: string | null
  /** Whether the current wire id was answered (snapshot or resumed): only then do diffs apply. */
  attached: boolean
  /** After a `resumed`, the version the missed diffs reach; null once caught up. */
  catchUpTo: number | null
  /** A diff did not fit: the next subscribe asks for a snapshot, not a resume. */
  needsSnapshot: boolean
  error: LiveSubscriptionError | null
  retries: number
  retryTimer: unknown
  /** Counters and times for `inspect()`. */
  readonly stats: { snapshots: number; resyncs: number; resumes: number; diffs: number }
  lastChangeAt: number | null
  lastNoticedAt: number | null
  serverStatus: SubscriptionStatus | null
}

export class LiveClient {
  private readonly transport: Transport
  private readonly getToken: (() => Promise<string | null>) | null
  private readonly refreshBeforeMs: number
  private readonly now: () => number

  private phase: Phase = 'idle'
  /** Whether the client was ever live: later handshakes show as reconnecting. */
  private everReady = false
  private status: ConnectionStatus = { state: 'connecting' }
  private server: Status | null = null
  private authError: LiveAuthError | null = null
  private identity: LiveIdentity | null = null
  /** Whether this connection sent a token (then only a new connection can drop it). */
  private sentToken = false
  /** A token is being fetched (for the latest auth round). */
  private tokenFetching = false
  /** `auth` messages sent on this connection that the server has not answered yet. */
  private authsInFlight = 0
  /** Bumped by every auth round and every close, so a late token or answer is dropped. */
  private authRound = 0
  private authAttempt = 0
  private authTimer: unknown = null
  private refreshTimer: unknown = null
  private nextWireId = 0
  private readonly counters: LiveStats = { connections: 0, snapshots: 0, resumes: 0, resyncs: 0, authentications: 0 }

  private readonly subs = new Set<Subscription>()
  private readonly byWireId = new Map<string, Subscription>()
  /** Subscriptions sent while syncing that have not been answered yet. */
  private readonly syncing = new Set<Subscription>()
  private readonly statusListeners = new Set<(status: ConnectionStatus) => void>()
  private readonly errorListeners = new Set<(error: LiveError) => void>()
  private readonly statsListeners = new Set<(stats: Readonly<LiveStats>) => void>()
  private readonly inspectListeners = new Set<(event: InspectEvent) => void>()
  private readonly statusHistory: StatusChange[] = []
  private nextSubKey = 0

  constructor(options: LiveClientOptions = {}) {
    this.getToken = options.getToken ?? null
    this.refreshBeforeMs = options.refreshBeforeMs ?? 30_000
    this.now = options.now ?? Date.now
    this.statusHistory.push({ at: this.now(), status: this.status })
    this.transport = new Transport(options, {
      opening: () => this.step({ type: 'opening' }),
      open: () => this.handleOpen(),
      message: (data) => this.handleMessage(data),
      close: (event) => this.handleClose(event),
    })
  }

  /** Opens the connection (also done by the first `subscribe`). Idempotent. */
  connect(): void {
    if (this.phase !== 'idle') return
    this.transport.start()
  }

  /** Closes the connection for good: no more reconnects, status `offline`. */
  close(): void {
    if (this.phase === 'closed') return
    this.transport.stop()
    this.endConnection()
    for (const sub of this.subs) this.clearRetry(sub)
    this.step({ type: 'close' })
  }

  /** When waiting to reconnect, tries right away instead. */
  reconnectNow(): void {
    this.transport.reconnectNow()
  }

  /**
   * The identity `getToken` returns has changed (another user signed in, or
   * out): fetches a token now and authenticates with it. Subscriptions made
   * meanwhile wait for the new identity; existing ones are moved by the
   * server (each gets a fresh snapshot when the security context changed).
   * Signing out (a null token after a token) opens a new connection.
   */
  reauthenticate(): void {
    if (!this.getToken || !isConnected(this.phase)) return
    this.step({ type: 'reauthenticate' })
    this.startAuth()
  }

  getStatus(): ConnectionStatus {
    return this.status
  }

  /** Who the connection reads as (after a token was accepted), else null. */
  getIdentity(): LiveIdentity | null {
    return this.identity
  }

  getStats(): Readonly<LiveStats> {
    return { ...this.counters }
  }

  /** Calls `listener` on every status change; returns a function that stops it. */
  onStatus(listener: (status: ConnectionStatus) => void): () => void {
    this.statusListeners.add(listener)
    return () => this.statusListeners.delete(listener)
  }

  /** Calls `listener` whenever a counter of `getStats()` changes; returns a function that stops it. */
  onStats(listener: (stats: Readonly<LiveStats>) => void): () => void {
    this.statsListeners.add(listener)
    return () => this.statsListeners.delete(listener)
  }

  /**
   * Every subscription as it is now, in the order they were made: query,
   * version, rows held, counters, last change, the server's per-subscription
   * status. For diagnostics (a live-query inspector); the objects are copies.
   */
  inspect(): SubscriptionInfo[] {
    return [...this.subs].map((sub) => ({
      key: sub.key,
      query: sub.query,
      wireId: sub.wireId,
      epoch: sub.view.epoch,
      version: sub.view.version,
      rows: sub.view.rows?.length ?? null,
      ...sub.stats,
      lastChangeAt: sub.lastChangeAt,
      lastNoticedAt: sub.lastNoticedAt,
      status: sub.serverStatus,
      error: sub.error,
    }))
  }

  /** Calls `listener` whenever anything `inspect()` shows changes; returns a function that stops it. */
  onInspect(listener: (event: InspectEvent) => void): () => void {
    this.inspectListeners.add(listener)
    return () => this.inspectListeners.delete(listener)
  }

  /** The connection's last status changes (at most 50), oldest first, with when each happened. */
  getStatusHistory(): readonly StatusChange[] {
    return this.statusHistory.slice()
  }

  /** Calls `listener` for errors that concern the whole connection (identity included). */
  onError(listener: (error: LiveError) => void): () => void {
    this.errorListeners.add(listener)
    return () => this.errorListeners.delete(listener)
  }

  /**
   * Subscribes to `query`. `subscriber.next` gets the complete result after
   * the first snapshot and after every change. Across reconnects the client
   * resubscribes by itself and resumes from the rows it holds when the
   * server still can; the rows stay meanwhile. Returns a function that
   * unsubscribes.
   */
  subscribe<Q extends LiveQuery>(query: Q, subscriber: LiveSubscriber<RowOf<Q['table']>>): () => void {
    const sub: Subscription = {
      key: (this.nextSubKey += 1),
      query,
      table: query.table,
      // A subscription only ever receives rows of its own query's table.
      subscriber,
      view: new MaterializedRows<AnyRow, KeyColumn<Table>>(keyColumn(query.table)),
      wireId: null,
      attached: false,
      catchUpTo: null,
      needsSnapshot: false,
      error: null,
      retries: 0,
      retryTimer: null,
      stats: { snapshots: 0, resyncs: 0, resumes: 0, diffs: 0 },
      lastChangeAt: null,
      lastNoticedAt: null,
      serverStatus: null,
    }
    this.subs.add(sub)
    this.inspected(sub, 'subscribed')
    if (this.phase === 'idle') this.connect()
    else if (this.canSubscribe()) this.sendSubscribe(sub)
    let active = true
    return () => {
      if (!active) return
      active = false
      this.unsubscribe(sub)
    }
  }

  /** Number of active subscriptions (for diagnostics and tests). */
  get subscriptionCount(): number {
    return this.subs.size
  }

  // --- connection ----------------------------------------------------------

  private step(event: PhaseEvent): void {
    this.phase = transition(this.phase, event)
    if (this.phase === 'ready') this.everReady = true
    this.updateStatus()
  }

  private handleOpen(): void {
    this.count('connections')
    this.server = null
    this.step({ type: 'opened', auth: this.getToken !== null })
    if (this.getToken) this.startAuth()
    else this.sendHeld()
  }

  private handleClose(event: { code: number; reason: string }): void {
    this.endConnection()
    if (event.code === CLOSE_UNAUTHENTICATED) {
      this.authError = new LiveAuthError('unauthenticated', event.reason || 'the server requires authentication')
      this.report(this.authError)
    }
    this.step({ type: 'lost' })
  }

  /** Forgets everything that belonged to the connection; rows stay. */
  private endConnection(): void {
    this.authRound += 1
    this.tokenFetching = false
    this.authsInFlight = 0
    this.sentToken = false
    this.identity = null
    this.server = null
    this.clearTimer('authTimer')
    this.clearTimer('refreshTimer')
    this.byWireId.clear()
    this.syncing.clear()
    for (const sub of this.subs) this.detach(sub)
  }

  private detach(sub: Subscription): void {
    sub.wireId = null
    sub.attached = false
    sub.catchUpTo = null
    this.clearRetry(sub)
    // What the server said about it held for that connection only.
    this.setSubStatus(sub, null)
  }

  /** Subscriptions are sent now (not held for an identity or a connection). */
  private canSubscribe(): boolean {
    return (this.phase === 'syncing' || this.phase === 'ready') && this.transport.isOpen
  }

  // --- identity ------------------------------------------------------------

  /** Fetches a token and sends it; the answer is `authenticated` or an error. */
  private startAuth(): void {
    const getToken = this.getToken
    if (!getToken) return
    this.clearTimer('authTimer')
    const round = (this.authRound += 1)
    this.tokenFetching = true
    let token: Promise<string | null>
    try {
      token = getToken()
    } catch (e) {
      // A getToken that throws instead of rejecting fails the same way.
      token = Promise.reject(e instanceof Error ? e : new Error(String(e)))
    }
    token.then(
      (value) => {
        if (round !== this.authRound || !this.transport.isOpen) return
        this.tokenFetching = false
        if (value === null) {
          if (this.sentToken) {
            // In band, a connection can only move to another token: signing
            // out takes a new connection, which starts anonymous.
            this.transport.restart()
            return
          }
          this.authAttempt = 0
          this.authError = null
          this.identitySettled()
          return
        }
        if (this.transport.send({ type: 'auth', token: value })) {
          this.sentToken = true
          this.authsInFlight += 1
        }
      },
      (cause: unknown) => {
        if (round !== this.authRound || !this.transport.isOpen) return
        this.tokenFetching = false
        const why = cause instanceof Error ? cause.message : String(cause)
        this.authFailed(new LiveAuthError('token_unavailable', `could not get a token: ${why}`, { cause }))
      },
    )
  }

  /** Whether the identity is being (re)established: a token fetched or an `auth` unanswered. */
  private get authPending(): boolean {
    return this.tokenFetching || this.authsInFlight > 0
  }

  private handleAuthenticated(msg: Authenticated): void {
    this.authsInFlight = Math.max(this.authsInFlight - 1, 0)
    // The server answers in order: this is who the connection is now, even
    // if a newer token is on its way (then that one's answer settles it).
    this.identity = { role: msg.role, expiresAt: msg.expires_at }
    this.count('authentications')
    this.scheduleRefresh(msg.expires_at)
    if (this.authPending) return
    this.authAttempt = 0
    this.authError = null
    this.clearTimer('authTimer')
    this.identitySettled()
  }

  /** The connection knows who it is: subscriptions held for that go out. */
  private identitySettled(): void {
    if (this.phase !== 'authenticating') {
      this.updateStatus()
      return
    }
    this.step({ type: 'authenticated' })
    this.sendHeld()
  }

  /** Sends every subscription that waits for the connection, then checks whether all are current. */
  private sendHeld(): void {
    for (const sub of this.subs) {
      if (sub.wireId === null && sub.retryTimer === null) this.sendSubscribe(sub)
    }
    this.maybeSynced()
  }

  private authFailed(error: LiveAuthError): void {
    this.report(error)
    // A newer token is already on its way: its answer decides.
    if (this.authPending) return
    // While subscriptions wait for an identity, there is none: the app
    // shows why. A failed refresh leaves the current identity in place
    // until it expires.
    if (this.phase === 'authenticating') this.authError = error
    const delay = backoffDelay(this.authAttempt, this.transport.random, this.transport.backoff)
    this.authAttempt += 1
    this.clearTimer('authTimer')
    this.authTimer = this.transport.timers.setTimeout(() => {
      this.authTimer = null
      if (this.transport.isOpen) this.startAuth()
    }, delay)
    this.updateStatus()
  }

  /** The token expired on the server: its subscriptions stopped there. */
  private handleExpired(error: LiveAuthError): void {
    this.report(error)
    this.identity = null
    this.clearTimer('refreshTimer')
    this.byWireId.clear()
    this.syncing.clear()
    for (const sub of this.subs) this.detach(sub)
    this.step({ type: 'reauthenticate' })
    if (this.getToken) this.startAuth()
    else {
      this.authError = error
      this.updateStatus()
    }
  }

  private scheduleRefresh(expiresAt: number): void {
    this.clearTimer('refreshTimer')
    if (!this.getToken || expiresAt === 0) return
    const left = Math.max(expiresAt * 1000 - this.now(), 0)
    const margin = Math.min(this.refreshBeforeMs, left / 4)
    const delay = Math.max(left - margin, MIN_REFRESH_MS)
    this.refreshTimer = this.transport.timers.setTimeout(() => {
      this.refreshTimer = null
      if (this.transport.isOpen && !this.authPending) this.startAuth()
    }, delay)
  }

  // --- subscriptions -------------------------------------------------------

  private sendSubscribe(sub: Subscription): void {
    if (sub.wireId !== null) this.byWireId.delete(sub.wireId)
    const id = `s${(this.nextWireId += 1)}`
    // What the server said about the previous wire subscription (a group
    // that kept failing, say) does not hold for the new one.
    this.setSubStatus(sub, null)
    sub.wireId = id
    sub.attached = false
    sub.catchUpTo = null
    this.byWireId.set(id, sub)
    if (this.phase === 'syncing') this.syncing.add(sub)
    const since = sub.needsSnapshot ? undefined : sub.view.since()
    this.transport.send(
      since ? { type: 'subscribe', id, query: sub.query, since } : { type: 'subscribe', id, query: sub.query },
    )
  }

  /** Drops the current server-side subscription and asks for a fresh snapshot. */
  private resync(sub: Subscription): void {
    this.count('resyncs')
    sub.stats.resyncs += 1
    this.inspected(sub, 'resync')
    sub.needsSnapshot = true
    if (sub.wireId !== null) {
      this.byWireId.delete(sub.wireId)
      this.transport.send({ type: 'unsubscribe', id: sub.wireId })
      sub.wireId = null
    }
    sub.attached = false
    sub.catchUpTo = null
    if (this.canSubscribe()) this.sendSubscribe(sub)
  }

  private unsubscribe(sub: Subscription): void {
    if (!this.subs.delete(sub)) return
    this.clearRetry(sub)
    if (sub.wireId !== null) {
      this.byWireId.delete(sub.wireId)
      this.transport.send({ type: 'unsubscribe', id: sub.wireId })
      sub.wireId = null
    }
    this.settle(sub)
    this.inspected(sub, 'unsubscribed')
  }

  /** `sub` answered (or went away): it no longer holds up `live`. */
  private settle(sub: Subscription): void {
    if (this.syncing.delete(sub)) this.maybeSynced()
  }

  private maybeSynced(): void {
    if (this.phase === 'syncing' && this.syncing.size === 0) this.step({ type: 'synced' })
  }

  // --- messages ------------------------------------------------------------

  private handleMessage(data: string): void {
    let msg: unknown
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    if (msg === null || typeof msg !== 'object' || !('type' in msg)) return
    // The server's frames are typed by the generated ServerMessage; fields
    // are checked where a wrong one could corrupt rows.
    const frame = msg as ServerMessage
    switch (frame.type) {
      case 'snapshot':
        return this.handleSnapshot(frame)
      case 'diff':
        return this.handleDiff(frame)
      case 'resumed':
        return this.handleResumed(frame)
      case 'error':
        return this.handleError(frame)
      case 'status':
        return this.handleStatus(frame)
      case 'authenticated':
        return this.handleAuthenticated(frame)
      default:
        return
    }
  }

  private handleStatus(msg: Status): void {
    // A status with an id concerns one subscription, not the connection.
    if (msg.id !== undefined && msg.id !== null) {
      const sub = this.byWireId.get(msg.id)
      if (sub) this.setSubStatus(sub, { state: msg.state, reason: msg.reason ?? null, at: this.now() })
      return
    }
    this.server = { state: msg.state, ...(msg.reason ? { reason: msg.reason } : {}) }
    this.updateStatus()
  }

  private handleSnapshot(msg: SnapshotMessage): void {
    const sub = this.byWireId.get(msg.id)
    // Rows of another table would be keyed and typed wrongly: not ours.
    if (!sub || msg.table !== sub.table || !Array.isArray(msg.rows)) return
    sub.view.replace(msg.rows, msg.epoch, msg.version)
    sub.attached = true
    sub.catchUpTo = null
    sub.needsSnapshot = false
    sub.error = null
    sub.retries = 0
    // Rows arrived: whatever identity the connection has, it may read.
    this.authError = null
    this.count('snapshots')
    sub.stats.snapshots += 1
    sub.lastChangeAt = this.now()
    this.emit(sub)
    this.inspected(sub, 'snapshot')
    this.settle(sub)
  }

  private handleResumed(msg: Resumed): void {
    const sub = this.byWireId.get(msg.id)
    if (!sub) return
    if (!sub.view.resume(msg.epoch, msg.from)) {
      // Not the result we hold: only a snapshot can be trusted now.
      this.resync(sub)
      return
    }
    sub.attached = true
    sub.retries = 0
    this.authError = null
    this.count('resumes')
    sub.stats.resumes += 1
    this.inspected(sub, 'resumed')
    if (sub.error) {
      // The rows did not change, but the subscription is healthy again.
      sub.error = null
      this.emit(sub)
    }
    if (msg.to > msg.from) sub.catchUpTo = msg.to
    else this.settle(sub)
  }

  private handleDiff(msg: DiffMessage): void {
    const sub = this.byWireId.get(msg.id)
    if (!sub || !sub.attached) return // not answered yet: a snapshot or resume comes first
    // A diff for another table is not applied; the next one then shows a gap.
    if (msg.table !== sub.table) return
    const outcome = sub.view.apply(msg)
    if (outcome === 'stale') return
    if (outcome === 'gap' || outcome === 'invalid') {
      this.resync(sub)
      return
    }
    sub.stats.diffs += 1
    sub.lastChangeAt = this.now()
    if (typeof msg.noticed_at === 'number') sub.lastNoticedAt = msg.noticed_at
    this.emit(sub)
    this.inspected(sub, 'diff', typeof msg.noticed_at === 'number' ? msg.noticed_at : undefined)
    if (sub.catchUpTo !== null && msg.to >= sub.catchUpTo) {
      sub.catchUpTo = null
      this.settle(sub)
    }
  }

  private handleError(msg: ErrorFrame): void {
    const frame: ErrorMessage = { code: msg.code, message: msg.message }
    if (msg.id === undefined || msg.id === null) {
      this.handleConnectionError(frame)
      return
    }
    frame.id = msg.id
    const sub = this.byWireId.get(msg.id)
    if (!sub) return
    this.byWireId.delete(msg.id)
    sub.wireId = null
    sub.attached = false
    sub.catchUpTo = null
    const error = new LiveSubscriptionError(frame)
    sub.error = error
    deliver(() => sub.subscriber.error?.(error))
    this.inspected(sub, 'error')
    if (error.code === 'unauthenticated' || error.code === 'token_expired') {
      // The connection has no identity to read as.
      this.authError = new LiveAuthError(error.code, error.message)
    } else if (TRANSIENT.has(error.code) && this.subs.has(sub)) {
      const delay = backoffDelay(sub.retries, this.transport.random, this.transport.backoff)
      sub.retries += 1
      this.clearRetry(sub)
      sub.retryTimer = this.transport.timers.setTimeout(() => {
        sub.retryTimer = null
        if (this.subs.has(sub) && sub.wireId === null && this.canSubscribe()) this.sendSubscribe(sub)
      }, delay)
    }
    this.settle(sub)
    this.updateStatus()
  }

  private handleConnectionError(frame: ErrorMessage): void {
    const { code } = frame
    if (isAuthErrorCode(code) && this.authsInFlight > 0) {
      // The answer to an `auth`: the token was refused.
      this.authsInFlight -= 1
      this.authFailed(new LiveAuthError(code, frame.message))
      return
    }
    if (code === 'token_expired') {
      this.handleExpired(new LiveAuthError(code, frame.message))
      return
    }
    if (code === 'unauthenticated') {
      // No identity and none coming (the server is about to close): say so.
      this.authError = new LiveAuthError(code, frame.message)
      this.report(this.authError)
      this.updateStatus()
      return
    }
    this.report(new LiveConnectionError(frame))
  }

  private emit(sub: Subscription): void {
    const { rows, version } = sub.view
    if (rows === null || version === null) return
    deliver(() => sub.subscriber.next(rows, version))
  }

  // --- helpers -------------------------------------------------------------

  private setSubStatus(sub: Subscription, status: SubscriptionStatus | null): void {
    if (sub.serverStatus === null && status === null) return
    sub.serverStatus = status
    deliver(() => sub.subscriber.status?.(status))
    this.inspected(sub, 'status')
  }

  private inspected(sub: Subscription, kind: InspectEvent['kind'], noticedAt?: number): void {
    if (this.inspectListeners.size === 0) return
    const event: InspectEvent =
      noticedAt === undefined
        ? { key: sub.key, kind, at: this.now() }
        : { key: sub.key, kind, at: this.now(), noticedAt }
    for (const listener of [...this.inspectListeners]) deliver(() => listener(event))
  }

  private count(counter: keyof LiveStats): void {
    this.counters[counter] += 1
    if (this.statsListeners.size === 0) return
    const stats = this.getStats()
    for (const listener of [...this.statsListeners]) deliver(() => listener(stats))
  }

  private report(error: LiveError): void {
    for (const listener of [...this.errorListeners]) deliver(() => listener(error))
  }

  private updateStatus(): void {
    const next = deriveStatus({
      phase: this.phase,
      retrying: this.everReady || this.transport.hasFailed,
      online: this.transport.isOnline(),
      server: this.server,
      authError: this.authError,
    })
    if (sameStatus(this.status, next)) return
    this.status = next
    this.statusHistory.push({ at: this.now(), status: next })
    if (this.statusHistory.length > STATUS_HISTORY) this.statusHistory.shift()
    for (const listener of [...this.statusListeners]) deliver(() => listener(next))
  }

  private clearTimer(which: 'authTimer' | 'refreshTimer'): void {
    const handle = this[which]
    if (handle !== null) {
      this.transport.timers.clearTimeout(handle)
      this[which] = null
    }
  }

  private clearRetry(sub: Subscription): void {
    if (sub.retryTimer !== null) {
      this.transport.timers.clearTimeout(sub.retryTimer)
      sub.retryTimer = null
    }
  }
}

/** Runs a listener; one that throws is reported without breaking the client. */
function deliver(fn: () => void): void {
  try {
    fn()
  } catch (e) {
    const report = (globalThis as { reportError?: (e: unknown) => void }).reportError
    if (typeof report === 'function') report(e)
    else console.error(e)
  }
}
