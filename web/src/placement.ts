// Which column shows a task. Each column of the board is its own live
// query; when a task moves, the diff that removes it from one column and the
// one that adds it to the other arrive separately, so for a moment both
// columns hold it. The board keeps, per task, the newest version any column
// holds, and a column hides a task another column holds a newer version of:
// a card is in one column at a time.
import { computed, inject, provide, shallowReactive, type InjectionKey } from 'vue'
import type { RowKey, Task, TaskStatus } from '@pglive/client'

export interface Placement {
  /** A column reports its current rows (an empty list when it goes away). */
  report(status: TaskStatus, rows: readonly Task[]): void
  /** Whether another column holds a newer version of `task` (so this copy is on its way out). */
  superseded(task: Task): boolean
}

const KEY: InjectionKey<Placement> = Symbol('pglive.task-placement')

function stampOf(task: Task): number {
  const t = Date.parse(task.updated_at)
  return Number.isNaN(t) ? 0 : t
}

/** A placement for one board (outside a component: see `providePlacement`). */
export function createPlacement(): Placement {
  const byColumn = shallowReactive(new Map<TaskStatus, readonly Task[]>())
  const newest = computed(() => {
    const map = new Map<RowKey<'tasks'>, { status: TaskStatus; stamp: number }>()
    for (const rows of byColumn.values()) {
      for (const task of rows) {
        const stamp = stampOf(task)
        const seen = map.get(task.id)
        if (!seen || stamp > seen.stamp) map.set(task.id, { status: task.status, stamp })
      }
    }
    return map
  })
  return {
    report: (status, rows) => byColumn.set(status, rows),
    superseded: (task) => {
      const winner = newest.value.get(task.id)
      return winner !== undefined && winner.status !== task.status && winner.stamp > stampOf(task)
    },
  }
}

/** Makes a placement for the board being set up, for its columns to inject. */
export function providePlacement(): Placement {
  const placement = createPlacement()
  provide(KEY, placement)
  return placement
}

/** The board's placement; a column outside a board hides nothing. */
export function usePlacement(): Placement {
  return inject(KEY, { report: () => {}, superseded: () => false })
}
