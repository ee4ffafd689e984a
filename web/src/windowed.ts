// Live queries over lists that may be long: subscribe to one window (an
// order plus a `limit`) and raise the limit on demand. The server keeps one
// group per distinct query, so every window size is its own subscription;
// the rows on screen stay while a larger window loads.
import { computed, ref, shallowRef, watch } from 'vue'
import type { LiveQuery, RowsOf } from '@pglive/client'
import { useLiveQuery } from '@pglive/client/vue'

/** Rows per window, and how many more "show more" asks for. */
export const PAGE = 50

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
  // Another filter is another list: start from one window, and never show
  // the previous filter's rows as this one's.
  watch(baseKey, () => {
    limit.value = page
    rows.value = live.data.value
  })
  /** A full window may have more rows behind it. */
  const hasMore = computed(() => (rows.value?.length ?? 0) >= limit.value)
  /** The larger window is loading (the smaller one is still shown). */
  const loadingMore = computed(() => live.data.value === undefined && rows.value !== undefined)
  function showMore() {
    limit.value += page
  }
  return { ...live, rows, limit, query, hasMore, loadingMore, showMore }
}
