import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LiveAuthError } from './errors'
import { item } from './test/fixtures'
import { flush, receiveSnapshot, sentOf, setup, subId, watchItems } from './test/harness'

const NOW = Date.parse('2026-11-30T12:00:00Z')
const nowSecs = () => Math.floor(Date.now() / 1000)

/** A token source that hands out `t1`, `t2`, ... and counts its calls. */
function tokens() {
  let n = 0
  const getToken = vi.fn(async (): Promise<string | null> => `t${(n += 1)}`)
  return { getToken }
}

beforeEach(() => {
  vi.useFakeTimers({ now: NOW })
})

afterEach(() => {
  vi.useRealTimers()
})

describe('LiveClient authentication', () => {
  it('authenticates before subscribing, on every connection with a fresh token', async () => {
    const { getToken } = tokens()
    const { client, factory } = setup({ getToken })
    const w = watchItems(client)
    factory.last.accept()
    await flush()
    // The token goes first; subscriptions wait for the server to accept it.
    expect(factory.last.messages()).toEqual([{ type: 'auth', token: 't1' }])
    expect(client.getStatus().state).toBe('connecting')
    factory.last.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    expect(factory.last.messages().map((m) => m.type)).toEqual(['auth', 'subscribe'])
    expect(client.getIdentity()).toEqual({ role: 'pglive_user', expiresAt: nowSecs() + 3600 })
    receiveSnapshot(factory.last, { rows: [item(1)] })
    expect(client.getStatus().state).toBe('live')
    expect(w.rows).toEqual([item(1)])

    // A reconnect asks for a new token: the old one may be about to expire.
    factory.last.drop()
    expect(client.getIdentity()).toBeNull()
    vi.advanceTimersByTime(10_000)
    factory.last.accept()
    await flush()
    expect(getToken).toHaveBeenCalledTimes(2)
    expect(factory.last.messages()).toEqual([{ type: 'auth', token: 't2' }])
  })

  it('refreshes in band before expiry, without resubscribing', async () => {
    const { getToken } = tokens()
    const { client, factory } = setup({ getToken })
    watchItems(client)
    factory.last.accept()
    await flush()
    factory.last.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    receiveSnapshot(factory.last)
    // An hour-long token is refreshed 30 s before it expires.
    await vi.advanceTimersByTimeAsync(3_569_000)
    expect(getToken).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(1000)
    expect(getToken).toHaveBeenCalledTimes(2)
    expect(factory.last.messages().map((m) => m.type)).toEqual(['auth', 'subscribe', 'auth'])
    expect(sentOf(factory.last, 'auth').at(-1)).toEqual({ type: 'auth', token: 't2' })
    factory.last.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 8 })
    // The status never left live, and nothing was resubscribed.
    expect(client.getStatus().state).toBe('live')
    expect(sentOf(factory.last, 'subscribe')).toHaveLength(1)
    expect(sentOf(factory.last, 'unsubscribe')).toHaveLength(0)
    // A short token is refreshed a quarter of its life before expiry.
    await vi.advanceTimersByTimeAsync(5_999)
    expect(getToken).toHaveBeenCalledTimes(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(getToken).toHaveBeenCalledTimes(3)
  })

  it('never refreshes a token that does not expire', async () => {
    const { getToken } = tokens()
    const { client, factory } = setup({ getToken })
    client.connect()
    factory.last.accept()
    await flush()
    factory.last.receive({ type: 'authenticated', role: 'pglive_anon', expires_at: 0 })
    await vi.advanceTimersByTimeAsync(10 * 24 * 3600 * 1000)
    expect(sentOf(factory.last, 'auth')).toHaveLength(1)
    expect(getToken).toHaveBeenCalledTimes(1)
  })

  it('a refused token: unauthenticated with a typed error, retried with backoff, subscriptions held', async () => {
    const { getToken } = tokens()
    const { client, factory, errors } = setup({ getToken })
    watchItems(client)
    factory.last.accept()
    await flush()
    factory.last.receive({ type: 'error', code: 'unauthenticated', message: 'bad signature' })
    const status = client.getStatus()
    expect(status.state).toBe('unauthenticated')
    if (status.state !== 'unauthenticated') throw new Error('unreachable')
    expect(status.error).toBeInstanceOf(LiveAuthError)
    expect(status.error.code).toBe('unauthenticated')
    expect(status.error.message).toBe('bad signature')
    expect(errors).toEqual([status.error])
    expect(sentOf(factory.last, 'subscribe')).toHaveLength(0)

    // Retried after a backoff delay, with a new token.
    await vi.advanceTimersByTimeAsync(125)
    expect(getToken).toHaveBeenCalledTimes(2)
    factory.last.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    expect(sentOf(factory.last, 'subscribe')).toHaveLength(1)
    receiveSnapshot(factory.last)
    expect(client.getStatus().state).toBe('live')
  })

  it('a token the role check refuses is forbidden; getToken failing is token_unavailable', async () => {
    let fail = true
    const getToken = vi.fn(async (): Promise<string | null> => {
      if (fail) throw new Error('token service down')
      return 'tok'
    })
    const { client, factory, errors } = setup({ getToken })
    client.connect()
    factory.last.accept()
    await flush()
    expect(client.getStatus()).toMatchObject({ state: 'unauthenticated', error: { code: 'token_unavailable' } })
    expect(errors[0]?.message).toContain('token service down')
    fail = false
    await vi.advanceTimersByTimeAsync(125)
    expect(sentOf(factory.last, 'auth')).toEqual([{ type: 'auth', token: 'tok' }])
    factory.last.receive({ type: 'error', code: 'forbidden', message: 'role "admin" is not allowed' })
    expect(client.getStatus()).toMatchObject({ state: 'unauthenticated', error: { code: 'forbidden' } })
  })

  it('token_expired: a fresh token, then every subscription again, resuming from its rows', async () => {
    const { getToken } = tokens()
    const { client, factory, errors } = setup({ getToken })
    const w = watchItems(client)
    const s = factory.last
    s.accept()
    await flush()
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    s.receive({ type: 'snapshot', epoch: 'e1', id: subId(s), version: 3, table: 'items', rows: [item(1), item(2)] })

    s.receive({
      type: 'error',
      code: 'token_expired',
      message: 'the token expired; authenticate again and resubscribe',
    })
    expect(errors.map((e) => e.code)).toEqual(['token_expired'])
    expect(client.getStatus().state).toBe('reconnecting')
    await flush()
    expect(sentOf(s, 'auth').at(-1)).toEqual({ type: 'auth', token: 't2' })
    expect(sentOf(s, 'subscribe')).toHaveLength(1) // held until the token is accepted
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    const again = sentOf(s, 'subscribe').at(-1)
    expect(again?.since).toEqual({ epoch: 'e1', version: 3 })
    expect(again?.id).not.toBe(sentOf(s, 'subscribe')[0]?.id)
    s.receive({ type: 'resumed', id: again!.id, epoch: 'e1', from: 3, to: 3 })
    expect(client.getStatus().state).toBe('live')
    // The rows never went away.
    expect(w.seen).toHaveLength(1)
    expect(w.rows).toEqual([item(1), item(2)])
  })

  it('reauthenticate(): new subscriptions wait for the new identity; late answers do not release them', async () => {
    let user: string | null = 'alice'
    const getToken = vi.fn(async () => (user === null ? null : `token-${user}`))
    const { client, factory } = setup({ getToken })
    watchItems(client)
    const s = factory.last
    s.accept()
    await flush()
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    s.receive({ type: 'snapshot', epoch: 'e1', id: subId(s), version: 1, table: 'items', rows: [item(1)] })

    // A refresh is on its way when the user changes.
    await vi.advanceTimersByTimeAsync(3_570_000)
    expect(sentOf(s, 'auth')).toHaveLength(2)
    user = 'bob'
    client.reauthenticate()
    const bobs = watchItems(client)
    // The refresh's answer arrives before bob's token is even sent.
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    expect(sentOf(s, 'subscribe')).toHaveLength(1)
    await flush()
    expect(sentOf(s, 'auth').at(-1)).toEqual({ type: 'auth', token: 'token-bob' })
    expect(sentOf(s, 'subscribe')).toHaveLength(1)
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    expect(sentOf(s, 'subscribe')).toHaveLength(2)
    // The server moved the old subscription: a fresh snapshot replaces alice's rows.
    const first = sentOf(s, 'subscribe')[0]!.id
    s.receive({ type: 'snapshot', epoch: 'e2', id: first, version: 1, table: 'items', rows: [item(9)] })
    s.receive({ type: 'snapshot', epoch: 'e2', id: subId(s), version: 1, table: 'items', rows: [item(9)] })
    expect(bobs.rows).toEqual([item(9)])
    expect(client.getStatus().state).toBe('live')

    // Signing out: in band a connection cannot drop its identity, so a new one starts.
    user = null
    client.reauthenticate()
    await flush()
    expect(factory.sockets).toHaveLength(2)
    expect(s.closedWith?.code).toBe(1000)
    factory.last.accept()
    await flush()
    // No token to send: subscriptions go out at once, as the anonymous role.
    expect(factory.last.messages().map((m) => m.type)).toEqual(['subscribe', 'subscribe'])
  })

  it('a user switch moves subscriptions in band: the history shows no reconnect; signing out says why it reconnects', async () => {
    // As the dashboard: anonymous first (no token), then alice, then anonymous again.
    let user: string | null = null
    const getToken = vi.fn(async () => (user === null ? null : `token-${user}`))
    const { client, factory } = setup({ getToken })
    const anonymous = watchItems(client)
    const s = factory.last
    s.accept()
    await flush()
    expect(sentOf(s, 'auth')).toHaveLength(0)
    s.receive({ type: 'status', state: 'live' })
    s.receive({ type: 'snapshot', epoch: 'e1', id: subId(s), version: 1, table: 'items', rows: [item(1)] })
    expect(client.getStatus().state).toBe('live')

    user = 'alice'
    client.reauthenticate()
    // The dashboard drops the previous user's queries and subscribes again meanwhile.
    anonymous.unsubscribe()
    const alices = watchItems(client)
    expect(client.getStatus().state).toBe('live')
    await flush()
    expect(sentOf(s, 'auth')).toEqual([{ type: 'auth', token: 'token-alice' }])
    expect(client.getStatus().state).toBe('live')
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    expect(client.getStatus().state).toBe('live')
    s.receive({ type: 'snapshot', epoch: 'e2', id: subId(s), version: 1, table: 'items', rows: [item(7)] })
    expect(alices.rows).toEqual([item(7)])
    expect(factory.sockets).toHaveLength(1)
    expect(client.getStatusHistory().map((h) => h.status.state)).toEqual(['connecting', 'live'])

    // Signing out takes a new connection; the history says so.
    user = null
    client.reauthenticate()
    await flush()
    expect(factory.sockets).toHaveLength(2)
    factory.last.accept()
    await flush()
    factory.last.receive({ type: 'status', state: 'live' })
    receiveSnapshot(factory.last, { epoch: 'e2', rows: [item(1)] })
    const history = client.getStatusHistory()
    expect(history.map((h) => h.status.state)).toEqual(['connecting', 'live', 'reconnecting', 'live'])
    expect(history[2]?.reason).toMatch(/signed out/)
    expect(history[3]?.reason).toBeUndefined()
  })

  it('a user switch whose token expires on the way is not shown as live', async () => {
    let user = 'alice'
    const getToken = vi.fn(async () => `token-${user}`)
    const { client, factory } = setup({ getToken })
    watchItems(client)
    const s = factory.last
    s.accept()
    await flush()
    s.receive({ type: 'authenticated', role: 'pglive_user', expires_at: nowSecs() + 3600 })
    s.receive({ type: 'snapshot', epoch: 'e1', id: subId(s), version: 1, table: 'items', rows: [item(1)] })
    user = 'bob'
    client.reauthenticate()
    // The server stopped the subscriptions: nothing is moving over, so the status must not claim live.
    s.receive({ type: 'error', code: 'token_expired', message: 'expired' })
    expect(client.getStatus().state).not.toBe('live')
  })

  it('a connection closed for not authenticating (4401) shows unauthenticated, then reconnects', () => {
    const { client, factory, errors } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.receive({
      type: 'error',
      id: subId(factory.last),
      code: 'unauthenticated',
      message: 'authenticate first',
    })
    expect(w.errors.map((e) => e.code)).toEqual(['unauthenticated'])
    expect(client.getStatus().state).toBe('unauthenticated')
    factory.last.drop(4401, 'authentication required')
    expect(client.getStatus()).toMatchObject({
      state: 'unauthenticated',
      error: { message: 'authentication required' },
    })
    expect(errors.map((e) => e.code)).toContain('unauthenticated')
    vi.advanceTimersByTime(10_000)
    expect(factory.sockets).toHaveLength(2)
  })
})
