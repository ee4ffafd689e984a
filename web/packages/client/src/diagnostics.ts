// What the client shows a diagnostics view (the dashboard's live-query
// inspector) and tests: its counters, an event for each change of a
// subscription, the connection's last status changes, and the shape of the
// subscription list `inspect()` returns. Nothing here changes what the
// client does.
import type { DelayReason, LiveQuery, LiveState } from './generated'
import type { LiveSubscriptionError } from './errors'
import { Listeners } from './listeners'
import type { RelationInfo } from './related'
import type { ConnectionStatus } from './state'

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
  /** The live count held, for a query with `count: true`; else null. */
  readonly count: number | null
  /**
   * The relations its query includes (`include`), each with the related
   * entries and rows held; empty without `include`.
   */
  readonly relations: readonly RelationInfo[]
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
  /**
   * Why the client itself caused the change, when it did: e.g. signing out
   * takes a new connection, so that `reconnecting` is not an outage.
   */
  readonly reason?: string
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

/** A client's counters, inspector events and status history, with their listeners. */
export class Diagnostics {
  /** Called whenever a counter changes (`LiveClient.onStats`). */
  readonly statsListeners = new Listeners<Readonly<LiveStats>>()
  /** Called whenever anything `inspect()` shows changes (`LiveClient.onInspect`). */
  readonly inspectListeners = new Listeners<InspectEvent>()
  private readonly counters: LiveStats = { connections: 0, snapshots: 0, resumes: 0, resyncs: 0, authentications: 0 }
  private readonly history: StatusChange[] = []

  /** `initial` is the status the client starts in: the history's first entry. */
  constructor(
    private readonly now: () => number,
    initial: ConnectionStatus,
  ) {
    this.history.push({ at: this.now(), status: initial })
  }

  /** A copy of the counters. */
  stats(): Readonly<LiveStats> {
    return { ...this.counters }
  }

  count(counter: keyof LiveStats): void {
    this.counters[counter] += 1
    if (this.statsListeners.empty) return
    this.statsListeners.emit(this.stats())
  }

  /** Subscription `key` changed in a way the inspector shows. */
  inspected(key: number, kind: InspectEvent['kind'], noticedAt?: number): void {
    if (this.inspectListeners.empty) return
    const event: InspectEvent =
      noticedAt === undefined ? { key, kind, at: this.now() } : { key, kind, at: this.now(), noticedAt }
    this.inspectListeners.emit(event)
  }

  /** The connection's status changed to `status` (because of `reason`, if the client caused it): the history keeps the last ones. */
  statusChanged(status: ConnectionStatus, reason?: string): void {
    this.history.push(reason === undefined ? { at: this.now(), status } : { at: this.now(), status, reason })
    if (this.history.length > STATUS_HISTORY) this.history.shift()
  }

  /** The last status changes (at most 50), oldest first. */
  statusHistory(): readonly StatusChange[] {
    return this.history.slice()
  }
}
