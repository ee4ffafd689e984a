// Error notices shown to the user (the write API's messages, mostly).
import { shallowRef } from 'vue'
import { ApiRequestError, errorMessage } from './api'

export interface Notice {
  id: number
  /** What was being done, e.g. "Could not add the item". */
  context: string
  /** The server's message (or the failure's). */
  message: string
  /** The request field at fault, when the server named one. */
  field?: string
}

const MAX_NOTICES = 3
let nextId = 0

/** Current notices, newest last. */
export const notices = shallowRef<readonly Notice[]>([])

export function reportError(context: string, error: unknown): void {
  const notice: Notice = { id: (nextId += 1), context, message: errorMessage(error) }
  if (error instanceof ApiRequestError && error.field) notice.field = error.field
  // The same failure again replaces the old notice instead of stacking up.
  const rest = notices.value.filter((n) => !(n.context === context && n.message === notice.message))
  notices.value = [...rest, notice].slice(-MAX_NOTICES)
}

export function dismissNotice(id: number): void {
  notices.value = notices.value.filter((n) => n.id !== id)
}

/** Drops the notices of one kind of action, e.g. after it succeeded. */
export function clearNotices(context: string): void {
  if (notices.value.some((n) => n.context === context)) {
    notices.value = notices.value.filter((n) => n.context !== context)
  }
}
