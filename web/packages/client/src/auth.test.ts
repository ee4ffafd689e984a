// The token lifecycle's transitions (auth.ts), without a client: each event
// from each stage it can meet, and when a refresh is due.
import { describe, expect, it } from 'vitest'
import { authTransition, NO_TOKEN, refreshDelay, type AuthEvent, type AuthState } from './auth'
import { LiveAuthError } from './errors'

const alice = { role: 'alice', expiresAt: 1_800_000_000 }
const bob = { role: 'bob', expiresAt: 1_800_003_600 }
const refused = new LiveAuthError('unauthenticated', 'bad signature')
const denied = new LiveAuthError('unauthenticated', 'authenticate first')

const authenticated: AuthState = { stage: 'authenticated', identity: alice, error: null }
const refreshing: AuthState = { stage: 'refreshing', identity: alice, error: null }

/** The state after `events`, from no token. */
function run(...events: AuthEvent[]): AuthState {
  return events.reduce(authTransition, NO_TOKEN)
}

describe('authTransition', () => {
  it('a connection authenticates, then reads as the accepted identity', () => {
    expect(run({ type: 'authenticate' })).toEqual({ stage: 'authenticating', identity: null, error: null })
    expect(run({ type: 'authenticate' }, { type: 'fetching' }).stage).toBe('authenticating')
    expect(run({ type: 'authenticate' }, { type: 'accepted', identity: alice, last: true })).toEqual(authenticated)
  })

  it('no token to send: the anonymous role, and the error is gone', () => {
    const waiting: AuthState = { stage: 'refused', identity: null, error: refused }
    expect(authTransition(waiting, { type: 'anonymous' })).toEqual({ stage: 'none', identity: null, error: null })
  })

  it('a fetch with an identity is a refresh; without one, the identity itself', () => {
    expect(authTransition(authenticated, { type: 'fetching' })).toEqual(refreshing)
    expect(authTransition(refreshing, { type: 'fetching' })).toEqual(refreshing)
    for (const stage of ['none', 'authenticating', 'refused', 'expired'] as const) {
      expect(authTransition({ stage, identity: null, error: null }, { type: 'fetching' }).stage).toBe('authenticating')
    }
  })

  it('an answer with a newer token on its way changes who the connection is, not where it stands', () => {
    const waiting: AuthState = { stage: 'authenticating', identity: null, error: refused }
    expect(authTransition(waiting, { type: 'accepted', identity: alice, last: false })).toEqual({
      stage: 'authenticating',
      identity: alice,
      error: refused,
    })
    expect(authTransition(refreshing, { type: 'accepted', identity: bob, last: true })).toEqual({
      stage: 'authenticated',
      identity: bob,
      error: null,
    })
  })

  it('refused while waiting for an identity: refused, with the error the status shows', () => {
    for (const stage of ['authenticating', 'refused', 'expired'] as const) {
      expect(authTransition({ stage, identity: null, error: null }, { type: 'refused', error: refused })).toEqual({
        stage: 'refused',
        identity: null,
        error: refused,
      })
    }
  })

  it('a refused refresh keeps the identity until it expires', () => {
    expect(authTransition(refreshing, { type: 'refused', error: refused })).toEqual(authenticated)
    expect(authTransition(authenticated, { type: 'refused', error: refused })).toEqual(authenticated)
    expect(authTransition(NO_TOKEN, { type: 'refused', error: refused })).toEqual(NO_TOKEN)
  })

  it('reauthenticating keeps the identity until the new one is accepted', () => {
    expect(authTransition(authenticated, { type: 'authenticate' })).toEqual({
      ...authenticated,
      stage: 'authenticating',
    })
    expect(authTransition(refreshing, { type: 'authenticate' }).stage).toBe('authenticating')
  })

  it('an expired token takes the identity with it', () => {
    expect(authTransition(authenticated, { type: 'expired' })).toEqual({
      stage: 'expired',
      identity: null,
      error: null,
    })
  })

  it('the server denying an identity sets the error; rows arriving clear it; the stage stays', () => {
    const deniedState = authTransition(authenticated, { type: 'denied', error: denied })
    expect(deniedState).toEqual({ ...authenticated, error: denied })
    expect(authTransition(deniedState, { type: 'rows' })).toEqual(authenticated)
    expect(authTransition(authenticated, { type: 'rows' })).toBe(authenticated)
  })

  it('a close forgets the identity but keeps the error for the next connection', () => {
    const waiting: AuthState = { stage: 'refused', identity: alice, error: refused }
    expect(authTransition(waiting, { type: 'closed' })).toEqual({ stage: 'none', identity: null, error: refused })
    expect(authTransition(refreshing, { type: 'closed' })).toEqual(NO_TOKEN)
  })
})

describe('refreshDelay', () => {
  it('refreshes refreshBeforeMs before expiry, a quarter of the life for short tokens, never under a second', () => {
    expect(refreshDelay(3_600_000, 30_000)).toBe(3_570_000)
    expect(refreshDelay(8_000, 30_000)).toBe(6_000)
    expect(refreshDelay(1_000, 30_000)).toBe(1_000)
    expect(refreshDelay(0, 30_000)).toBe(1_000)
    // Clocks that disagree: an already expired token is refreshed after a second, not at once.
    expect(refreshDelay(-5_000, 30_000)).toBe(1_000)
  })
})
