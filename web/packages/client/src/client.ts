// LiveClient: one WebSocket to the pglive server, any number of live queries
// over it. Framework-free: plain TypeScript typed by the generated bindings,
// usable from Vue, React or a script alike.
//
// The pieces: `Transport` (transport.ts) owns the socket and its
// reconnects; `Subscriptions` (subscriptions.ts) each subscription's rows,
// kept across connections in `MaterializedRows` (materialized.ts), and what
// the server's frames for it do; `Authenticator` (auth.ts) the token
// lifecycle: getToken, refresh before expiry, `token_expired`,
// `reauthenticate`; `transition`/`deriveStatus` (state.ts) are the
// connection's state machine and the status the app shows; `Diagnostics`
// (diagnostics.ts) keeps the counters, inspector events and status history.
// This file wires them together: the connection's phase and status, and
// which piece each of the server's messages goes to.
import type { ErrorMessage, LiveQuery, ServerMessage, Status } from './generated'
import { Authenticator, type AuthOptions, type LiveIdentity } from './auth'
import { Diagnostics, type InspectEvent, type LiveStats, type StatusChange, type SubscriptionInfo } from './diagnostics'
import { LiveAuthError, LiveConnectionError, type LiveError } from './errors'
import { Listeners } from './listeners'
import {
  deriveStatus,
  isConnected,
  sameStatus,
  transition,
  type ConnectionStatus,
  type Phase,
  type PhaseEvent,
} from './state'
import { Subscriptions, type LiveSubscriber } from './subscriptions'
import { Transport, type TransportOptions } from './transport'
import type { ErrorFrame, LiveRowOf } from './types'

export type { LiveIdentity } from './auth'
export type { InspectEvent, LiveStats, StatusChange, SubscriptionInfo, SubscriptionStatus } from './diagnostics'
export type { RelationInfo } from './related'
export type { LiveSubscriber } from './subscriptions'

export interface LiveClientOptions extends TransportOptions, AuthOptions {
  /** The current time in ms since the epoch; default `Date.now`. */
  now?: () => number
}

/** The close code of a connection that did not authenticate in time. */
const CLOSE_UNAUTHENTICATED = 4401

export class LiveClient {
  private readonly now: () => number
  private readonly diagnostics: Diagnostics
  private readonly transport: Transport
  private readonly auth: Authenticator
  private readonly subscriptions: Subscriptions

  private phase: Phase = 'idle'
  /** Whether the client was ever live: later handshakes show as reconnecting. */
  private everReady = false
  private status: ConnectionStatus = { state: 'connecting' }
  private server: Status | null = null
  /**
   * The open connection, current before, is moving to another identity in
   * band (`reauthenticate`): it is not reconnecting. Cleared once it is
   * current again, or when it closes or its token expires.
   */
  private switching = false
  /** Why the next status change happens, when the client causes it (for the history). */
  private changeReason: string | undefined = undefined
  private readonly statusListeners = new Listeners<ConnectionStatus>()
  private readonly errorListeners = new Listeners<LiveError>()

  constructor(options: LiveClientOptions = {}) {
    this.now = options.now ?? Date.now
    this.diagnostics = new Diagnostics(this.now, this.status)
    this.transport = new Transport(options, {
      opening: () => this.step({ type: 'opening' }),
      open: () => this.handleOpen(),
      message: (data) => this.handleMessage(data),
      close: (event) => this.handleClose(event),
    })
    this.auth = new Authenticator(options, this.transport, this.diagnostics, this.now, {
      settled: () => this.identitySettled(),
      changed: () => this.updateStatus(),
      report: (error) => this.report(error),
      expired: () => {
        // The server stopped the subscriptions: they are not moving over.
        this.switching = false
        this.subscriptions.detachAll()
        this.step({ type: 'reauthenticate' })
      },
      restarting: (reason) => {
        this.changeReason = reason
      },
    })
    this.subscriptions = new Subscriptions(this.transport, this.diagnostics, this.now, {
      phase: () => this.phase,
      synced: () => this.step({ type: 'synced' }),
      rowsArrived: () => this.auth.rowsArrived(),
      denied: (error) => this.auth.deny(error),
      changed: () => this.updateStatus(),
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
    if (!this.auth.enabled || !isConnected(this.phase)) return
    // A connection that was current stays open and stays live: the server
    // moves its subscriptions in band.
    if (this.phase === 'ready') this.switching = true
    this.step({ type: 'reauthenticate' })
    this.auth.authenticate()
  }

  getStatus(): ConnectionStatus {
    return this.status
  }

  /** Who the connection reads as (after a token was accepted), else null. */
  getIdentity(): LiveIdentity | null {
    return this.auth.identity
  }

  getStats(): Readonly<LiveStats> {
    return this.diagnostics.stats()
  }

  /** Calls `listener` on every status change; returns a function that stops it. */
  onStatus(listener: (status: ConnectionStatus) => void): () => void {
    return this.statusListeners.add(listener)
  }

  /** Calls `listener` whenever a counter of `getStats()` changes; returns a function that stops it. */
  onStats(listener: (stats: Readonly<LiveStats>) => void): () => void {
    return this.diagnostics.statsListeners.add(listener)
  }

  /**
   * Every subscription as it is now, in the order they were made: query,
   * version, rows held, counters, last change, the server's per-subscription
   * status. For diagnostics (a live-query inspector); the objects are copies.
   */
  inspect(): SubscriptionInfo[] {
    return this.subscriptions.inspect()
  }

  /** Calls `listener` whenever anything `inspect()` shows changes; returns a function that stops it. */
  onInspect(listener: (event: InspectEvent) => void): () => void {
    return this.diagnostics.inspectListeners.add(listener)
  }

  /** The connection's last status changes (at most 50), oldest first, with when each happened. */
  getStatusHistory(): readonly StatusChange[] {
    return this.diagnostics.statusHistory()
  }

  /** Calls `listener` for errors that concern the whole connection (identity included). */
  onError(listener: (error: LiveError) => void): () => void {
    return this.errorListeners.add(listener)
  }

  /**
   * Subscribes to `query`. `subscriber.next` gets the complete result after
   * the first snapshot and after every change; with `include`, each row
   * carries its related rows (`LiveRowOf`). Across reconnects the client
   * resubscribes by itself and resumes from the rows it holds when the
   * server still can; the rows stay meanwhile. Returns a function that
   * unsubscribes.
   */
  subscribe<Q extends LiveQuery>(query: Q, subscriber: LiveSubscriber<LiveRowOf<Q['table']>>): () => void {
    const unsubscribe = this.subscriptions.add(query, subscriber)
    if (this.phase === 'idle') this.connect()
    return unsubscribe
  }

  /** Number of active subscriptions (for diagnostics and tests). */
  get subscriptionCount(): number {
    return this.subscriptions.size
  }

  // --- connection ----------------------------------------------------------

  private step(event: PhaseEvent): void {
    this.phase = transition(this.phase, event)
    if (this.phase === 'ready') this.everReady = true
    if (this.phase === 'ready' || !isConnected(this.phase)) this.switching = false
    this.updateStatus()
  }

  private handleOpen(): void {
    this.diagnostics.count('connections')
    this.server = null
    this.step({ type: 'opened', auth: this.auth.enabled })
    if (this.auth.enabled) this.auth.authenticate()
    else this.subscriptions.sendHeld()
  }

  private handleClose(event: { code: number; reason: string }): void {
    this.endConnection()
    if (event.code === CLOSE_UNAUTHENTICATED) {
      const error = new LiveAuthError('unauthenticated', event.reason || 'the server requires authentication')
      this.auth.deny(error)
      this.report(error)
    }
    this.step({ type: 'lost' })
  }

  /** Forgets everything that belonged to the connection; rows stay. */
  private endConnection(): void {
    this.auth.closed()
    this.server = null
    this.subscriptions.detachAll()
  }

  /** The connection knows who it is: subscriptions held for that go out. */
  private identitySettled(): void {
    if (this.phase !== 'authenticating') {
      this.updateStatus()
      return
    }
    this.step({ type: 'authenticated' })
    this.subscriptions.sendHeld()
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
        return this.subscriptions.snapshot(frame)
      case 'diff':
        return this.subscriptions.diff(frame)
      case 'resumed':
        return this.subscriptions.resumed(frame)
      case 'error':
        return this.handleError(frame)
      case 'status':
        return this.handleStatus(frame)
      case 'authenticated':
        return this.auth.accepted(frame)
      default:
        return
    }
  }

  private handleStatus(msg: Status): void {
    // A status with an id concerns one subscription, not the connection.
    if (msg.id !== undefined && msg.id !== null) {
      this.subscriptions.status(msg.id, msg)
      return
    }
    this.server = { state: msg.state, ...(msg.reason ? { reason: msg.reason } : {}) }
    this.updateStatus()
  }

  private handleError(msg: ErrorFrame): void {
    const frame: ErrorMessage = { code: msg.code, message: msg.message }
    if (msg.id === undefined || msg.id === null) {
      // About the whole connection: its identity, or else for `onError`.
      if (!this.auth.connectionError(frame)) this.report(new LiveConnectionError(frame))
      return
    }
    frame.id = msg.id
    this.subscriptions.error(msg.id, frame)
  }

  private report(error: LiveError): void {
    this.errorListeners.emit(error)
  }

  private updateStatus(): void {
    const next = deriveStatus({
      phase: this.phase,
      retrying: this.everReady || this.transport.hasFailed,
      online: this.transport.isOnline(),
      server: this.server,
      authError: this.auth.error,
      switching: this.switching,
    })
    if (sameStatus(this.status, next)) return
    this.status = next
    const reason = this.changeReason
    this.changeReason = undefined
    this.diagnostics.statusChanged(next, reason)
    this.statusListeners.emit(next)
  }
}
