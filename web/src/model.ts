// Display metadata for the demo tables' closed value sets.
import type { TaskStatus } from '@/generated'

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
