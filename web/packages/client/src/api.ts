// Typed REST client for the write API. Every live table has the same three
// routes (`POST /api/{table}`, `PATCH` and `DELETE /api/{table}/{key}`);
// request and response bodies are the generated types; a non-2xx answer
// throws an ApiRequestError carrying the server's ApiError. With `getToken`,
// every request carries `Authorization: Bearer <token>`, so that the server
// writes as that user (and PostgreSQL's row-level security decides).
import type { ApiError, CommentPatch, ErrorCode, ItemPatch, NewComment, NewItem, NewTask, TaskPatch } from './generated'
import type { RowKey, RowOf, Table } from './types'

export class ApiRequestError extends Error {
  override name = 'ApiRequestError'
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number
  /** The server's error body (or one made up for non-JSON failures). */
  readonly body: ApiError

  constructor(status: number, body: ApiError) {
    super(body.message)
    this.status = status
    this.body = body
  }

  get code(): ErrorCode {
    return this.body.code
  }

  get field(): string | undefined {
    return this.body.field
  }
}

/** Whether `value` has the shape of an `ApiError` body. */
export function isApiError(value: unknown): value is ApiError {
  if (value === null || typeof value !== 'object') return false
  const v = value as Record<string, unknown>
  return (
    typeof v.code === 'string' &&
    typeof v.message === 'string' &&
    (v.field === undefined || v.field === null || typeof v.field === 'string')
  )
}

export interface ApiOptions {
  /** Prefix of every request path; default `/api`. */
  baseUrl?: string
  fetch?: typeof fetch
  /**
   * The token to send as `Authorization: Bearer`; null sends none (the
   * server's anonymous role). Called for every request, so it should cache.
   */
  getToken?: () => Promise<string | null>
}

function fallbackCode(status: number): ErrorCode {
  if (status === 400 || status === 422) return 'validation'
  if (status === 401) return 'unauthenticated'
  if (status === 403) return 'forbidden'
  if (status === 404) return 'not_found'
  if (status === 405) return 'method_not_allowed'
  if (status === 409) return 'conflict'
  if (status === 413) return 'too_large'
  if (status === 415) return 'unsupported_media_type'
  if (status === 429) return 'rate_limited'
  if (status === 502 || status === 503 || status === 504) return 'unavailable'
  return 'internal'
}

export function createApi(options: ApiOptions = {}) {
  const base = options.baseUrl ?? '/api'
  const doFetch: typeof fetch = options.fetch ?? ((...args) => globalThis.fetch(...args))

  async function headers(body: unknown): Promise<Record<string, string>> {
    const out: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) out['content-type'] = 'application/json'
    if (options.getToken) {
      let token: string | null
      try {
        token = await options.getToken()
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e)
        throw new ApiRequestError(0, { code: 'unauthenticated', message: `Could not get a token: ${why}` })
      }
      if (token !== null) out.authorization = `Bearer ${token}`
    }
    return out
  }

  async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = {
      method,
      headers: await headers(body),
      body: body === undefined ? undefined : JSON.stringify(body),
    }
    let response: Response
    try {
      response = await doFetch(`${base}${path}`, init)
    } catch {
      throw new ApiRequestError(0, { code: 'unavailable', message: 'The server cannot be reached.' })
    }
    if (response.status === 204) return undefined as T
    const text = await response.text().catch(() => '')
    let parsed: unknown = undefined
    if (text !== '') {
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = undefined
      }
    }
    if (!response.ok) {
      throw new ApiRequestError(
        response.status,
        isApiError(parsed)
          ? parsed
          : { code: fallbackCode(response.status), message: `Request failed (HTTP ${response.status}).` },
      )
    }
    return parsed as T
  }

  /**
   * create / update / delete for one table. The key goes into the path as
   * it is, encoded: a bigint key is a decimal string and stays exact.
   */
  function resource<T extends Table, New, Patch>(table: T) {
    const path = (key: RowKey<T>) => `/${table}/${encodeURIComponent(key)}`
    return {
      create: (body: New) => request<RowOf<T>>('POST', `/${table}`, body),
      update: (key: RowKey<T>, patch: Patch) => request<RowOf<T>>('PATCH', path(key), patch),
      remove: (key: RowKey<T>) => request<void>('DELETE', path(key)),
    }
  }

  return {
    items: resource<'items', NewItem, ItemPatch>('items'),
    tasks: resource<'tasks', NewTask, TaskPatch>('tasks'),
    comments: resource<'comments', NewComment, CommentPatch>('comments'),
  }
}

export type Api = ReturnType<typeof createApi>

/** A message for the user from anything a mutation may throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiRequestError) return error.body.message
  if (error instanceof Error) return error.message
  return String(error)
}
