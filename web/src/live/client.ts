// LiveClient: one WebSocket to the pglive server, any number of live queries
// over it. Framework-free: plain TypeScript typed by the generated bindings,
// usable from Vue, React or a script alike.
import type { ClientMessage, ErrorCode, ErrorMessage, LiveQuery } from '../generated'
import { applyDiff, DiffError } from './applyDiff'
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff'
import { keyColumn } from './keys'
import type { AnyRow, DiffMessage, ErrorFrame, KeyColumn, RowOf, SnapshotMessage, Table } from './types'

/**
 * - `connecting`: the first connection attempt is under way.
 * - `live`: connected; subscriptions receive updates.
 * - `reconnecting`: the connection was lost or could not be made; retrying
 *   with backoff. Rows already received stay available (and may be stale).
 * - `offline`: the browser reports no network (retrying resumes when it
 *   returns), or the client was closed.
 */
export type ConnectionStatus = 'connecting' | 'live' | 'reconnecting' | 'offline'

/** The part of the WebSocket API the client uses (injectable for tests). */
export interface WebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

const OPEN = 1

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export interface LiveClientOptions {
  /** WebSocket URL; default `ws(s)://<current host>/ws`. */
  url?: string | (() => string)
  /** Creates the socket; default `new WebSocket(url)`. */
  createWebSocket?: (url: string) => WebSocketLike
  /** Timer functions; default the global ones (looked up at call time). */
  timers?: Timers
  /** Uniform random in [0, 1) for jitter; default `Math.random`. */
  random?: () => number
  /** Reconnect backoff; default base 250 ms, cap 10 s. */
  backoff?: BackoffPolicy
  /** A connection that stays open this long resets the backoff (ms, default 2000). */
  stableAfterMs?: number
  /** Whether the network is up; default `navigator.onLine` (true if unknown). */
  isOnline?: () => boolean
  /**
   * Calls `onOnline` whenever the network comes back; returns a function that
   * stops watching. Default: the window's `online` event, when there is one.
   */
  watchOnline?: (onOnline: () => void) => () => void
}

/** An `error` frame for one subscription: that subscription is not active. */
export class LiveSubscriptionError extends Error {
  override name = 'LiveSubscriptionError'
  readonly code: ErrorCode
  readonly frame: ErrorMessage

  constructor(frame: ErrorMessage) {
    super(frame.message)
    this.code = frame.code
    this.frame = frame
  }
}

/** Receives one subscription's results. */
export interface LiveSubscriber<R> {
  /** The complete, current result (a new array on every change). */
  next(rows: R[], version: number): void
  /** The server refused or dropped the subscription. */
  error?(error: LiveSubscriptionError): void
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

interface Subscription {
  readonly query: LiveQuery
  /** The query's table: frames for another table are not this subscription's. */
  readonly table: Table
  /** The table's declared key column: rows are keyed by it. */
  readonly key: KeyColumn<Table>
  readonly subscriber: LiveSubscriber<AnyRow>
  /** The id on the current connection, or null when not subscribed there. */
  wireId: string | null
  rows: AnyRow[] | null
  /** Version of `rows` on the current subscription; null until its snapshot. */
  version: number | null
  error: LiveSubscriptionError | null
  retries: number
  retryTimer: unknown
}

function defaultUrl(): string {
  const loc = (globalThis as { location?: Location }).location
  if (!loc) throw new Error('LiveClient: no `url` given and no window.location')
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`
}

const globalTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
}

function defaultIsOnline(): boolean {
  const nav = (globalThis as { navigator?: Navigator }).navigator
  return nav?.onLine ?? true
}

function defaultWatchOnline(onOnline: () => void): () => void {
  const target = globalThis as {
    addEventListener?: Window['addEventListener']
    removeEventListener?: Window['removeEventListener']
  }
  if (typeof target.addEventListener !== 'function') return () => {}
  const handler = () => onOnline()
  target.addEventListener('online', handler)
  return () => target.removeEventListener?.('online', handler)
}

export class LiveClient {
  private readonly url: () => string
  private readonly createWebSocket: (url: string) => WebSocketLike
  private readonly timers: Timers
  private readonly random: () => number
  private readonly backoff: BackoffPolicy
  private readonly stableAfterMs: number
  private readonly isOnline: () => boolean
  private readonly watchOnline: (onOnline: () => void) => () => void

  private ws: WebSocketLike | null = null
  private status: ConnectionStatus = 'connecting'
  private started = false
  private closed = false
  private everLive = false
  private attempt = 0
  private reconnectTimer: unknown = null
  private stableTimer: unknown = null
  private stopWatchingOnline: (() => void) | null = null
  private nextWireId = 0

  private readonly subs = new Set<Subscription>()
  private readonly byWireId = new Map<string, Subscription>()
  private readonly statusListeners = new Set<(status: ConnectionStatus) => void>()
  private readonly errorListeners = new Set<(error: ErrorMessage) => void>()

  constructor(options: LiveClientOptions = {}) {
    const url = options.url
    this.url = typeof url === 'function' ? url : url !== undefined ? () => url : defaultUrl
    this.createWebSocket = options.createWebSocket ?? ((u) => new WebSocket(u) as unknown as WebSocketLike)
    this.timers = options.timers ?? globalTimers
    this.random = options.random ?? Math.random
    this.backoff = options.backoff ?? DEFAULT_BACKOFF
    this.stableAfterMs = options.stableAfterMs ?? 2000
    this.isOnline = options.isOnline ?? defaultIsOnline
    this.watchOnline = options.watchOnline ?? defaultWatchOnline
  }

  /** Opens the connection (also done by the first `subscribe`). Idempotent. */
  connect(): void {
    if (this.started || this.closed) return
    this.started = true
    this.stopWatchingOnline = this.watchOnline(() => this.reconnectNow())
    this.open()
  }

  /** Closes the connection for good: no more reconnects, status `offline`. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.stopWatchingOnline?.()
    this.clearTimer('reconnectTimer')
    this.clearTimer('stableTimer')
    for (const sub of this.subs) this.clearRetry(sub)
    const ws = this.ws
    this.ws = null
    this.byWireId.clear()
    if (ws) {
      detach(ws)
      try {
        ws.close(1000, 'client closed')
      } catch {
        // already closing
      }
    }
    this.setStatus('offline')
  }

  /** When waiting to reconnect, tries right away instead. */
  reconnectNow(): void {
    if (this.closed || !this.started || this.ws) return
    this.clearTimer('reconnectTimer')
    this.open()
  }

  getStatus(): ConnectionStatus {
    return this.status
  }

  /** Calls `listener` on every status change; returns a function that stops it. */
  onStatus(listener: (status: ConnectionStatus) => void): () => void {
    this.statusListeners.add(listener)
    return () => this.statusListeners.delete(listener)
  }

  /** Calls `listener` for `error` frames that concern the whole connection. */
  onError(listener: (error: ErrorMessage) => void): () => void {
    this.errorListeners.add(listener)
    return () => this.errorListeners.delete(listener)
  }

  /**
   * Subscribes to `query`. `subscriber.next` gets the complete result after
   * the first snapshot and after every change; across reconnects and gaps
   * the client resubscribes by itself. Returns a function that unsubscribes.
   */
  subscribe<Q extends LiveQuery>(query: Q, subscriber: LiveSubscriber<RowOf<Q['table']>>): () => void {
    const sub: Subscription = {
      query,
      table: query.table,
      key: keyColumn(query.table),
      // A subscription only ever receives rows of its own query's table.
      subscriber,
      wireId: null,
      rows: null,
      version: null,
      error: null,
      retries: 0,
      retryTimer: null,
    }
    this.subs.add(sub)
    if (!this.started) this.connect()
    else if (this.isOpen()) this.sendSubscribe(sub)
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

  private open(): void {
    if (this.closed) return
    this.reconnectTimer = null
    if (this.everLive || this.attempt > 0) {
      this.setStatus(this.isOnline() ? 'reconnecting' : 'offline')
    } else {
      this.setStatus('connecting')
    }
    let ws: WebSocketLike
    try {
      ws = this.createWebSocket(this.url())
    } catch {
      this.scheduleReconnect()
      return
    }
    this.ws = ws
    ws.onopen = () => {
      if (this.ws === ws) this.handleOpen()
    }
    ws.onmessage = (event) => {
      if (this.ws === ws) this.handleMessage(event.data)
    }
    ws.onclose = () => {
      if (this.ws === ws) this.handleClose()
    }
    ws.onerror = () => {
      // A close event always follows; that is where we reconnect.
    }
  }

  private handleOpen(): void {
    this.everLive = true
    this.setStatus('live')
    this.clearTimer('stableTimer')
    this.stableTimer = this.timers.setTimeout(() => {
      this.stableTimer = null
      this.attempt = 0
    }, this.stableAfterMs)
    for (const sub of this.subs) {
      this.clearRetry(sub)
      this.sendSubscribe(sub)
    }
  }

  private handleClose(): void {
    const ws = this.ws
    this.ws = null
    if (ws) detach(ws)
    this.clearTimer('stableTimer')
    this.byWireId.clear()
    for (const sub of this.subs) {
      sub.wireId = null
      sub.version = null
      this.clearRetry(sub)
    }
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    if (this.closed) return
    this.setStatus(this.isOnline() ? 'reconnecting' : 'offline')
    const delay = backoffDelay(this.attempt, this.random, this.backoff)
    this.attempt += 1
    this.clearTimer('reconnectTimer')
    this.reconnectTimer = this.timers.setTimeout(() => this.open(), delay)
  }

  private isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === OPEN && this.status === 'live'
  }

  private send(message: ClientMessage): void {
    if (!this.isOpen()) return
    try {
      this.ws?.send(JSON.stringify(message))
    } catch {
      // The socket is closing; its close event resubscribes everything.
    }
  }

  // --- subscriptions -------------------------------------------------------

  private sendSubscribe(sub: Subscription): void {
    if (sub.wireId !== null) this.byWireId.delete(sub.wireId)
    const id = `s${(this.nextWireId += 1)}`
    sub.wireId = id
    sub.version = null
    this.byWireId.set(id, sub)
    this.send({ type: 'subscribe', id, query: sub.query })
  }

  /** Drops the current server-side subscription and asks for a fresh snapshot. */
  private resubscribe(sub: Subscription): void {
    if (sub.wireId !== null) {
      this.byWireId.delete(sub.wireId)
      this.send({ type: 'unsubscribe', id: sub.wireId })
      sub.wireId = null
    }
    if (this.isOpen()) this.sendSubscribe(sub)
  }

  private unsubscribe(sub: Subscription): void {
    if (!this.subs.delete(sub)) return
    this.clearRetry(sub)
    if (sub.wireId !== null) {
      this.byWireId.delete(sub.wireId)
      this.send({ type: 'unsubscribe', id: sub.wireId })
      sub.wireId = null
    }
  }

  private handleMessage(data: unknown): void {
    if (typeof data !== 'string') return
    let msg: SnapshotMessage | DiffMessage | ErrorFrame
    try {
      msg = JSON.parse(data) as typeof msg
    } catch {
      return
    }
    if (msg === null || typeof msg !== 'object') return
    switch (msg.type) {
      case 'snapshot':
        return this.handleSnapshot(msg)
      case 'diff':
        return this.handleDiff(msg)
      case 'error':
        return this.handleError(msg)
      default:
        return
    }
  }

  private handleSnapshot(msg: SnapshotMessage): void {
    const sub = this.byWireId.get(msg.id)
    // Rows of another table would be keyed and typed wrongly: not ours.
    if (!sub || msg.table !== sub.table || !Array.isArray(msg.rows)) return
    sub.rows = msg.rows.slice()
    sub.version = msg.version
    sub.error = null
    sub.retries = 0
    this.emit(sub)
  }

  private handleDiff(msg: DiffMessage): void {
    const sub = this.byWireId.get(msg.id)
    if (!sub || sub.rows === null || sub.version === null) return // no snapshot yet
    // A diff for another table is not applied; the next one then shows a gap.
    if (msg.table !== sub.table) return
    if (msg.to <= sub.version) return // stale: already part of what we have
    if (msg.from !== sub.version) {
      // A gap: some change was missed. Start over from a fresh snapshot.
      this.resubscribe(sub)
      return
    }
    let rows: AnyRow[]
    try {
      rows = applyDiff<AnyRow, KeyColumn<Table>>(sub.rows, msg.upserts, msg.deletes, sub.key)
    } catch (e) {
      if (e instanceof DiffError) {
        this.resubscribe(sub)
        return
      }
      throw e
    }
    sub.rows = rows
    sub.version = msg.to
    this.emit(sub)
  }

  private handleError(msg: ErrorFrame): void {
    const frame: ErrorMessage = { code: msg.code, message: msg.message }
    if (msg.id === undefined || msg.id === null) {
      for (const listener of [...this.errorListeners]) deliver(() => listener(frame))
      return
    }
    frame.id = msg.id
    const sub = this.byWireId.get(msg.id)
    if (!sub) return
    this.byWireId.delete(msg.id)
    sub.wireId = null
    sub.version = null
    const error = new LiveSubscriptionError(frame)
    sub.error = error
    deliver(() => sub.subscriber.error?.(error))
    if (TRANSIENT.has(error.code) && this.subs.has(sub)) {
      const delay = backoffDelay(sub.retries, this.random, this.backoff)
      sub.retries += 1
      this.clearRetry(sub)
      sub.retryTimer = this.timers.setTimeout(() => {
        sub.retryTimer = null
        if (this.subs.has(sub) && sub.wireId === null && this.isOpen()) this.sendSubscribe(sub)
      }, delay)
    }
  }

  private emit(sub: Subscription): void {
    const { rows, version } = sub
    if (rows === null || version === null) return
    deliver(() => sub.subscriber.next(rows, version))
  }

  // --- helpers -------------------------------------------------------------

  private setStatus(status: ConnectionStatus): void {
    if (this.status === status) return
    this.status = status
    for (const listener of [...this.statusListeners]) deliver(() => listener(status))
  }

  private clearTimer(which: 'reconnectTimer' | 'stableTimer'): void {
    const handle = this[which]
    if (handle !== null) {
      this.timers.clearTimeout(handle)
      this[which] = null
    }
  }

  private clearRetry(sub: Subscription): void {
    if (sub.retryTimer !== null) {
      this.timers.clearTimeout(sub.retryTimer)
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

function detach(ws: WebSocketLike): void {
  ws.onopen = null
  ws.onmessage = null
  ws.onclose = null
  ws.onerror = null
}
