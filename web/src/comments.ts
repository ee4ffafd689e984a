// What a task card shows of its comments: how many there are and the newest
// one, both kept live by the board's own subscription (its `include`), so
// that a comment written anywhere shows on the card without opening the
// comments panel.
import type { CommentWindow, LiveRowOf } from '@pglive/client'
import { textLength } from './model'

/**
 * The comments each card's task includes: only the newest is shown, and the
 * count covers them all (the server counts what the window's limit leaves out).
 */
export const CARD_COMMENTS = {
  order: { by: 'created_at', dir: 'desc' },
  limit: 1,
  count: true,
} as const satisfies CommentWindow

/** Characters of the newest comment's body a card shows before cutting it off. */
export const EXCERPT_MAX = 80

export interface NewestComment {
  readonly author: string
  /** The body on one line, cut to `EXCERPT_MAX` characters. */
  readonly excerpt: string
  /** The whole body, for a tooltip. */
  readonly body: string
}

export interface CommentPreview {
  /** How many comments the task has (that the viewer may read). */
  readonly count: number
  /** The newest of them, or null when there are none. */
  readonly newest: NewestComment | null
}

/**
 * `text` on one line (runs of Unicode white space become one space), cut
 * to at most `max` characters, counted as code points so that an emoji is
 * never split in half; a cut ends with an ellipsis that is one of the `max`.
 */
export function excerpt(text: string, max = EXCERPT_MAX): string {
  const line = text.replace(/\p{White_Space}+/gu, ' ').trim()
  if (textLength(line) <= max) return line
  return `${Array.from(line)
    .slice(0, Math.max(0, max - 1))
    .join('')
    .trimEnd()}…`
}

/**
 * The card's view of `task`'s comments, or null when its row carries none
 * (a query without the include): then the card claims nothing about them,
 * rather than a count of 0 it does not know.
 */
export function commentPreview(task: LiveRowOf<'tasks'>): CommentPreview | null {
  const comments = task.comments
  if (comments === undefined) return null
  const first = comments[0]
  return {
    // Without `count`, the rows held are all that is known.
    count: task.comments_count ?? comments.length,
    newest: first === undefined ? null : { author: first.author, excerpt: excerpt(first.body), body: first.body },
  }
}

/** "1 comment", "3 comments". */
export function commentCountLabel(n: number): string {
  return n === 1 ? '1 comment' : `${n} comments`
}
