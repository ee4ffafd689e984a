// Test helpers: rows, a seeded PRNG, and a scripted fake WebSocket.
import type { ClientMessage, Comment, Item, ServerMessage, Task } from '../generated'
import type { WebSocketLike } from '../transport'

const T0 = Date.parse('2026-11-27T10:00:00Z')

/** An item; its bigint key travels as a decimal string, so a small number is written out as one. */
export function item(id: Item['id'] | number, name = `item ${id}`, rev = 0): Item {
  const at = new Date(T0 + rev * 1000).toISOString()
  return { id: String(id), name, created_at: new Date(T0).toISOString(), updated_at: at, tenant: 'public' }
}

export function task(id: number, patch: Partial<Task> = {}): Task {
  const at = new Date(T0).toISOString()
  return {
    id,
    title: `task ${id}`,
    status: 'todo',
    priority: 1,
    assignee: null,
    due_date: null,
    created_at: at,
    updated_at: at,
    tenant: 'public',
    ...patch,
  }
}

/** A comment with a uuid key derived from `n`. */
export function comment(n: number, patch: Partial<Comment> = {}): Comment {
  return {
    id: uuid(n),
    task_id: 1,
    author: 'alice',
    body: `comment ${n}`,
    created_at: new Date(T0 + n * 1000).toISOString(),
    edited_at: null,
    ...patch,
  }
}

/** A well-formed, deterministic uuid for `n`. */
export function uuid(n: number): string {
  const hex = n.toString(16).padStart(12, '0')
  return `0190c4a2-7b3e-4f6a-9d1c-${hex}`
}

/** mulberry32: a small seeded PRNG returning [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class FakeSocket implements WebSocketLike {
  readyState = 0
  readonly sent: string[] = []
  closedWith: { code?: number; reason?: string } | null = null
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number; reason: string }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open')
    this.sent.push(data)
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason }
    this.readyState = 3
  }

  // --- driven by tests ---

  /** The server accepts the connection. */
  accept(): void {
    this.readyState = 1
    this.onopen?.({})
  }

  /** The connection could not be made (or broke): error, then close. */
  fail(code = 1006): void {
    this.readyState = 3
    this.onerror?.({})
    this.onclose?.({ code, reason: '' })
  }

  /** The server closes the connection. */
  drop(code = 1001, reason = 'going away'): void {
    this.readyState = 3
    this.onclose?.({ code, reason })
  }

  receive(message: ServerMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) })
  }

  receiveRaw(data: unknown): void {
    this.onmessage?.({ data })
  }

  messages(): ClientMessage[] {
    return this.sent.map((s) => JSON.parse(s) as ClientMessage)
  }

  /** The last `subscribe` sent, if any. */
  lastSubscribe(): Extract<ClientMessage, { type: 'subscribe' }> | undefined {
    return this.messages()
      .filter((m): m is Extract<ClientMessage, { type: 'subscribe' }> => m.type === 'subscribe')
      .at(-1)
  }
}

/** A socket factory that remembers every socket it made. */
export function socketFactory() {
  const sockets: FakeSocket[] = []
  const create = (url: string) => {
    const s = new FakeSocket(url)
    sockets.push(s)
    return s
  }
  return {
    sockets,
    create,
    get last(): FakeSocket {
      const s = sockets.at(-1)
      if (!s) throw new Error('no socket was created')
      return s
    },
  }
}
