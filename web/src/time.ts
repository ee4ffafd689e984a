import { onScopeDispose, shallowRef, type Ref } from 'vue'

const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto', style: 'short' })

/** "just now", "5 min. ago", "2 hr. ago", "3 days ago". */
export function relativeTime(iso: string, now: number): string {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return ''
  const s = Math.round((t - now) / 1000)
  const a = Math.abs(s)
  if (a < 45) return 'just now'
  if (a < 3600) return rtf.format(Math.round(s / 60), 'minute')
  if (a < 86400) return rtf.format(Math.round(s / 3600), 'hour')
  return rtf.format(Math.round(s / 86400), 'day')
}

/**
 * The start of a creation-time range at `now`, as an ISO timestamp for a
 * `created_at_gte` filter: an hour ago, or the local midnight that began
 * today; null for no bound.
 */
export function rangeStart(range: 'all' | 'hour' | 'today', now: number): string | null {
  switch (range) {
    case 'all':
      return null
    case 'hour':
      return new Date(now - 3_600_000).toISOString()
    case 'today': {
      const midnight = new Date(now)
      midnight.setHours(0, 0, 0, 0)
      return midnight.toISOString()
    }
  }
}

/** A timestamp in the reader's locale, for tooltips. */
export function absoluteTime(iso: string): string {
  const t = Date.parse(iso)
  return Number.isNaN(t) ? '' : new Date(t).toLocaleString()
}

/** The current time, ticking every `ms` while the calling scope lives. */
export function useNow(ms = 15_000): Readonly<Ref<number>> {
  const now = shallowRef(Date.now())
  const timer = setInterval(() => (now.value = Date.now()), ms)
  onScopeDispose(() => clearInterval(timer))
  return now
}
