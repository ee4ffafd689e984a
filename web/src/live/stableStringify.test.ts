import { describe, expect, it } from 'vitest'
import { stableStringify } from './stableStringify'

describe('stableStringify', () => {
  it('sorts keys at every level and drops undefined', () => {
    const a = { table: 'tasks', filter: { status: ['todo'], assignee: 'bob' }, limit: undefined }
    const b = { filter: { assignee: 'bob', status: ['todo'] }, table: 'tasks' }
    expect(stableStringify(a)).toBe(stableStringify(b))
    expect(stableStringify(b)).toBe('{"filter":{"assignee":"bob","status":["todo"]},"table":"tasks"}')
  })

  it('keeps array order', () => {
    expect(stableStringify([2, 1])).toBe('[2,1]')
  })
})
