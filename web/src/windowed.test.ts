// @vitest-environment happy-dom
import { QueryClient, VueQueryPlugin } from '@tanstack/vue-query'
import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h, ref } from 'vue'
import { LiveClient, type ClientMessage, type ItemsFilter, type QueryFor } from '@pglive/client'
import { createLive } from '@pglive/client/vue'
import { item, socketFactory } from '../packages/client/src/test/fixtures'
import { useWindowedLiveQuery, windowCount } from './windowed'

describe('windowCount', () => {
  it('says the live count exactly, and whether rows lie beyond the window', () => {
    expect(windowCount(50, 120, 50)).toEqual({ label: '120', more: true, exact: true })
    expect(windowCount(3, 3, 50)).toEqual({ label: '3', more: false, exact: true })
    expect(windowCount(0, 0, 50)).toEqual({ label: '0', more: false, exact: true })
  })

  it('without a count, says a full window may have more', () => {
    expect(windowCount(50, null, 50)).toEqual({ label: '50+', more: true, exact: false })
    expect(windowCount(12, null, 50)).toEqual({ label: '12', more: false, exact: false })
  })
})

type Subscribe = Extract<ClientMessage, { type: 'subscribe' }>

describe('useWindowedLiveQuery with a live count', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
  })
  afterEach(() => {
    vi.useRealTimers()
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
    const filter = ref<ItemsFilter>({})
    let view: ReturnType<typeof useWindowedLiveQuery<QueryFor<'items'>>> | null = null
    const Comp = defineComponent({
      setup() {
        view = useWindowedLiveQuery(
          (): QueryFor<'items'> => ({
            table: 'items',
            filter: filter.value,
            order: { by: 'id', dir: 'asc' },
            count: true,
          }),
          2,
        )
        return () => h('p', view!.counted.value.label)
      },
    })
    const wrapper = mount(Comp, {
      global: { plugins: [[VueQueryPlugin, { queryClient: new QueryClient() }], createLive(live, { lingerMs: 0 })] },
    })
    const subscribes = () => factory.last.messages().filter((m): m is Subscribe => m.type === 'subscribe')
    return { factory, filter, wrapper, subscribes, view: () => view! }
  }

  it('shows the exact count, keeps it while a larger window loads, and drops it for another filter', async () => {
    const { factory, filter, wrapper, subscribes, view } = setup()
    factory.last.accept()
    await flushPromises()
    const first = subscribes().at(-1)!
    expect(first.query).toMatchObject({ limit: 2, count: true })
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: first.id,
      version: 1,
      table: 'items',
      rows: [item(1), item(2)],
      count: 5,
    })
    await flushPromises()
    expect(wrapper.text()).toBe('5')
    expect(view().hasMore.value).toBe(true)

    // A diff that changes only the count.
    factory.last.receive({
      type: 'diff',
      id: first.id,
      from: 1,
      to: 2,
      table: 'items',
      upserts: [],
      deletes: [],
      count: 6,
    })
    await flushPromises()
    expect(wrapper.text()).toBe('6')

    // A larger window: the same filter, so its count holds until the new snapshot.
    view().showMore()
    await flushPromises()
    const larger = subscribes().at(-1)!
    expect(larger.query).toMatchObject({ limit: 4, count: true })
    expect(view().loadingMore.value).toBe(true)
    expect(wrapper.text()).toBe('6')
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: larger.id,
      version: 2,
      table: 'items',
      rows: [item(1), item(2), item(3), item(4)],
      count: 6,
    })
    await flushPromises()
    expect(view().rows.value).toHaveLength(4)
    expect(wrapper.text()).toBe('6')
    expect(view().hasMore.value).toBe(true)

    // Another filter is another list: its count is not the previous one's.
    filter.value = { name_eq: 'x' }
    await flushPromises()
    expect(view().total.value).toBeNull()
    expect(view().counted.value.exact).toBe(false)
    const other = subscribes().at(-1)!
    expect(other.query).toMatchObject({ limit: 2, filter: { name_eq: 'x' } })
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: other.id,
      version: 2,
      table: 'items',
      rows: [item(3)],
      count: 1,
    })
    await flushPromises()
    expect(wrapper.text()).toBe('1')
    expect(view().hasMore.value).toBe(false)
    wrapper.unmount()
  })
})
