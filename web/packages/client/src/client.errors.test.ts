// LiveClient's errors: a subscription's (permanent, or transient and
// retried with backoff), the connection's, and a subscriber that throws.
import { describe, expect, it, vi } from 'vitest'
import { item } from './test/fixtures'
import { LiveConnectionError, LiveSubscriptionError } from './errors'
import { receiveSnapshot, setup, subId, useFakeTimersInEachTest, watchItems } from './test/harness'

useFakeTimersInEachTest()

describe('LiveClient errors', () => {
  it('reports a subscription error; a permanent one is not retried until reconnect', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'error', id, code: 'invalid_query', message: 'limit too large' })
    expect(w.errors).toHaveLength(1)
    expect(w.errors[0]).toBeInstanceOf(LiveSubscriptionError)
    expect(w.errors[0]?.code).toBe('invalid_query')
    expect(w.errors[0]?.message).toBe('limit too large')
    vi.advanceTimersByTime(60_000)
    expect(factory.last.messages()).toHaveLength(1)
    // A new connection tries again.
    factory.last.drop()
    vi.advanceTimersByTime(300)
    factory.last.accept()
    expect(factory.last.messages()).toHaveLength(1)
  })

  it('retries a transient subscription error with backoff', () => {
    const { client, factory, delays } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.receive({ type: 'error', id: subId(factory.last), code: 'rate_limited', message: 'slow down' })
    expect(w.errors.map((e) => e.code)).toEqual(['rate_limited'])
    expect(delays.at(-1)).toBe(125) // 0.5 * 250
    vi.advanceTimersByTime(125)
    expect(factory.last.messages().filter((m) => m.type === 'subscribe')).toHaveLength(2)
    factory.last.receive({ type: 'error', id: subId(factory.last), code: 'query_failed', message: 'try later' })
    expect(delays.at(-1)).toBe(250) // second retry: 0.5 * 500
    vi.advanceTimersByTime(250)
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [item(1)] })
    expect(w.rows).toEqual([item(1)])
  })

  it('retries server_busy (the server is full for now) with backoff', () => {
    const { client, factory, delays } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.receive({ type: 'error', id: subId(factory.last), code: 'server_busy', message: 'busy' })
    expect(w.errors.map((e) => e.code)).toEqual(['server_busy'])
    expect(delays.at(-1)).toBe(125)
    vi.advanceTimersByTime(124)
    expect(factory.last.messages().filter((m) => m.type === 'subscribe')).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(factory.last.messages().filter((m) => m.type === 'subscribe')).toHaveLength(2)
    receiveSnapshot(factory.last, { rows: [item(1)] })
    expect(w.rows).toEqual([item(1)])
  })

  it('passes connection-level errors to onError listeners', () => {
    const { client, factory } = setup()
    const got: unknown[] = []
    client.onError((e) => got.push(e))
    client.connect()
    factory.last.accept()
    factory.last.receive({ type: 'error', code: 'bad_frame', message: 'could not parse' })
    expect(got).toHaveLength(1)
    expect(got[0]).toBeInstanceOf(LiveConnectionError)
    expect(got[0]).toMatchObject({ code: 'bad_frame', message: 'could not parse' })
  })

  it('a throwing subscriber does not break the client', () => {
    const { client, factory } = setup()
    const boom = vi.fn(() => {
      throw new Error('listener bug')
    })
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    client.subscribe({ table: 'items' }, { next: boom })
    const w = watchItems(client)
    factory.last.accept()
    for (const m of factory.last.messages()) {
      if (m.type !== 'subscribe') continue
      factory.last.receive({ type: 'snapshot', epoch: 'e1', id: m.id, version: 1, table: 'items', rows: [item(1)] })
    }
    expect(boom).toHaveBeenCalledTimes(1)
    expect(w.rows).toEqual([item(1)])
    expect(logged).toHaveBeenCalledTimes(1)
    logged.mockRestore()
  })
})
