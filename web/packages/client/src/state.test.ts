import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LiveAuthError } from './errors'
import { deriveStatus, sameStatus, statusLabel, transition, type Phase, type StatusInputs } from './state'
import { setup, subId, watchItems } from './test/harness'

const base: StatusInputs = { phase: 'ready', retrying: false, online: true, server: null, authError: null }

describe('the connection state machine', () => {
  it('goes through a handshake with and without a token', () => {
    let p: Phase = 'idle'
    p = transition(p, { type: 'opening' })
    expect(p).toBe('opening')
    expect(transition(p, { type: 'opened', auth: false })).toBe('syncing')
    p = transition(p, { type: 'opened', auth: true })
    expect(p).toBe('authenticating')
    expect(transition(p, { type: 'synced' })).toBe('authenticating') // not before the identity
    p = transition(p, { type: 'authenticated' })
    expect(p).toBe('syncing')
    p = transition(p, { type: 'synced' })
    expect(p).toBe('ready')
    expect(transition(p, { type: 'authenticated' })).toBe('ready') // a refresh changes nothing
    expect(transition(p, { type: 'reauthenticate' })).toBe('authenticating')
    p = transition(p, { type: 'lost' })
    expect(p).toBe('waiting')
    expect(transition(p, { type: 'authenticated' })).toBe('waiting')
    expect(transition(p, { type: 'opening' })).toBe('opening')
    p = transition(p, { type: 'close' })
    expect(p).toBe('closed')
    for (const type of ['opening', 'lost', 'synced', 'reauthenticate'] as const) {
      expect(transition(p, { type })).toBe('closed')
    }
  })
})

describe('the status the app shows', () => {
  it('is live only when ready and the server says live', () => {
    expect(deriveStatus(base)).toEqual({ state: 'live' })
    expect(deriveStatus({ ...base, server: { state: 'live' } })).toEqual({ state: 'live' })
    expect(deriveStatus({ ...base, phase: 'syncing' })).toEqual({ state: 'connecting' })
    expect(deriveStatus({ ...base, phase: 'syncing', retrying: true })).toEqual({ state: 'reconnecting' })
  })

  it('tells delayed (server up, database down) from reconnecting (server unreachable)', () => {
    const delayed = { state: 'delayed', reason: 'database_unreachable' } as const
    expect(deriveStatus({ ...base, server: delayed })).toEqual(delayed)
    // Delayed wins while catching up too: snapshots may not come while the database is down.
    expect(deriveStatus({ ...base, phase: 'syncing', retrying: true, server: delayed })).toEqual(delayed)
    // Not connected: whatever the server said last, it cannot be reached now.
    expect(deriveStatus({ ...base, phase: 'waiting', retrying: true, server: delayed })).toEqual({
      state: 'reconnecting',
    })
    expect(statusLabel(delayed)).toBe('delayed — database unreachable')
    expect(statusLabel({ state: 'delayed', reason: 'capture_down' })).toBe('delayed — change capture down')
    expect(statusLabel({ state: 'reconnecting' })).toBe('reconnecting')
  })

  it('is offline without network (when not connected) or when closed; unauthenticated with the reason', () => {
    expect(deriveStatus({ ...base, phase: 'waiting', online: false })).toEqual({ state: 'offline' })
    expect(deriveStatus({ ...base, online: false })).toEqual({ state: 'live' })
    expect(deriveStatus({ ...base, phase: 'closed' })).toEqual({ state: 'offline' })
    const error = new LiveAuthError('token_expired', 'expired')
    expect(deriveStatus({ ...base, phase: 'authenticating', authError: error })).toEqual({
      state: 'unauthenticated',
      error,
    })
  })

  it('compares statuses by what they show', () => {
    expect(sameStatus({ state: 'live' }, { state: 'live' })).toBe(true)
    expect(
      sameStatus({ state: 'delayed', reason: 'capture_down' }, { state: 'delayed', reason: 'database_unreachable' }),
    ).toBe(false)
    const e = new LiveAuthError('forbidden', 'no')
    expect(sameStatus({ state: 'unauthenticated', error: e }, { state: 'unauthenticated', error: e })).toBe(true)
  })
})

describe('LiveClient and the server status', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('shows delayed while the server says so, live again after, rows kept throughout', () => {
    const { client, factory, statuses } = setup()
    const w = watchItems(client)
    const s = factory.last
    s.accept()
    s.receive({ type: 'status', state: 'live' })
    s.receive({ type: 'snapshot', epoch: 'e1', id: subId(s), version: 1, table: 'items', rows: [] })
    expect(client.getStatus()).toEqual({ state: 'live' })
    s.receive({ type: 'status', state: 'delayed', reason: 'database_unreachable' })
    expect(client.getStatus()).toEqual({ state: 'delayed', reason: 'database_unreachable' })
    s.receive({ type: 'status', state: 'delayed', reason: 'capture_down' })
    expect(client.getStatus()).toEqual({ state: 'delayed', reason: 'capture_down' })
    s.receive({ type: 'status', state: 'live' })
    expect(statuses).toEqual(['live', 'delayed', 'delayed', 'live'])
    expect(w.seen).toHaveLength(1)
  })

  it('a connection that opens while the database is down is delayed, not live', () => {
    const { client, factory } = setup()
    watchItems(client)
    factory.last.accept()
    factory.last.receive({ type: 'status', state: 'delayed', reason: 'database_unreachable' })
    expect(client.getStatus()).toEqual({ state: 'delayed', reason: 'database_unreachable' })
    // The server going away ends what it said: reconnecting, not delayed.
    factory.last.drop()
    expect(client.getStatus()).toEqual({ state: 'reconnecting' })
  })
})
