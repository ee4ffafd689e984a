import { describe, expect, it } from 'vitest'
import type { Task } from '@pglive/client'
import { createPlacement } from './placement'

function task(id: number, status: Task['status'], updatedAt: string): Task {
  return {
    id,
    title: `task ${id}`,
    status,
    priority: 1,
    assignee: null,
    due_date: null,
    created_at: '2026-11-30T10:00:00Z',
    updated_at: updatedAt,
    tenant: 'public',
  }
}

describe('placement', () => {
  it('hides the older copy of a task that two columns hold while it moves', () => {
    const p = createPlacement()
    const before = task(1, 'todo', '2026-11-30T10:00:00.000Z')
    const after = task(1, 'in_progress', '2026-11-30T10:00:01.500Z')
    p.report('todo', [before])
    expect(p.superseded(before)).toBe(false)
    // The new column's diff came first: the old column still holds the task.
    p.report('in_progress', [after])
    expect(p.superseded(before)).toBe(true)
    expect(p.superseded(after)).toBe(false)
    // The old column's diff arrives; nothing is hidden any more.
    p.report('todo', [])
    expect(p.superseded(after)).toBe(false)
  })

  it('follows a task moved back: the newest version wins', () => {
    const p = createPlacement()
    const second = task(2, 'in_progress', '2026-11-30T10:00:01Z')
    const third = task(2, 'todo', '2026-11-30T10:00:02Z')
    p.report('in_progress', [second])
    p.report('todo', [third])
    expect(p.superseded(second)).toBe(true)
    expect(p.superseded(third)).toBe(false)
  })

  it('hides nothing when the versions tie (no way to tell which is newer)', () => {
    const p = createPlacement()
    const a = task(3, 'todo', '2026-11-30T10:00:00Z')
    const b = task(3, 'done', '2026-11-30T10:00:00Z')
    p.report('todo', [a])
    p.report('done', [b])
    expect(p.superseded(a)).toBe(false)
    expect(p.superseded(b)).toBe(false)
  })
})
