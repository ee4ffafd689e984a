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

/** The current time, ticking every `ms` while the calling scope lives. */
export function useNow(ms = 15_000): Readonly<Ref<number>> {
  const now = shallowRef(Date.now())
  const timer = setInterval(() => (now.value = Date.now()), ms)
  onScopeDispose(() => clearInterval(timer))
  return now
}
