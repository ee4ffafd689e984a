import { describe, expect, it, vi } from 'vitest'
import { ApiRequestError, createApi, errorMessage } from './api'
import { comment, item, uuid } from './test/fixtures'

function respond(status: number, body?: unknown, raw?: string) {
  return vi.fn(
    async (_url: RequestInfo | URL, _init?: RequestInit) =>
      new Response(raw ?? (body === undefined ? null : JSON.stringify(body)), {
        status,
        headers: { 'content-type': raw ? 'text/plain' : 'application/json' },
      }),
  )
}

describe('api', () => {
  it('posts typed bodies and returns the row', async () => {
    const fetch = respond(201, item(1, 'a'))
    const api = createApi({ fetch })
    await expect(api.items.create({ name: 'a' })).resolves.toEqual(item(1, 'a'))
    const [url, init] = fetch.mock.calls[0]!
    expect(url).toBe('/api/items')
    expect(init?.method).toBe('POST')
    expect(init?.body).toBe('{"name":"a"}')
  })

  it('patches and deletes by id', async () => {
    const fetch = respond(204)
    const api = createApi({ fetch })
    await expect(api.tasks.remove(7)).resolves.toBeUndefined()
    expect(fetch.mock.calls[0]![0]).toBe('/api/tasks/7')
    expect(fetch.mock.calls[0]![1]?.method).toBe('DELETE')
    const patch = respond(200, item(7))
    await createApi({ fetch: patch }).items.update('7', { name: 'x' })
    expect(patch.mock.calls[0]![0]).toBe('/api/items/7')
    expect(patch.mock.calls[0]![1]?.method).toBe('PATCH')
  })

  it('puts a bigint key into the path exactly, as the decimal string it is', async () => {
    const fetch = respond(200, item('9007199254740993', 'x'))
    const api = createApi({ fetch })
    const row = await api.items.update('9007199254740993', { name: 'x' })
    expect(fetch.mock.calls[0]![0]).toBe('/api/items/9007199254740993')
    expect(row.id).toBe('9007199254740993')
    const del = respond(204)
    await createApi({ fetch: del }).items.remove('9007199254740993')
    expect(del.mock.calls[0]![0]).toBe('/api/items/9007199254740993')
  })

  it('uses the same routes for comments, keyed by uuid', async () => {
    const created = comment(1, { body: 'hi' })
    const post = respond(201, created)
    await expect(
      createApi({ fetch: post }).comments.create({ task_id: 1, author: 'alice', body: 'hi' }),
    ).resolves.toEqual(created)
    expect(post.mock.calls[0]![0]).toBe('/api/comments')
    expect(post.mock.calls[0]![1]?.body).toBe('{"task_id":1,"author":"alice","body":"hi"}')
    const patch = respond(200, created)
    await createApi({ fetch: patch }).comments.update(uuid(1), { body: 'edited' })
    expect(patch.mock.calls[0]![0]).toBe(`/api/comments/${uuid(1)}`)
    expect(patch.mock.calls[0]![1]?.method).toBe('PATCH')
    const del = respond(204)
    await createApi({ fetch: del }).comments.remove(uuid(1))
    expect(del.mock.calls[0]![0]).toBe(`/api/comments/${uuid(1)}`)
  })

  it('encodes keys for the path', async () => {
    const fetch = respond(204)
    await createApi({ fetch }).items.remove('a/b c')
    expect(fetch.mock.calls[0]![0]).toBe('/api/items/a%2Fb%20c')
  })

  it('throws the server ApiError', async () => {
    const body = { code: 'validation', message: 'name must be 1 to 200 characters', field: 'name' }
    const api = createApi({ fetch: respond(400, body) })
    const err = await api.items.create({ name: '' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiRequestError)
    const e = err as ApiRequestError
    expect(e.status).toBe(400)
    expect(e.body).toEqual(body)
    expect(e.code).toBe('validation')
    expect(e.field).toBe('name')
    expect(errorMessage(e)).toBe('name must be 1 to 200 characters')
  })

  it('makes up an ApiError for non-JSON failures and network errors', async () => {
    const e1 = await createApi({ fetch: respond(502, undefined, 'Bad Gateway') })
      .items.remove('1')
      .catch((e: unknown) => e)
    expect((e1 as ApiRequestError).body.code).toBe('unavailable')
    const down = vi.fn(async () => {
      throw new TypeError('fetch failed')
    })
    const e2 = await createApi({ fetch: down })
      .items.remove('1')
      .catch((e: unknown) => e)
    expect(e2).toBeInstanceOf(ApiRequestError)
    expect((e2 as ApiRequestError).status).toBe(0)
    expect((e2 as ApiRequestError).code).toBe('unavailable')
  })

  it('sends the token as a bearer header, and none for anonymous', async () => {
    const fetch = respond(201, item(1, 'a'))
    let token: string | null = 'tok-1'
    const api = createApi({ fetch, getToken: async () => token })
    await api.items.create({ name: 'a' })
    expect(fetch.mock.calls[0]![1]?.headers).toEqual({
      accept: 'application/json',
      'content-type': 'application/json',
      authorization: 'Bearer tok-1',
    })
    token = null
    await api.items.create({ name: 'b' })
    expect(fetch.mock.calls[1]![1]?.headers).toEqual({ accept: 'application/json', 'content-type': 'application/json' })
  })

  it('passes the server 503 message on, and names status codes without a body', async () => {
    const down = { code: 'unavailable', message: 'the database is unavailable; try again' }
    const e = await createApi({ fetch: respond(503, down) })
      .items.create({ name: 'x' })
      .catch((err: unknown) => err)
    expect((e as ApiRequestError).status).toBe(503)
    expect(errorMessage(e)).toBe('the database is unavailable; try again')
    for (const [status, code] of [
      [401, 'unauthenticated'],
      [403, 'forbidden'],
      [413, 'too_large'],
      [429, 'rate_limited'],
    ] as const) {
      const err = await createApi({ fetch: respond(status, undefined, 'nope') })
        .items.remove('1')
        .catch((x: unknown) => x)
      expect((err as ApiRequestError).code).toBe(code)
    }
  })

  it('fails clearly when no token can be had', async () => {
    const fetch = respond(201, item(1))
    const api = createApi({
      fetch,
      getToken: async () => {
        throw new Error('token service down')
      },
    })
    const e = await api.items.create({ name: 'a' }).catch((err: unknown) => err)
    expect((e as ApiRequestError).code).toBe('unauthenticated')
    expect(errorMessage(e)).toContain('token service down')
    expect(fetch).not.toHaveBeenCalled()
  })
})
