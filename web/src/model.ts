// Display metadata for the demo tables' closed value sets, and the column
// rules the forms check before the server does.
import { liveTables, type CommentsFilter, type CommentsOrder, type Table, type TaskStatus } from '@pglive/client'

export const STATUS_META = {
  todo: { label: 'To do', next: 'in_progress', prev: null },
  in_progress: { label: 'In progress', next: 'done', prev: 'todo' },
  done: { label: 'Done', next: null, prev: 'in_progress' },
} as const satisfies Record<TaskStatus, { label: string; next: TaskStatus | null; prev: TaskStatus | null }>

/** Board columns, left to right: every status, in STATUS_META's order. */
export const STATUSES = Object.keys(STATUS_META) as readonly TaskStatus[]

export const PEOPLE = ['alice', 'bob', 'carol'] as const

export const PRIORITIES = [
  { value: 3, label: 'Urgent' },
  { value: 2, label: 'High' },
  { value: 1, label: 'Normal' },
  { value: 0, label: 'Low' },
] as const

export function priorityLabel(p: number): string {
  return PRIORITIES.find((x) => x.value === p)?.label ?? `P${p}`
}

/** The assignee filter's choices: everyone, one person, or nobody. */
export type AssigneeFilter = 'all' | 'unassigned' | (typeof PEOPLE)[number]

/** What the generated declarations say about one column, as the forms use it. */
export interface ColumnRule {
  readonly name: string
  readonly nullable: boolean
  /** Longest text allowed, in characters (code points, as PostgreSQL counts). */
  readonly text_max: number | null
  /** Whether blank text (only White_Space) is refused. */
  readonly not_blank: boolean
}

/** The declared rules of `table.column`; throws for a column that is not declared. */
export function columnRule(table: Table, column: string): ColumnRule {
  const columns: readonly ColumnRule[] = liveTables[table].columns
  const rule = columns.find((c) => c.name === column)
  if (!rule) throw new Error(`${table}.${column} is not a declared column`)
  return rule
}

/** A text's length as PostgreSQL's `char_length` counts it: code points, not UTF-16 units. */
export function textLength(text: string): number {
  return [...text].length
}

/**
 * Whether `text` is blank the way the server judges it: Rust's
 * `str::trim().is_empty()`, which strips the Unicode White_Space property.
 * JavaScript's `trim()` differs at the edges (it strips U+FEFF, keeps
 * U+0085), so this uses the property itself.
 */
export function isBlank(text: string): boolean {
  return /^\p{White_Space}*$/u.test(text)
}

/**
 * What is wrong with `text` as a value of a column with `rule`, as a short
 * sentence for the form, or null when the server would accept it.
 *
 * The rules (`text_max`, `not_blank`, `nullable`) come from the generated
 * `meta.ts`, made from the same declarations as the server's `check_value`
 * (crates/schema/src/live.rs). The server checks again either way.
 */
export function textProblem(text: string, rule: ColumnRule, label = 'It'): string | null {
  if (rule.text_max === null && !rule.not_blank) return null
  if (text === '') return rule.nullable ? null : `${label} is required.`
  if (rule.not_blank && isBlank(text)) return `${label} cannot be only spaces.`
  if (rule.text_max === null) return null
  const length = textLength(text)
  if (length > rule.text_max) return `${label} is too long: ${length} of at most ${rule.text_max} characters.`
  return null
}

/** Which comments the panel shows by creation time. */
export const COMMENT_RANGES = {
  all: 'All time',
  hour: 'Last hour',
  today: 'Today',
} as const

export type CommentRange = keyof typeof COMMENT_RANGES

/**
 * The panel's orders. "Recently edited" orders by `edited_at` descending,
 * where PostgreSQL puts NULLs (never edited) first: it keeps to edited
 * comments so that the latest edit is on top.
 */
export const COMMENT_ORDERS = {
  newest: { label: 'Newest first', order: { by: 'created_at', dir: 'desc' }, filter: {} },
  oldest: { label: 'Oldest first', order: { by: 'created_at', dir: 'asc' }, filter: {} },
  edited: { label: 'Recently edited', order: { by: 'edited_at', dir: 'desc' }, filter: { edited_at_is_null: false } },
} as const satisfies Record<string, { label: string; order: CommentsOrder; filter: CommentsFilter }>

export type CommentOrder = keyof typeof COMMENT_ORDERS
