// Changes that land out of sight. A live row that appears or changes below
// the fold (or above, after scrolling down) would go unnoticed; lists note
// such elements here and the app shows a chip ("2 new below ↓") that
// scrolls to them. An element stops counting once it was on screen or left
// the page.
import { computed, nextTick, onScopeDispose, shallowReactive, watch, type Ref } from 'vue'

export type Direction = 'above' | 'below'

/** Elements changed while out of sight, with where they were. */
const pending = shallowReactive(new Map<Element, Direction>())

let observer: IntersectionObserver | null = null

function observe(el: Element) {
  if (typeof IntersectionObserver === 'undefined') return
  observer ??= new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) forget(entry.target)
    }
  })
  observer.observe(el)
}

function forget(el: Element) {
  pending.delete(el)
  observer?.unobserve(el)
}

/** Where `el` is relative to the viewport, or null when (partly) in view. */
function offscreen(el: Element): Direction | null {
  const rect = el.getBoundingClientRect()
  if (rect.height === 0 && rect.width === 0) return null // not laid out (hidden): no cue
  if (rect.top >= window.innerHeight) return 'below'
  if (rect.bottom <= 0) return 'above'
  return null
}

/** Notes that `el` just appeared or changed; counts it if it is out of sight. */
export function noteChanged(el: Element): void {
  const where = offscreen(el)
  if (where === null) return
  pending.set(el, where)
  observe(el)
}

/** Counts of unseen changes below and above the viewport (elements that left the page do not count). */
export const unseen = computed(() => {
  let below = 0
  let above = 0
  for (const [el, where] of pending) {
    if (!el.isConnected) continue
    if (where === 'below') below += 1
    else above += 1
  }
  return { below, above }
})

/** Scrolls to the nearest unseen change in `direction`, which then stops counting. */
export function revealNext(direction: Direction): void {
  const candidates = [...pending].filter(([el, where]) => where === direction && el.isConnected).map(([el]) => el)
  for (const [el] of pending) if (!el.isConnected) forget(el)
  const tops = candidates.map((el) => ({ el, top: el.getBoundingClientRect().top }))
  tops.sort((a, b) => (direction === 'below' ? a.top - b.top : b.top - a.top))
  const target = tops[0]?.el
  if (!target) return
  forget(target)
  target.scrollIntoView({ behavior: 'smooth', block: 'center' })
  if (target instanceof HTMLElement) target.focus({ preventScroll: true })
}

/**
 * Notes the elements of `keys` (rows that just appeared or changed) under
 * `root`, found by their `data-id`, once the DOM shows them.
 */
export function useOffscreenCue<K>(root: Readonly<Ref<HTMLElement | null>>, keys: ReadonlySet<K>): void {
  const stop = watch(
    () => [...keys],
    async (now, before) => {
      const fresh = now.filter((k) => !before?.includes(k))
      if (fresh.length === 0) return
      await nextTick()
      const container = root.value
      if (!container) return
      for (const key of fresh) {
        const el = container.querySelector(`[data-id="${CSS.escape(String(key))}"]`)
        if (el) noteChanged(el)
      }
    },
  )
  onScopeDispose(stop)
}
