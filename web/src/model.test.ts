import { describe, expect, it } from 'vitest'
import { columnRule, textLength } from './model'
import { rangeStart } from './time'

describe('column rules', () => {
  it('come from the generated declarations', () => {
    expect(columnRule('comments', 'author').text_max).toBe(100)
    expect(columnRule('comments', 'body').text_max).toBe(2000)
    expect(columnRule('comments', 'edited_at').nullable).toBe(true)
    expect(() => columnRule('comments', 'nope')).toThrow(/not a declared column/)
  })

  it('count text as PostgreSQL does: code points', () => {
    expect(textLength('abc')).toBe(3)
    expect('😀😀'.length).toBe(4)
    expect(textLength('😀😀')).toBe(2)
  })
})

describe('rangeStart', () => {
  const now = new Date(2026, 10, 30, 15, 42, 10).getTime()

  it('is no bound, an hour ago, or the local midnight', () => {
    expect(rangeStart('all', now)).toBeNull()
    expect(rangeStart('hour', now)).toBe(new Date(now - 3_600_000).toISOString())
    expect(rangeStart('today', now)).toBe(new Date(2026, 10, 30).toISOString())
  })
})
