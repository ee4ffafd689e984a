import { onScopeDispose, shallowReactive, watch, type Ref } from 'vue'

/**
 * Ids of rows that were added or changed in the last `ms` (not on the first
 * load), so the UI can highlight what just changed live.
 */
export function useRecentlyChanged<R extends { id: number; updated_at: string }>(
  rows: Readonly<Ref<readonly R[] | undefined>>,
  ms = 1600,
): ReadonlySet<number> {
  const recent = shallowReactive(new Set<number>())
  const timers = new Map<number, ReturnType<typeof setTimeout>>()
  let seen: Map<number, string> | null = null
  watch(
    rows,
    (list) => {
      if (!list) return
      const next = new Map(list.map((r) => [r.id, r.updated_at]))
      if (seen) {
        for (const [id, updated] of next) {
          if (seen.get(id) === updated) continue
          recent.add(id)
          clearTimeout(timers.get(id))
          timers.set(
            id,
            setTimeout(() => {
              recent.delete(id)
              timers.delete(id)
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
