// @vitest-environment happy-dom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { act, createElement, useState, type ReactNode } from 'react'
import { createRoot, type Root } from 'react-dom/client'
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest'
import type { Comment, Item, LiveQuery, Task, TasksRelated } from './generated'
import { LiveClient } from './client'
import { statusLabel } from './state'
import { comment, item, socketFactory, task } from './test/fixtures'
import { sentOf } from './test/harness'
import type { QueryFor } from './types'
import { LiveClientProvider, liveQueryRegistry, useConnectionStatus, useLiveQuery } from './react'

// React checks that state updates in tests are wrapped in act().
;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true

const roots: Root[] = []

afterEach(() => {
  for (const root of roots.splice(0)) act(() => root.unmount())
})

function setup() {
  const factory = socketFactory()
  const live = new LiveClient({
    url: 'ws://test/ws',
    createWebSocket: factory.create,
    random: () => 0,
    isOnline: () => true,
    watchOnline: () => () => {},
  })
  const queryClient = new QueryClient()
  const wrap = (children: ReactNode) =>
    createElement(
      QueryClientProvider,
      { client: queryClient },
      createElement(LiveClientProvider, { client: live, lingerMs: 0 }, children),
    )
  return { factory, live, queryClient, wrap }
}

function render(node: ReactNode) {
  const container = document.createElement('div')
  const root = createRoot(container)
  roots.push(root)
  act(() => root.render(node))
  return container
}

/** Every text the component rendered, in order: a loading flash would show up here. */
function probe(query: LiveQuery, rendered: string[]) {
  return function Probe() {
    const { data, liveError } = useLiveQuery(query)
    const status = useConnectionStatus()
    const rows = data ? data.map((r) => ('name' in r ? r.name : 'title' in r ? r.title : r.body)).join(',') : 'loading'
    const text = `${rows}|${statusLabel(status)}${liveError ? `|${liveError.code}` : ''}`
    rendered.push(text)
    return createElement('p', null, text)
  }
}

async function settle() {
  await act(async () => {
    await new Promise((r) => setTimeout(r, 5))
  })
}

/** Lets React and TanStack Query settle until `el` shows `text` (at most 2 s). */
async function expectText(el: HTMLElement, text: string) {
  const end = Date.now() + 2000
  while (el.textContent !== text && Date.now() < end) await settle()
  expect(el.textContent).toBe(text)
}

describe('useLiveQuery (React)', () => {
  it('is typed by the query table', () => {
    // Type-level only (checked by tsc); never called. Named as a hook, which it is.
    const useTypeCheck = () => {
      const items = useLiveQuery({ table: 'items' })
      expectTypeOf(items.data).toEqualTypeOf<Item[] | undefined>()
      const tasks = useLiveQuery<QueryFor<'tasks'>>({ table: 'tasks', filter: { assignee_eq: 'bob' } })
      expectTypeOf(tasks.data).toEqualTypeOf<(Task & TasksRelated)[] | undefined>()
      const nested = useLiveQuery({ table: 'tasks', include: { comments: { limit: 3 } } })
      expectTypeOf(nested.data?.[0]?.comments).toEqualTypeOf<Comment[] | undefined>()
      // @ts-expect-error: not a live table
      useLiveQuery({ table: 'users' })
    }
    expect(typeof useTypeCheck).toBe('function')
  })

  it('resolves on the first snapshot, follows diffs, and shows the status', async () => {
    const { factory, wrap } = setup()
    const rendered: string[] = []
    const el = render(wrap(createElement(probe({ table: 'items' }, rendered))))
    expect(el.textContent).toBe('loading|connecting')
    act(() => factory.last.accept())
    await settle()
    const [sub] = sentOf(factory.last, 'subscribe')
    expect(sub?.query).toEqual({ table: 'items' })
    act(() =>
      factory.last.receive({
        type: 'snapshot',
        epoch: 'e1',
        id: sub!.id,
        version: 1,
        table: 'items',
        rows: [item(1, 'a')],
      }),
    )
    await expectText(el, 'a|live')
    act(() =>
      factory.last.receive({
        type: 'diff',
        id: sub!.id,
        from: 1,
        to: 2,
        table: 'items',
        upserts: [{ at: 0, row: item(2, 'b') }],
        deletes: [],
      }),
    )
    await expectText(el, 'b,a|live')
    act(() => factory.last.receive({ type: 'status', state: 'delayed', reason: 'database_unreachable' }))
    expect(el.textContent).toBe('b,a|delayed — database unreachable')
  })

  it('keeps the rows on screen through a reconnect and a resume: no loading state, no flicker', async () => {
    const { factory, wrap } = setup()
    const rendered: string[] = []
    const el = render(wrap(createElement(probe({ table: 'items' }, rendered))))
    act(() => factory.last.accept())
    await settle()
    const id = sentOf(factory.last, 'subscribe')[0]!.id
    act(() =>
      factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 4, table: 'items', rows: [item(1, 'a')] }),
    )
    await settle()
    act(() => factory.last.drop(1006, ''))
    await expectText(el, 'a|reconnecting')
    // The next attempt (no backoff: random is 0) opens a second socket.
    while (factory.sockets.length < 2) await settle()
    act(() => factory.last.accept())
    await settle()
    const again = sentOf(factory.last, 'subscribe')[0]!
    expect(again.since).toEqual({ epoch: 'e1', version: 4 })
    act(() => factory.last.receive({ type: 'resumed', id: again.id, epoch: 'e1', from: 4, to: 5 }))
    act(() =>
      factory.last.receive({
        type: 'diff',
        id: again.id,
        from: 4,
        to: 5,
        table: 'items',
        upserts: [{ at: 1, row: item(2, 'written while away') }],
        deletes: [],
      }),
    )
    await expectText(el, 'a,written while away|live')
    const afterFirstRows = rendered.slice(rendered.findIndex((t) => t.startsWith('a|')))
    expect(afterFirstRows.every((t) => !t.startsWith('loading') && t.split('|')[0] !== '')).toBe(true)
  })

  it('shares one subscription between components and ends it with the last one', async () => {
    const { factory, wrap, live, queryClient } = setup()
    let toggle: (n: number) => void = () => {}
    const Probe = probe({ table: 'items' }, [])
    function Parent() {
      const [shown, setShown] = useState(2)
      toggle = setShown
      return createElement(
        'div',
        null,
        Array.from({ length: shown }, (_, i) => createElement(Probe, { key: i })),
      )
    }
    render(wrap(createElement(Parent)))
    act(() => factory.last.accept())
    await settle()
    expect(sentOf(factory.last, 'subscribe')).toHaveLength(1)
    expect(live.subscriptionCount).toBe(1)
    act(() => toggle(1))
    await settle()
    expect(live.subscriptionCount).toBe(1)
    act(() => toggle(0))
    await settle()
    await vi.waitFor(() => expect(live.subscriptionCount).toBe(0))
    expect(sentOf(factory.last, 'unsubscribe')).toHaveLength(1)
    expect(liveQueryRegistry(queryClient, live).size).toBe(0)
  })

  it("surfaces the server's per-subscription status as liveStatus, rows kept", async () => {
    const { factory, wrap } = setup()
    const rendered: string[] = []
    function Status() {
      const { data, liveStatus } = useLiveQuery({ table: 'items' })
      const text = `${data?.length ?? '-'}|${liveStatus?.state ?? '-'}|${liveStatus?.reason ?? '-'}`
      rendered.push(text)
      return createElement('p', null, text)
    }
    const el = render(wrap(createElement(Status)))
    act(() => factory.last.accept())
    await settle()
    const [sub] = sentOf(factory.last, 'subscribe')
    act(() =>
      factory.last.receive({
        type: 'snapshot',
        epoch: 'e1',
        id: sub!.id,
        version: 1,
        table: 'items',
        rows: [item(1, 'a')],
      }),
    )
    await expectText(el, '1|-|-')
    act(() => factory.last.receive({ type: 'status', id: sub!.id, state: 'delayed', reason: 'query_failing' }))
    await expectText(el, '1|delayed|query_failing')
    act(() => factory.last.receive({ type: 'status', id: sub!.id, state: 'live' }))
    await expectText(el, '1|live|-')
  })

  it('gives rows with their included relations (belongs_to), following a related entry alone', async () => {
    const { factory, wrap } = setup()
    function Comments() {
      const { data } = useLiveQuery({ table: 'comments', include: { task: true } })
      const text = data ? data.map((c) => `${c.body}@${c.task?.title ?? '-'}`).join(',') : 'loading'
      return createElement('p', null, text)
    }
    const el = render(wrap(createElement(Comments)))
    act(() => factory.last.accept())
    await settle()
    const [sub] = sentOf(factory.last, 'subscribe')
    act(() =>
      factory.last.receive({
        type: 'snapshot',
        epoch: 'e1',
        id: sub!.id,
        version: 1,
        table: 'comments',
        rows: [comment(1, { task_id: 1 }), comment(2, { task_id: 2 })],
        related: [{ relation: 'task', of: 1, table: 'tasks', rows: [task(1, { title: 'one' })] }],
      }),
    )
    await expectText(el, 'comment 1@one,comment 2@-')
    act(() =>
      factory.last.receive({
        type: 'diff',
        id: sub!.id,
        from: 1,
        to: 2,
        table: 'comments',
        upserts: [],
        deletes: [],
        related: [{ relation: 'task', of: 1, table: 'tasks', rows: [task(1, { title: 'renamed' })] }],
      }),
    )
    await expectText(el, 'comment 1@renamed,comment 2@-')
  })

  it('surfaces a subscription error as liveError and the query error', async () => {
    const { factory, wrap } = setup()
    const rendered: string[] = []
    const el = render(wrap(createElement(probe({ table: 'items', limit: 1_000_000 }, rendered))))
    act(() => factory.last.accept())
    await settle()
    const [sub] = sentOf(factory.last, 'subscribe')
    act(() => factory.last.receive({ type: 'error', id: sub!.id, code: 'invalid_query', message: 'limit too large' }))
    await expectText(el, 'loading|live|invalid_query')
  })

  it('switches subscriptions when the query changes', async () => {
    const { factory, wrap, live } = setup()
    let setFilter: (f: QueryFor<'tasks'>) => void = () => {}
    const rendered: string[] = []
    function Board() {
      const [query, set] = useState<QueryFor<'tasks'>>({ table: 'tasks', filter: { status_in: ['todo'] } })
      setFilter = set
      const { data } = useLiveQuery(query)
      rendered.push(data ? data.map((t) => t.title).join(',') : 'loading')
      return createElement('p', null, rendered.at(-1))
    }
    const el = render(wrap(createElement(Board)))
    act(() => factory.last.accept())
    await settle()
    const first = sentOf(factory.last, 'subscribe')[0]!
    act(() =>
      factory.last.receive({
        type: 'snapshot',
        epoch: 'e1',
        id: first.id,
        version: 1,
        table: 'tasks',
        rows: [task(1, { title: 'one' })],
      }),
    )
    await expectText(el, 'one')
    act(() => setFilter({ table: 'tasks', filter: { status_in: ['todo'], assignee_eq: 'alice' } }))
    await settle()
    const second = sentOf(factory.last, 'subscribe').at(-1)!
    expect(second.query).toEqual({ table: 'tasks', filter: { status_in: ['todo'], assignee_eq: 'alice' } })
    act(() =>
      factory.last.receive({
        type: 'snapshot',
        epoch: 'e1',
        id: second.id,
        version: 1,
        table: 'tasks',
        rows: [task(2, { title: 'two' })],
      }),
    )
    await expectText(el, 'two')
    await vi.waitFor(() => expect(live.subscriptionCount).toBe(1))
    expect(sentOf(factory.last, 'unsubscribe')).toEqual([{ type: 'unsubscribe', id: first.id }])
  })
})
