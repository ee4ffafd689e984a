// The client's connection state machine and the one status an app shows.
//
// The phase says where the connection is in its handshake; the status the
// app sees combines it with what the server says about itself (its `status`
// message), the network and the identity, so that "live" is only claimed
// when changes can actually reach the page.
import type { DelayReason, Status } from './generated'
import type { LiveAuthError } from './errors'

/**
 * - `idle`: not started yet.
 * - `opening`: a socket is being opened.
 * - `authenticating`: open; a token is being fetched or checked, and new
 *   subscriptions wait for the identity they will read as.
 * - `syncing`: the identity is settled; subscriptions were sent and the
 *   client waits for each one's snapshot or resume.
 * - `ready`: every subscription is current.
 * - `waiting`: the socket closed; the next attempt waits for its backoff.
 * - `closed`: `close()` was called; nothing happens any more.
 */
export type Phase = 'idle' | 'opening' | 'authenticating' | 'syncing' | 'ready' | 'waiting' | 'closed'

export type PhaseEvent =
  /** A socket is being opened. */
  | { type: 'opening' }
  /** The socket opened; `auth` says whether a token is sent before subscribing. */
  | { type: 'opened'; auth: boolean }
  /** The identity is settled (a token accepted, or none to send). */
  | { type: 'authenticated' }
  /** The identity must be established again on this connection (expiry, a new user). */
  | { type: 'reauthenticate' }
  /** Every subscription sent while syncing has its rows. */
  | { type: 'synced' }
  /** The socket closed. */
  | { type: 'lost' }
  /** The client was closed for good. */
  | { type: 'close' }

/** The next phase; events that do not apply to a phase leave it as it is. */
export function transition(phase: Phase, event: PhaseEvent): Phase {
  if (phase === 'closed') return phase
  switch (event.type) {
    case 'close':
      return 'closed'
    case 'opening':
      return phase === 'idle' || phase === 'waiting' || phase === 'opening' ? 'opening' : phase
    case 'opened':
      if (phase !== 'opening') return phase
      return event.auth ? 'authenticating' : 'syncing'
    case 'authenticated':
      return phase === 'authenticating' ? 'syncing' : phase
    case 'reauthenticate':
      return phase === 'syncing' || phase === 'ready' || phase === 'authenticating' ? 'authenticating' : phase
    case 'synced':
      return phase === 'syncing' ? 'ready' : phase
    case 'lost':
      return phase === 'idle' ? phase : 'waiting'
  }
}

/** Whether the socket is open in `phase`. */
export function isConnected(phase: Phase): boolean {
  return phase === 'authenticating' || phase === 'syncing' || phase === 'ready'
}

/**
 * What the app shows:
 * - `connecting`: the first connection is being made.
 * - `live`: connected, every subscription is current, and the server says
 *   changes reach clients.
 * - `delayed`: connected, but the server says changes may not arrive for
 *   now (`reason`: its database is unreachable, or change capture is down).
 *   Rows shown may be stale until it is live again.
 * - `reconnecting`: the server cannot be reached (or the connection is
 *   catching up after a reconnect); rows shown are the last known ones.
 * - `offline`: the browser reports no network, or the client was closed.
 * - `unauthenticated`: no identity: the token was refused, expired, or could
 *   not be had (`error` says which); the client keeps trying.
 */
export type ConnectionStatus =
  | { readonly state: 'connecting' }
  | { readonly state: 'live' }
  | { readonly state: 'delayed'; readonly reason: DelayReason | null }
  | { readonly state: 'reconnecting' }
  | { readonly state: 'offline' }
  | { readonly state: 'unauthenticated'; readonly error: LiveAuthError }

export type ConnectionState = ConnectionStatus['state']

const CONNECTING: ConnectionStatus = { state: 'connecting' }
const LIVE: ConnectionStatus = { state: 'live' }
const RECONNECTING: ConnectionStatus = { state: 'reconnecting' }
const OFFLINE: ConnectionStatus = { state: 'offline' }

export interface StatusInputs {
  phase: Phase
  /** Whether a connection was ever made or attempted and lost (reconnecting, not connecting). */
  retrying: boolean
  /** Whether the network is up. */
  online: boolean
  /** What the server last said on this connection; null before it said anything. */
  server: Status | null
  /** Why the connection has no identity, while it has none. */
  authError: LiveAuthError | null
  /**
   * Whether the open connection, current before, is moving to another
   * identity in band (a user switch): the server moves its subscriptions
   * and nothing reconnects, so until they are current again the connection
   * stays what it was, not `reconnecting`.
   */
  switching?: boolean
}

/** The status an app shows for the client's current state. */
export function deriveStatus(inputs: StatusInputs): ConnectionStatus {
  const { phase, retrying, online, server, authError, switching = false } = inputs
  if (phase === 'closed') return OFFLINE
  const connected = isConnected(phase)
  if (!connected && !online) return OFFLINE
  if (authError) return { state: 'unauthenticated', error: authError }
  if (connected && server?.state === 'delayed') return { state: 'delayed', reason: server.reason ?? null }
  if (phase === 'ready' || (connected && switching)) return LIVE
  return retrying ? RECONNECTING : CONNECTING
}

/** Whether two statuses would show the same. */
export function sameStatus(a: ConnectionStatus, b: ConnectionStatus): boolean {
  if (a.state !== b.state) return false
  if (a.state === 'delayed' && b.state === 'delayed') return a.reason === b.reason
  if (a.state === 'unauthenticated' && b.state === 'unauthenticated') return a.error === b.error
  return true
}

const DELAY_LABELS: Record<DelayReason, string> = {
  database_unreachable: 'delayed — database unreachable',
  capture_down: 'delayed — change capture down',
  query_failing: 'delayed — a query is failing',
}

/** A short label: `live`, `reconnecting`, `delayed — database unreachable`, ... */
export function statusLabel(status: ConnectionStatus): string {
  if (status.state === 'delayed') return status.reason ? DELAY_LABELS[status.reason] : 'delayed'
  return status.state
}
