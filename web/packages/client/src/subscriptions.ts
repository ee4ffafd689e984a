// The client's subscriptions: each one's query, subscriber and rows (kept
// across connections in `MaterializedRows`, so that a reconnect resumes,
// with the related entries of its included relations in `RelatedRows`),
// its wire id on the current connection, and what the server's frames for
// one subscription do to it: snapshot, resumed, diff, error and status.
// When they may be sent is the connection's business: `SubscriptionsHost`
// tells them, and hears when all are current.
import type { ErrorCode, ErrorMessage, LiveQuery, Resumed, Status } from './generated'
import { backoffDelay } from './backoff'
import type { Diagnostics, InspectEvent, SubscriptionInfo, SubscriptionStatus } from './diagnostics'
import { LiveAuthError, LiveSubscriptionError } from './errors'
import { keyColumn } from './keys'
import { deliver } from './listeners'
import { MaterializedRows } from './materialized'
import { inclusionsOf, RelatedRows } from './related'
import type { Phase } from './state'
import type { Transport } from './transport'
import type { AnyLiveRow, AnyRow, DiffMessage, KeyColumn, LiveRowOf, SnapshotMessage, Table } from './types'

/** Receives one subscription's results. */
export interface LiveSubscriber<R> {
  /**
   * The complete, current result (a new array on every change), and, for a
   * query with `count: true`, how many rows pass its filter whatever its
   * limit (null otherwise). With `include`, each row carries its related
   * rows: `{...task, comments: Comment[], comments_count}` for a has_many
   * (`comments_count` with `count: true`), `{...comment, task: Task | null}`
   * for a belongs_to. A row whose data and related rows did not change is
   * the same object as in the previous result.
   */
  next(rows: R[], version: number, count: number | null): void
  /** The server refused or dropped the subscription. */
  error?(error: LiveSubscriptionError): void
  /**
   * The server's status of this subscription alone: `delayed` (with a
   * reason, e.g. `query_failing` while its query keeps failing and is being
   * retried), then `live` again. Null when a new connection starts.
   */
  status?(status: SubscriptionStatus | null): void
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
  readonly key: number
  readonly query: LiveQuery
  /** The query's table: frames for another table are not this subscription's. */
  readonly table: Table
  readonly subscriber: LiveSubscriber<AnyLiveRow>
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

/** What the subscriptions ask of the connection, and tell it. */
export interface SubscriptionsHost {
  /** The connection's phase now. */
  phase(): Phase
  /** Every subscription sent while syncing has its rows. */
  synced(): void
  /** Rows arrived: whatever identity the connection has, it may read. */
  rowsArrived(): void
  /** The server says the connection has no identity to read as. */
  denied(error: LiveAuthError): void
  /** Something the connection's status derives from may have changed. */
  changed(): void
}

/** A client's subscriptions, across its connections. */
export class Subscriptions {
  private readonly subs = new Set<Subscription>()
  private readonly byWireId = new Map<string, Subscription>()
  /** Subscriptions sent while syncing that have not been answered yet. */
  private readonly syncing = new Set<Subscription>()
  private nextWireId = 0
  private nextKey = 0

  constructor(
    private readonly transport: Transport,
    private readonly diagnostics: Diagnostics,
    private readonly now: () => number,
    private readonly host: SubscriptionsHost,
  ) {}

  /** Number of active subscriptions. */
  get size(): number {
    return this.subs.size
  }

  /** Adds a subscription, sent now if the connection can take it; returns a function that ends it. */
  add<Q extends LiveQuery>(query: Q, subscriber: LiveSubscriber<LiveRowOf<Q['table']>>): () => void {
    const inclusions = inclusionsOf(query)
    const sub: Subscription = {
      key: (this.nextKey += 1),
      query,
      table: query.table,
      // A subscription only ever receives rows of its own query's table.
      subscriber,
      view: new MaterializedRows<AnyRow, KeyColumn<Table>>(
        keyColumn(query.table),
        inclusions.length > 0 ? new RelatedRows<AnyRow>(inclusions) : null,
      ),
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
    if (this.canSubscribe()) this.sendSubscribe(sub)
    let active = true
    return () => {
      if (!active) return
      active = false
      this.unsubscribe(sub)
    }
  }

  /** Every subscription as it is now, in the order they were made; the objects are copies. */
  inspect(): SubscriptionInfo[] {
    return [...this.subs].map((sub) => ({
      key: sub.key,
      query: sub.query,
      wireId: sub.wireId,
      epoch: sub.view.epoch,
      version: sub.view.version,
      rows: sub.view.rows?.length ?? null,
      count: sub.view.count,
      relations: sub.view.related?.info() ?? [],
      ...sub.stats,
      lastChangeAt: sub.lastChangeAt,
      lastNoticedAt: sub.lastNoticedAt,
      status: sub.serverStatus,
      error: sub.error,
    }))
  }

  /** Sends every subscription that waits for the connection, then checks whether all are current. */
  sendHeld(): void {
    for (const sub of this.subs) {
      if (sub.wireId === null && sub.retryTimer === null) this.sendSubscribe(sub)
    }
    this.maybeSynced()
  }

  /** The server no longer holds any of them (the connection closed, or its token expired); rows stay. */
  detachAll(): void {
    this.byWireId.clear()
    this.syncing.clear()
    for (const sub of this.subs) {
      this.forgetWire(sub)
      this.clearRetry(sub)
      // What the server said about it held for that connection only.
      this.setSubStatus(sub, null)
    }
  }

  snapshot(msg: SnapshotMessage): void {
    const sub = this.byWireId.get(msg.id)
    // Rows of another table would be keyed and typed wrongly: not ours.
    if (!sub || msg.table !== sub.table || !Array.isArray(msg.rows)) return
    if (!sub.view.accepts(msg.related)) return
    sub.view.replace(msg.rows, msg.epoch, msg.version, msg.count, msg.related)
    sub.attached = true
    sub.catchUpTo = null
    sub.needsSnapshot = false
    sub.error = null
    sub.retries = 0
    this.host.rowsArrived()
    this.diagnostics.count('snapshots')
    sub.stats.snapshots += 1
    sub.lastChangeAt = this.now()
    this.emit(sub)
    this.inspected(sub, 'snapshot')
    this.settle(sub)
  }

  resumed(msg: Resumed): void {
    const sub = this.byWireId.get(msg.id)
    if (!sub) return
    if (!sub.view.resume(msg.epoch, msg.from)) {
      // Not the result we hold: only a snapshot can be trusted now.
      this.resync(sub)
      return
    }
    sub.attached = true
    sub.retries = 0
    this.host.rowsArrived()
    this.diagnostics.count('resumes')
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

  diff(msg: DiffMessage): void {
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

  /** An `error` frame for wire id `id`: that subscription is not active on the server. */
  error(id: string, frame: ErrorMessage): void {
    const sub = this.byWireId.get(id)
    if (!sub) return
    this.byWireId.delete(id)
    this.forgetWire(sub)
    const error = new LiveSubscriptionError(frame)
    sub.error = error
    deliver(() => sub.subscriber.error?.(error))
    this.inspected(sub, 'error')
    if (error.code === 'unauthenticated' || error.code === 'token_expired') {
      // The connection has no identity to read as.
      this.host.denied(new LiveAuthError(error.code, error.message))
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
    this.host.changed()
  }

  /** A `status` message for wire id `id`: it concerns that subscription alone. */
  status(id: string, msg: Status): void {
    const sub = this.byWireId.get(id)
    if (sub) this.setSubStatus(sub, { state: msg.state, reason: msg.reason ?? null, at: this.now() })
  }

  /** Subscriptions are sent now (not held for an identity or a connection). */
  private canSubscribe(): boolean {
    const phase = this.host.phase()
    return (phase === 'syncing' || phase === 'ready') && this.transport.isOpen
  }

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
    if (this.host.phase() === 'syncing') this.syncing.add(sub)
    const since = sub.needsSnapshot ? undefined : sub.view.since()
    this.transport.send(
      since ? { type: 'subscribe', id, query: sub.query, since } : { type: 'subscribe', id, query: sub.query },
    )
  }

  /** Drops the current server-side subscription and asks for a fresh snapshot. */
  private resync(sub: Subscription): void {
    this.diagnostics.count('resyncs')
    sub.stats.resyncs += 1
    this.inspected(sub, 'resync')
    sub.needsSnapshot = true
    this.sendUnsubscribe(sub)
    sub.attached = false
    sub.catchUpTo = null
    if (this.canSubscribe()) this.sendSubscribe(sub)
  }

  private unsubscribe(sub: Subscription): void {
    if (!this.subs.delete(sub)) return
    this.clearRetry(sub)
    this.sendUnsubscribe(sub)
    this.settle(sub)
    this.inspected(sub, 'unsubscribed')
  }

  /** Ends the subscription's wire id on the server, if it has one. */
  private sendUnsubscribe(sub: Subscription): void {
    if (sub.wireId === null) return
    this.byWireId.delete(sub.wireId)
    this.transport.send({ type: 'unsubscribe', id: sub.wireId })
    sub.wireId = null
  }

  /** The subscription has no wire id any more: it waits to be sent again. */
  private forgetWire(sub: Subscription): void {
    sub.wireId = null
    sub.attached = false
    sub.catchUpTo = null
  }

  /** `sub` answered (or went away): it no longer holds up `live`. */
  private settle(sub: Subscription): void {
    if (this.syncing.delete(sub)) this.maybeSynced()
  }

  private maybeSynced(): void {
    if (this.host.phase() === 'syncing' && this.syncing.size === 0) this.host.synced()
  }

  private emit(sub: Subscription): void {
    const { rows, version, count } = sub.view
    if (rows === null || version === null) return
    deliver(() => sub.subscriber.next(rows, version, count))
  }

  private setSubStatus(sub: Subscription, status: SubscriptionStatus | null): void {
    if (sub.serverStatus === null && status === null) return
    sub.serverStatus = status
    deliver(() => sub.subscriber.status?.(status))
    this.inspected(sub, 'status')
  }

  private inspected(sub: Subscription, kind: InspectEvent['kind'], noticedAt?: number): void {
    this.diagnostics.inspected(sub.key, kind, noticedAt)
  }

  private clearRetry(sub: Subscription): void {
    if (sub.retryTimer !== null) {
      this.transport.timers.clearTimeout(sub.retryTimer)
      sub.retryTimer = null
    }
  }
}
