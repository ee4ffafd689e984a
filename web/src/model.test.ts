import { describe, expect, it } from 'vitest'
import { columnRule, isBlank, textLength, textProblem } from './model'
import { rangeStart } from './time'

describe('column rules', () => {
  it('come from the generated declarations', () => {
    expect(columnRule('comments', 'author').text_max).toBe(100)
    expect(columnRule('comments', 'body').text_max).toBe(2000)
    expect(columnRule('comments', 'edited_at').nullable).toBe(true)
    expect(columnRule('comments', 'body').not_blank).toBe(true)
    expect(columnRule('comments', 'edited_at').not_blank).toBe(false)
    expect(() => columnRule('comments', 'nope')).toThrow(/not a declared column/)
  })

  it('count text as PostgreSQL does: code points', () => {
    expect(textLength('abc')).toBe(3)
    expect('😀😀'.length).toBe(4)
    expect(textLength('😀😀')).toBe(2)
  })
})

describe('text checks', () => {
  const name = columnRule('items', 'name')
  const assignee = columnRule('tasks', 'assignee')

  it('take the limit from the declarations', () => {
    expect(name.text_max).toBe(200)
    expect(textProblem('a'.repeat(200), name)).toBeNull()
    expect(textProblem('a'.repeat(201), name, 'The name')).toBe('The name is too long: 201 of at most 200 characters.')
    // Code points, not UTF-16 units: 200 emoji fit.
    expect(textProblem('😀'.repeat(200), name)).toBeNull()
    expect(textProblem('😀'.repeat(201), name)).toMatch(/too long/)
  })

  it('refuse blank text as the server does (Unicode White_Space)', () => {
    expect(textProblem('   ', name, 'The name')).toBe('The name cannot be only spaces.')
    expect(textProblem('\t\n\u00a0\u3000', name)).toMatch(/only spaces/)
    // U+0085 is White_Space (Rust trims it) though JavaScript's trim() keeps it.
    expect(isBlank('\u0085')).toBe(true)
    expect('\u0085'.trim()).not.toBe('')
    // U+FEFF is not White_Space (Rust keeps it) though JavaScript's trim() strips it.
    expect(isBlank('\ufeff')).toBe(false)
    expect(textProblem(' a ', name)).toBeNull()
  })

  it('require non-nullable text, and let a nullable column be empty', () => {
    expect(name.nullable).toBe(false)
    expect(textProblem('', name, 'The name')).toBe('The name is required.')
    expect(assignee.nullable).toBe(true)
    expect(textProblem('', assignee)).toBeNull()
  })

  it('pass columns without a text rule', () => {
    expect(textProblem('', columnRule('items', 'created_at'))).toBeNull()
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
