// The live-query inspector's data: every subscription of the dashboard's
// LiveClient (query, version, rows, counters, per-subscription status), the
// connection's status history, and each subscription's latest latency from
// the server noticing a change (`noticed_at`, server clock) to the page
// having painted it (client clock; on one machine, or with synchronized
// clocks, that is the change's whole trip).
import { nextTick, shallowRef } from 'vue'
import type { LiveClient, RelationInfo, StatusChange, SubscriptionInfo } from '@pglive/client'

export interface LatencySample {
  /** ms from `noticed_at` to the frame after the change was rendered. */
  readonly ms: number
  /** When it was measured (client clock). */
  readonly at: number
}

export interface InspectorState {
  readonly subscriptions: readonly SubscriptionInfo[]
  readonly history: readonly StatusChange[]
  /** Latest latency per subscription key. */
  readonly latency: ReadonlyMap<number, LatencySample>
}

export const inspectorState = shallowRef<InspectorState>({ subscriptions: [], history: [], latency: new Map() })

/** Whether the panel is open; while closed, only latencies are measured. */
export const inspectorOpen = shallowRef(false)

let client: LiveClient | null = null
let scheduled = false
const latency = new Map<number, LatencySample>()

/** Refreshes the state once per frame at most, and only while someone looks. */
export function refreshInspector(): void {
  if (!client || scheduled || !inspectorOpen.value) return
  scheduled = true
  const run = () => {
    scheduled = false
    if (!client) return
    inspectorState.value = {
      subscriptions: client.inspect(),
      history: client.getStatusHistory(),
      latency: new Map(latency),
    }
  }
  if (typeof requestAnimationFrame === 'function') requestAnimationFrame(run)
  else setTimeout(run, 16)
}

/**
 * The moment a change is on screen: TanStack Query hands new data to its
 * observers in a macrotask (its notify batch), Vue renders in the next
 * microtasks, and the frame after that is painted. The sample is taken in
 * that frame, so it includes the render and is an upper bound by a frame.
 */
function measure(key: number, noticedAt: number): void {
  setTimeout(() => {
    void nextTick(() => {
      const done = () => {
        latency.set(key, { ms: Math.max(0, Date.now() - noticedAt), at: Date.now() })
        refreshInspector()
      }
      if (typeof requestAnimationFrame === 'function') requestAnimationFrame(done)
      else done()
    })
  }, 0)
}

/** Follows `live` from now on (call once, at start, so that latencies and history are complete). */
export function installInspector(live: LiveClient): void {
  client = live
  live.onInspect((event) => {
    if (event.kind === 'diff' && event.noticedAt !== undefined) measure(event.key, event.noticedAt)
    if (event.kind === 'unsubscribed') latency.delete(event.key)
    refreshInspector()
  })
  live.onStatus(() => refreshInspector())
}

/**
 * One included relation as the inspector lists it, e.g. "has_many comments,
 * counted · 4 entries, 9 rows": what the subscription asked for and how much
 * of it the page holds (entries are the rows that have related rows).
 */
export function describeRelation(relation: RelationInfo): string {
  const asked = `${relation.kind} ${relation.target}${relation.count ? ', counted' : ''}`
  const entries = relation.entries === 1 ? '1 entry' : `${relation.entries} entries`
  const rows = relation.rows === 1 ? '1 row' : `${relation.rows} rows`
  return `${asked} · ${entries}, ${rows}`
}
