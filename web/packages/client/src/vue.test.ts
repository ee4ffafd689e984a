// @vitest-environment happy-dom
import { hashKey, QueryClient, VueQueryPlugin } from '@tanstack/vue-query'
import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest'
import { defineComponent, h, nextTick, ref, type Plugin, type Ref } from 'vue'
import type { Comment, CommentsRelated, Item, LiveQuery, Task, TasksRelated } from './generated'
import { comment, item, socketFactory, task } from './test/fixtures'
import { LiveClient } from './client'
import type { QueryFor, RowsOf } from './types'
import { createLive, liveQueryKey, liveQueryRegistry, useConnectionStatus, useLiveQuery } from './vue'

function setup(lingerMs = 0) {
  const factory = socketFactory()
  const live = new LiveClient({
    url: 'ws://test/ws',
    createWebSocket: factory.create,
    random: () => 0,
    isOnline: () => true,
    watchOnline: () => () => {},
  })
  const queryClient = new QueryClient()
  const plugins: (Plugin | [Plugin, ...unknown[]])[] = [
    [VueQueryPlugin, { queryClient }],
    createLive(live, { lingerMs }),
  ]
  return { factory, live, queryClient, plugins }
}

/** A component that shows a live query's rows as text and exposes its state. */
function probe<Q extends LiveQuery>(query: Q | Ref<Q>) {
  return defineComponent({
    setup() {
      const result = useLiveQuery(query)
      return () =>
        h(
          'p',
          result.data.value
            ? result.data.value.map((r) => ('name' in r ? r.name : 'title' in r ? r.title : r.body)).join(',')
            : 'loading',
        )
    },
  })
}

function subscribes(factory: ReturnType<typeof socketFactory>) {
  return factory.last.messages().filter((m) => m.type === 'subscribe')
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
})

afterEach(() => {
  vi.useRealTimers()
})

describe('useLiveQuery', () => {
  it('is typed by the query table', () => {
    // Type-level only (checked by vue-tsc); never run as a component.
    const check = () => {
      const items = useLiveQuery({ table: 'items' })
      expectTypeOf(items.data.value).toEqualTypeOf<Item[] | undefined>()
      const tasks = useLiveQuery(ref<QueryFor<'tasks'>>({ table: 'tasks', filter: { assignee_eq: 'bob' } }))
      expectTypeOf(tasks.data.value).toEqualTypeOf<(Task & TasksRelated)[] | undefined>()
      // @ts-expect-error: not a live table
      useLiveQuery({ table: 'users' })
      // @ts-expect-error: items have no status filter
      useLiveQuery({ table: 'items', filter: { status_in: ['todo'] } })
      // @ts-expect-error: comments are not filtered by body equality
      useLiveQuery({ table: 'comments', filter: { body_eq: 'x' } })
      const comments = useLiveQuery({ table: 'comments', filter: { task_id_eq: 1 } })
      expectTypeOf(comments.data.value).toEqualTypeOf<(Comment & CommentsRelated)[] | undefined>()
      // Included relations nest their rows: `comments` (and `comments_count`), `task`.
      const nested = useLiveQuery({ table: 'tasks', include: { comments: { limit: 3, count: true } } })
      expectTypeOf(nested.data.value?.[0]?.comments).toEqualTypeOf<Comment[] | undefined>()
      expectTypeOf(nested.data.value?.[0]?.comments_count).toEqualTypeOf<number | undefined>()
      const withTask = useLiveQuery({ table: 'comments', include: { task: true } })
      expectTypeOf(withTask.data.value?.[0]?.task).toEqualTypeOf<Task | null | undefined>()
      // @ts-expect-error: a has_many include needs its limit
      useLiveQuery({ table: 'tasks', include: { comments: { count: true } } })
    }
    expect(typeof check).toBe('function')
  })

  it('resolves on the first snapshot and follows diffs', async () => {
    const { factory, plugins } = setup()
    const wrapper = mount(probe({ table: 'items' }), { global: { plugins } })
    expect(wrapper.text()).toBe('loading')
    factory.last.accept()
    await flushPromises()
    const [sub] = subscribes(factory)
    expect(sub?.query).toEqual({ table: 'items' })
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: sub!.id,
      version: 1,
      table: 'items',
      rows: [item(1, 'a')],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('a')
    factory.last.receive({
      type: 'diff',
      id: sub!.id,
      from: 1,
      to: 2,
      table: 'items',
      upserts: [{ at: 0, row: item(2, 'b') }],
      deletes: [],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('b,a')
    wrapper.unmount()
  })

  it('shares one subscription between components and ends it with the last one', async () => {
    const { factory, plugins, queryClient, live } = setup()
    const Probe = probe({ table: 'items' })
    const show = ref({ a: true, b: true })
    const Parent = defineComponent({
      setup: () => () =>
        h('div', [show.value.a ? h(Probe, { key: 'a' }) : null, show.value.b ? h(Probe, { key: 'b' }) : null]),
    })
    const wrapper = mount(Parent, { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    expect(subscribes(factory)).toHaveLength(1)
    expect(live.subscriptionCount).toBe(1)
    const [sub] = subscribes(factory)
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: sub!.id,
      version: 1,
      table: 'items',
      rows: [item(1, 'x')],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('xx')

    show.value = { a: false, b: true }
    await flushPromises()
    expect(live.subscriptionCount).toBe(1)
    expect(factory.last.messages().filter((m) => m.type === 'unsubscribe')).toHaveLength(0)

    show.value = { a: false, b: false }
    await flushPromises()
    expect(live.subscriptionCount).toBe(0)
    expect(factory.last.messages().at(-1)).toEqual({ type: 'unsubscribe', id: sub!.id })
    expect(liveQueryRegistry(queryClient, live).size).toBe(0)

    // Mounting again resubscribes (cached rows show until the new snapshot).
    show.value = { a: true, b: false }
    await flushPromises()
    expect(live.subscriptionCount).toBe(1)
    expect(wrapper.text()).toBe('x')
    const again = subscribes(factory).at(-1)!
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: again.id,
      version: 5,
      table: 'items',
      rows: [item(1, 'y')],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('y')
    wrapper.unmount()
  })

  it('lingers before unsubscribing, so a quick remount keeps the subscription', async () => {
    const { factory, plugins, live } = setup(1000)
    const Probe = probe({ table: 'items' })
    const show = ref(true)
    const Parent = defineComponent({ setup: () => () => h('div', [show.value ? h(Probe) : null]) })
    const wrapper = mount(Parent, { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    show.value = false
    await flushPromises()
    vi.advanceTimersByTime(500)
    expect(live.subscriptionCount).toBe(1)
    show.value = true
    await flushPromises()
    vi.advanceTimersByTime(2000)
    expect(live.subscriptionCount).toBe(1)
    expect(subscribes(factory)).toHaveLength(1)
    show.value = false
    await flushPromises()
    vi.advanceTimersByTime(1000)
    expect(live.subscriptionCount).toBe(0)
    wrapper.unmount()
  })

  it('switches subscriptions when a reactive query changes', async () => {
    const { factory, plugins, live } = setup()
    const query = ref<QueryFor<'tasks'>>({ table: 'tasks', filter: { status_in: ['todo'] } })
    const wrapper = mount(probe(query), { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    const [first] = subscribes(factory)
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: first!.id,
      version: 1,
      table: 'tasks',
      rows: [task(1, { title: 'one' })],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('one')

    query.value = { table: 'tasks', filter: { status_in: ['todo'], assignee_eq: 'alice' } }
    await flushPromises()
    expect(live.subscriptionCount).toBe(1)
    const msgs = factory.last.messages()
    expect(msgs).toContainEqual({ type: 'unsubscribe', id: first!.id })
    const second = subscribes(factory).at(-1)!
    expect(second.query).toEqual({ table: 'tasks', filter: { status_in: ['todo'], assignee_eq: 'alice' } })
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: second.id,
      version: 1,
      table: 'tasks',
      rows: [task(2, { title: 'two' })],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('two')
    wrapper.unmount()
  })

  it('surfaces a subscription error as the query error', async () => {
    const { factory, plugins } = setup()
    const Comp = defineComponent({
      setup() {
        const { error, liveError } = useLiveQuery({ table: 'items', limit: 1_000_000 })
        return () => h('p', `${error.value?.message ?? '-'}|${liveError.value?.code ?? '-'}`)
      },
    })
    const wrapper = mount(Comp, { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    const [sub] = subscribes(factory)
    factory.last.receive({ type: 'error', id: sub!.id, code: 'invalid_query', message: 'limit is too large' })
    await flushPromises()
    expect(wrapper.text()).toBe('limit is too large|invalid_query')
    wrapper.unmount()
  })

  it("surfaces the server's per-subscription status as liveStatus, rows kept", async () => {
    const { factory, plugins } = setup()
    const Comp = defineComponent({
      setup() {
        const { data, liveStatus } = useLiveQuery({ table: 'items' })
        return () =>
          h('p', `${data.value?.length ?? '-'}|${liveStatus.value?.state ?? '-'}|${liveStatus.value?.reason ?? '-'}`)
      },
    })
    const wrapper = mount(Comp, { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    const [sub] = subscribes(factory)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id: sub!.id, version: 1, table: 'items', rows: [item(1)] })
    await flushPromises()
    expect(wrapper.text()).toBe('1|-|-')
    factory.last.receive({ type: 'status', id: sub!.id, state: 'delayed', reason: 'query_failing' })
    await flushPromises()
    expect(wrapper.text()).toBe('1|delayed|query_failing')
    factory.last.receive({ type: 'status', id: sub!.id, state: 'live' })
    await flushPromises()
    expect(wrapper.text()).toBe('1|live|-')
    wrapper.unmount()
  })

  it('gives rows with their included relations, and re-renders for a related entry alone', async () => {
    const { factory, plugins } = setup()
    const query = { table: 'tasks', include: { comments: { limit: 2, count: true } } } as const
    let data: Ref<RowsOf<typeof query> | undefined> | null = null
    const Comp = defineComponent({
      setup() {
        const result = useLiveQuery(query)
        data = result.data
        return () =>
          h(
            'p',
            (result.data.value ?? [])
              .map((t) => `${t.title}:${(t.comments ?? []).map((c) => c.body).join('+')}/${t.comments_count}`)
              .join(','),
          )
      },
    })
    const wrapper = mount(Comp, { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    const [sub] = subscribes(factory)
    expect(sub?.query).toEqual(query)
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: sub!.id,
      version: 1,
      table: 'tasks',
      rows: [task(1), task(2)],
      related: [{ relation: 'comments', of: 1, table: 'comments', rows: [comment(1)], count: 1 }],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('task 1:comment 1/1,task 2:/0')
    const first = data!.value!
    factory.last.receive({
      type: 'diff',
      id: sub!.id,
      from: 1,
      to: 2,
      table: 'tasks',
      upserts: [],
      deletes: [],
      related: [{ relation: 'comments', of: 2, table: 'comments', rows: [comment(2, { task_id: 2 })], count: 3 }],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('task 1:comment 1/1,task 2:comment 2/3')
    expect(data!.value![0]).toBe(first[0])
    expect(data!.value![1]).not.toBe(first[1])
    wrapper.unmount()
  })

  it('hashes equal queries alike, whatever their key order', () => {
    expect(hashKey(liveQueryKey({ table: 'tasks', limit: 3, filter: { assignee_eq: 'a', status_in: ['todo'] } }))).toBe(
      hashKey(liveQueryKey({ filter: { status_in: ['todo'], assignee_eq: 'a' }, limit: 3, table: 'tasks' })),
    )
  })

  it('shares one subscription between equal queries written in a different key order', async () => {
    const { factory, plugins, live } = setup()
    const A = probe({ table: 'tasks', limit: 3, filter: { assignee_eq: 'a', status_in: ['todo'] } })
    const B = probe({ filter: { status_in: ['todo'], assignee_eq: 'a' }, limit: 3, table: 'tasks' })
    const wrapper = mount(defineComponent({ setup: () => () => h('div', [h(A), h(B)]) }), { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    expect(subscribes(factory)).toHaveLength(1)
    expect(live.subscriptionCount).toBe(1)
    wrapper.unmount()
  })
})

describe('useLiveQuery across reconnects', () => {
  it('keeps the rows on screen through a reconnect and a resume: no loading state, no flicker', async () => {
    const { factory, plugins } = setup()
    const rendered: string[] = []
    const Comp = defineComponent({
      setup() {
        const { data, isPending } = useLiveQuery({ table: 'items' })
        const status = useConnectionStatus()
        return () => {
          const text = `${isPending.value ? 'loading' : (data.value ?? []).map((r) => r.name).join(',')}|${status.value.state}`
          rendered.push(text)
          return h('p', text)
        }
      },
    })
    const wrapper = mount(Comp, { global: { plugins } })
    factory.last.accept()
    await flushPromises()
    const id = subscribes(factory)[0]!.id
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 4, table: 'items', rows: [item(1, 'a')] })
    await flushPromises()
    expect(wrapper.text()).toBe('a|live')
    factory.last.drop(1006, '')
    await flushPromises()
    expect(wrapper.text()).toBe('a|reconnecting')
    vi.advanceTimersByTime(0)
    factory.last.accept()
    await flushPromises()
    const again = subscribes(factory)[0]!
    expect(again.since).toEqual({ epoch: 'e1', version: 4 })
    factory.last.receive({ type: 'resumed', id: again.id, epoch: 'e1', from: 4, to: 5 })
    factory.last.receive({
      type: 'diff',
      id: again.id,
      from: 4,
      to: 5,
      table: 'items',
      upserts: [{ at: 1, row: item(2, 'written while away') }],
      deletes: [],
    })
    await flushPromises()
    expect(wrapper.text()).toBe('a,written while away|live')
    const fromFirstRows = rendered.slice(rendered.indexOf('a|live'))
    expect(fromFirstRows.every((t) => !t.startsWith('loading') && !t.startsWith('|'))).toBe(true)
    wrapper.unmount()
  })
})

describe('useConnectionStatus', () => {
  it('follows the client', async () => {
    const { factory, plugins } = setup()
    const Comp = defineComponent({
      setup() {
        const status = useConnectionStatus()
        return () => h('span', status.value.state)
      },
    })
    const wrapper = mount(Comp, { global: { plugins } })
    expect(wrapper.text()).toBe('connecting')
    factory.last.accept()
    await nextTick()
    expect(wrapper.text()).toBe('live')
    factory.last.drop()
    await nextTick()
    expect(wrapper.text()).toBe('reconnecting')
    wrapper.unmount()
  })
})
