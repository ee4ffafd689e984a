import { onScopeDispose, shallowReactive, watch, type Ref, type WatchSource } from 'vue'

/**
 * Keys of rows that were added or changed in the last `ms` (not on the first
 * load), so the UI can highlight what just changed live. `key` reads a row's
 * key (see `rowKey` in the live layer) and `stamp` what changes with it,
 * such as `updated_at`. When `reset` changes (another query: a raised limit,
 * a new filter), the next rows are a first load again, not changes.
 */
export function useRecentlyChanged<R, K>(
  rows: Readonly<Ref<readonly R[] | undefined>>,
  key: (row: R) => K,
  stamp: (row: R) => string | null,
  ms = 1600,
  reset?: WatchSource,
): ReadonlySet<K> {
  const recent = shallowReactive(new Set<K>())
  const timers = new Map<K, ReturnType<typeof setTimeout>>()
  let seen: Map<K, string | null> | null = null
  if (reset) watch(reset, () => (seen = null))
  watch(
    rows,
    (list) => {
      if (!list) return
      const next = new Map(list.map((r) => [key(r), stamp(r)]))
      if (seen) {
        for (const [k, version] of next) {
          if (seen.has(k) && seen.get(k) === version) continue
          recent.add(k)
          clearTimeout(timers.get(k))
          timers.set(
            k,
            setTimeout(() => {
              recent.delete(k)
              timers.delete(k)
            }, ms),
          )
        }
      }
      seen = next
    },
    { immediate: true },
  )
  onScopeDispose(() => timers.forEach((t) => clearTimeout(t)))
  return recent
}
