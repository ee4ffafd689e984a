// Live queries over lists that may be long: subscribe to one window (an
// order plus a `limit`) and raise the limit on demand. The server keeps one
// group per distinct query, so every window size is its own subscription;
// the rows on screen stay while a larger window loads.
import { computed, ref, shallowRef, watch } from 'vue'
import type { LiveQuery, RowsOf } from '@pglive/client'
import { useLiveQuery } from '@pglive/client/vue'

/** Rows per window, and how many more "show more" asks for. */
export const PAGE = 50

/** What a list's header says about how many rows there are. */
export interface WindowCount {
  /** The text: the exact number, or the rows shown with "+" when more may follow. */
  readonly label: string
  /** Rows exist beyond the ones shown. */
  readonly more: boolean
  /** Whether `label` is the exact number of matching rows. */
  readonly exact: boolean
}

/**
 * How many rows a window stands for. With the query's live count (`count:
 * true`), the number of rows that match, whatever the limit; without it,
 * only the rows shown, and a full window may have more behind it.
 */
export function windowCount(shown: number, total: number | null, limit: number): WindowCount {
  if (total !== null) return { label: String(total), more: total > shown, exact: true }
  const more = shown >= limit
  return { label: `${shown}${more ? '+' : ''}`, more, exact: false }
}

export function useWindowedLiveQuery<Q extends LiveQuery>(base: () => Q, page = PAGE) {
  const limit = ref(page)
  const baseKey = computed(() => JSON.stringify(base()))
  const query = computed<Q>(() => ({ ...base(), limit: limit.value }))
  const live = useLiveQuery(query)
  // The rows shown: the current window's, or the previous window's until the
  // larger one arrives (no loading state, no jump, when showing more).
  const rows = shallowRef<RowsOf<Q> | undefined>(live.data.value)
  watch(live.data, (value) => {
    if (value !== undefined) rows.value = value
  })
  // The live count (for a query with `count: true`) is kept the same way: a
  // larger window counts the same filter, so the previous window's count
  // holds until the larger one's first snapshot brings its own.
  const total = shallowRef<number | null>(live.liveCount.value)
  watch(live.liveCount, (value) => {
    if (value !== null) total.value = value
  })
  // Another filter is another list: start from one window, and never show
  // the previous filter's rows, or its count, as this one's.
  watch(baseKey, () => {
    limit.value = page
    rows.value = live.data.value
    total.value = live.liveCount.value
  })
  const counted = computed(() => windowCount(rows.value?.length ?? 0, total.value, limit.value))
  /** More rows than the window shows exist, or may (a full window without a live count). */
  const hasMore = computed(() => counted.value.more)
  /** The larger window is loading (the smaller one is still shown). */
  const loadingMore = computed(() => live.data.value === undefined && rows.value !== undefined)
  function showMore() {
    limit.value += page
  }
  return { ...live, rows, limit, query, total, counted, hasMore, loadingMore, showMore }
}
