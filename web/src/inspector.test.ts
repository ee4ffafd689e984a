import { describe, expect, it } from 'vitest'
import { describeRelation } from './inspector'

describe('describeRelation', () => {
  it('says what was asked for and how much is held', () => {
    expect(
      describeRelation({ name: 'comments', kind: 'has_many', target: 'comments', count: true, entries: 4, rows: 9 }),
    ).toBe('has_many comments, counted · 4 entries, 9 rows')
    expect(
      describeRelation({ name: 'task', kind: 'belongs_to', target: 'tasks', count: false, entries: 1, rows: 1 }),
    ).toBe('belongs_to tasks · 1 entry, 1 row')
    expect(
      describeRelation({ name: 'comments', kind: 'has_many', target: 'comments', count: false, entries: 0, rows: 0 }),
    ).toBe('has_many comments · 0 entries, 0 rows')
  })
})
