// The WebSocket under a LiveClient: opens it, reopens it with backoff when it
// closes, and watches the network. It knows nothing about subscriptions or
// identity; the client reacts to its events.
import type { ClientMessage } from './generated'
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff'

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

export interface TransportOptions {
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

/** What the transport tells its owner. */
export interface TransportEvents {
  /** A socket is being opened (the first one, or after a wait). */
  opening(): void
  /** The socket is open. */
  open(): void
  /** A text frame arrived. */
  message(data: string): void
  /** The socket closed or could not be opened; the next attempt is scheduled. */
  close(event: { code: number; reason: string }): void
}

function defaultUrl(): string {
  const loc = (globalThis as { location?: Location }).location
  if (!loc) throw new Error('LiveClient: no `url` given and no window.location')
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`
}

export const globalTimers: Timers = {
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

export class Transport {
  readonly timers: Timers
  readonly random: () => number
  readonly backoff: BackoffPolicy
  readonly isOnline: () => boolean
  private readonly url: () => string
  private readonly createWebSocket: (url: string) => WebSocketLike
  private readonly stableAfterMs: number
  private readonly watchOnline: (onOnline: () => void) => () => void

  private ws: WebSocketLike | null = null
  private opened = false
  private started = false
  private stopped = false
  private attempt = 0
  private failures = 0
  private reconnectTimer: unknown = null
  private stableTimer: unknown = null
  private stopWatchingOnline: (() => void) | null = null

  constructor(
    options: TransportOptions,
    private readonly events: TransportEvents,
  ) {
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

  /** Opens the first socket. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return
    this.started = true
    this.stopWatchingOnline = this.watchOnline(() => this.reconnectNow())
    this.open()
  }

  /** Closes the socket for good; no event follows. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.stopWatchingOnline?.()
    this.clearTimer('reconnectTimer')
    this.clearTimer('stableTimer')
    const ws = this.ws
    this.ws = null
    this.opened = false
    if (ws) closeQuietly(ws, 1000, 'client closed')
  }

  /** When waiting to reconnect, tries right away instead. */
  reconnectNow(): void {
    if (this.stopped || !this.started || this.ws) return
    this.clearTimer('reconnectTimer')
    this.open()
  }

  /**
   * Drops the current socket and opens a new one at once (no backoff): a
   * connection's identity can only be shed by a new connection.
   */
  restart(): void {
    if (this.stopped || !this.started) return
    const ws = this.ws
    if (!ws) {
      this.reconnectNow()
      return
    }
    this.ws = null
    this.opened = false
    this.clearTimer('stableTimer')
    closeQuietly(ws, 1000, 'reconnecting')
    this.events.close({ code: 1000, reason: 'restart' })
    this.open()
  }

  /** Sends `message` when the socket is open; false when it could not. */
  send(message: ClientMessage): boolean {
    if (!this.isOpen) return false
    try {
      this.ws?.send(JSON.stringify(message))
      return true
    } catch {
      // The socket is closing; its close event starts over.
      return false
    }
  }

  get isOpen(): boolean {
    return this.opened && this.ws !== null && this.ws.readyState === OPEN
  }

  /** Whether an attempt has failed or a connection has closed since the start. */
  get hasFailed(): boolean {
    return this.failures > 0
  }

  private open(): void {
    if (this.stopped) return
    this.reconnectTimer = null
    this.events.opening()
    let ws: WebSocketLike
    try {
      ws = this.createWebSocket(this.url())
    } catch {
      this.lost({ code: 1006, reason: 'could not open a WebSocket' })
      return
    }
    this.ws = ws
    ws.onopen = () => {
      if (this.ws !== ws) return
      this.opened = true
      this.clearTimer('stableTimer')
      this.stableTimer = this.timers.setTimeout(() => {
        this.stableTimer = null
        this.attempt = 0
      }, this.stableAfterMs)
      this.events.open()
    }
    ws.onmessage = (event) => {
      if (this.ws === ws && typeof event.data === 'string') this.events.message(event.data)
    }
    ws.onclose = (event) => {
      if (this.ws !== ws) return
      this.ws = null
      detach(ws)
      this.lost({ code: event.code, reason: event.reason })
    }
    ws.onerror = () => {
      // A close event always follows; that is where we reconnect.
    }
  }

  private lost(event: { code: number; reason: string }): void {
    this.opened = false
    this.failures += 1
    this.clearTimer('stableTimer')
    if (this.stopped) return
    const delay = backoffDelay(this.attempt, this.random, this.backoff)
    this.attempt += 1
    this.clearTimer('reconnectTimer')
    this.reconnectTimer = this.timers.setTimeout(() => this.open(), delay)
    this.events.close(event)
  }

  private clearTimer(which: 'reconnectTimer' | 'stableTimer'): void {
    const handle = this[which]
    if (handle !== null) {
      this.timers.clearTimeout(handle)
      this[which] = null
    }
  }
}

function closeQuietly(ws: WebSocketLike, code: number, reason: string): void {
  detach(ws)
  try {
    ws.close(code, reason)
  } catch {
    // already closing
  }
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null
  ws.onmessage = null
  ws.onclose = null
  ws.onerror = null
}
