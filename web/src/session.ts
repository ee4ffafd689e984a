// Who the dashboard acts as. A server started with `--dev-tokens` (as
// `just dev` does) mints development tokens at POST /api/dev/token; the user
// switcher then picks one of the demo users and their tokens come from
// there. Elsewhere there is no switcher and no token: the server's
// anonymous role, or no authentication at all.
//
// `getToken` is what LiveClient and the REST client call: it caches a token
// per user until shortly before it expires, so that writes do not mint one
// each, while LiveClient's refresh (a quarter of the token's life before
// expiry) always gets a fresh one.
import { shallowRef } from 'vue'
import { isApiError } from '@pglive/client'

export interface DemoUser {
  readonly id: string
  /** What the switcher shows. */
  readonly label: string
  /** The `sub` claim; null for anonymous (no token). */
  readonly sub: string | null
  /** The tenant the user's rows belong to (the `tenant` claim the demo's policies read). */
  readonly tenant: string
}

export const USERS = [
  { id: 'anonymous', label: 'anonymous', sub: null, tenant: 'public' },
  // Edits what anonymous visitors read: sign in as editor in one tab and
  // stay anonymous in another to watch the public tenant change live.
  { id: 'editor', label: 'editor@public', sub: 'editor', tenant: 'public' },
  { id: 'alice', label: 'alice@acme', sub: 'alice', tenant: 'acme' },
  { id: 'bob', label: 'bob@globex', sub: 'bob', tenant: 'globex' },
] as const satisfies readonly DemoUser[]

export type UserId = (typeof USERS)[number]['id']

/** The role demo users' tokens name (the demo migration's RLS policies apply to it). */
const USER_ROLE = 'pglive_user'
const STORAGE_KEY = 'pglive.user'

function isUserId(value: unknown): value is UserId {
  return USERS.some((u) => u.id === value)
}

function storage(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null
  } catch {
    // Storage can be disabled; the choice then lasts until a reload.
    return null
  }
}

function initialUser(): UserId {
  const stored = storage()?.getItem(STORAGE_KEY)
  return isUserId(stored) ? stored : 'anonymous'
}

/** The user the dashboard acts as (per tab: kept in sessionStorage). */
export const currentUser = shallowRef<UserId>(initialUser())

export function userById(id: UserId): DemoUser {
  return USERS.find((u) => u.id === id) ?? USERS[0]
}

/** Whether the server mints development tokens; null until known. */
export const devTokens = shallowRef<boolean | null>(null)

/**
 * Seconds a development token lives. `?token_ttl=N` in the page's URL makes
 * tokens short-lived, to watch (and test) refreshes; default one hour.
 */
function tokenTtl(): number {
  const param = new URLSearchParams(globalThis.location?.search ?? '').get('token_ttl')
  const n = param === null ? NaN : Number(param)
  return Number.isInteger(n) && n >= 2 && n <= 86_400 ? n : 3600
}

interface Cached {
  token: string
  expiresAtMs: number
  ttlMs: number
}

const cache = new Map<UserId, Cached>()
const inFlight = new Map<UserId, Promise<string>>()

/** A typed failure of the development token endpoint. */
export class DevTokenError extends Error {
  override name = 'DevTokenError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

async function mint(id: UserId): Promise<string> {
  const user = userById(id)
  const ttl = tokenTtl()
  const response = await fetch('/api/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ sub: user.sub, role: USER_ROLE, claims: { tenant: user.tenant }, ttl_secs: ttl }),
  })
  const body: unknown = await response.json().catch(() => null)
  if (!response.ok) {
    const message = isApiError(body) ? body.message : `HTTP ${response.status}`
    throw new DevTokenError(response.status, `no development token: ${message}`)
  }
  const token = (body as { token?: unknown } | null)?.token
  if (typeof token !== 'string') throw new DevTokenError(response.status, 'no development token in the answer')
  cache.set(id, { token, expiresAtMs: Date.now() + ttl * 1000, ttlMs: ttl * 1000 })
  return token
}

/** A token for `id`: a cached one with enough life left, else a fresh one. */
async function tokenFor(id: UserId): Promise<string> {
  const cached = cache.get(id)
  if (cached && cached.expiresAtMs - Date.now() > Math.min(30_000, cached.ttlMs / 2)) return cached.token
  const pending = inFlight.get(id)
  if (pending) return pending
  const fresh = mint(id).finally(() => inFlight.delete(id))
  inFlight.set(id, fresh)
  return fresh
}

let probe: Promise<boolean> | null = null

/** Finds out (once) whether the server mints development tokens. */
export function probeDevTokens(): Promise<boolean> {
  probe ??= tokenFor('alice').then(
    () => true,
    () => false,
  )
  return probe.then((available) => {
    devTokens.value = available
    if (!available && currentUser.value !== 'anonymous') currentUser.value = 'anonymous'
    return available
  })
}

/** The current user's token, or null for anonymous (and where there are no development tokens). */
export async function getToken(): Promise<string | null> {
  const available = await probeDevTokens()
  const id = currentUser.value
  if (!available || id === 'anonymous') return null
  return tokenFor(id)
}

/** Makes `id` the current user (the caller moves the live client and the cache over). */
export function setUser(id: UserId): void {
  currentUser.value = id
  storage()?.setItem(STORAGE_KEY, id)
}
