import { describe, expect, it } from 'vitest'
import type { Comment, LiveRowOf, Task } from '@pglive/client'
import { CARD_COMMENTS, commentCountLabel, commentPreview, excerpt, EXCERPT_MAX } from './comments'

const at = '2026-12-07T10:00:00Z'

function task(patch: Partial<LiveRowOf<'tasks'>> = {}): LiveRowOf<'tasks'> {
  const base: Task = {
    id: 1,
    title: 'task',
    status: 'todo',
    priority: 1,
    assignee: null,
    due_date: null,
    created_at: at,
    updated_at: at,
    tenant: 'public',
  }
  return { ...base, ...patch }
}

function comment(body: string, author = 'alice'): Comment {
  return { id: '0190c4a2-7b3e-4f6a-9d1c-000000000001', task_id: 1, author, body, created_at: at, edited_at: null }
}

describe('excerpt', () => {
  it('keeps a short body as it is, on one line', () => {
    expect(excerpt('Looks good')).toBe('Looks good')
    expect(excerpt('  first line\n\n second\tline  ')).toBe('first line second line')
  })

  it('cuts a long body to the limit, the ellipsis included', () => {
    const cut = excerpt('a'.repeat(200))
    expect([...cut]).toHaveLength(EXCERPT_MAX)
    expect(cut.endsWith('…')).toBe(true)
    expect(excerpt('abcdef', 6)).toBe('abcdef')
    expect(excerpt('abcdefg', 6)).toBe('abcde…')
    // No space left dangling before the ellipsis.
    expect(excerpt('abcd efgh', 6)).toBe('abcd…')
  })

  it('counts code points, so that an emoji is never split', () => {
    expect(excerpt('😀'.repeat(10), 5)).toBe('😀😀😀😀…')
    expect(excerpt('😀'.repeat(5), 5)).toBe('😀😀😀😀😀')
  })
})

describe('commentPreview', () => {
  it('asks for the newest comment and the count', () => {
    expect(CARD_COMMENTS).toEqual({ order: { by: 'created_at', dir: 'desc' }, limit: 1, count: true })
  })

  it('shows the live count, which covers the comments the window leaves out', () => {
    const preview = commentPreview(task({ comments: [comment('newest', 'bob')], comments_count: 7 }))
    expect(preview).toEqual({ count: 7, newest: { author: 'bob', excerpt: 'newest', body: 'newest' } })
  })

  it('says 0 and no newest comment for a task without comments', () => {
    expect(commentPreview(task({ comments: [], comments_count: 0 }))).toEqual({ count: 0, newest: null })
  })

  it('cuts the newest body but keeps it whole for the tooltip', () => {
    const long = 'word '.repeat(40).trim()
    const newest = commentPreview(task({ comments: [comment(long)], comments_count: 1 }))?.newest
    expect(newest?.body).toBe(long)
    expect(newest?.excerpt).toBe(excerpt(long))
    expect(newest?.excerpt).not.toBe(long)
  })

  it('falls back to the rows held when the include has no count', () => {
    expect(commentPreview(task({ comments: [comment('a'), comment('b')] }))?.count).toBe(2)
  })

  it('claims nothing for a row whose query did not include comments', () => {
    expect(commentPreview(task())).toBeNull()
  })
})

describe('commentCountLabel', () => {
  it('says one comment, or how many', () => {
    expect(commentCountLabel(0)).toBe('0 comments')
    expect(commentCountLabel(1)).toBe('1 comment')
    expect(commentCountLabel(12)).toBe('12 comments')
  })
})
