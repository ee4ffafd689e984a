#!/usr/bin/env node
// End-to-end tests: the built web app in headless Debian Chromium against the
// real pglive server and PostgreSQL.
//
//   node e2e/run.mjs            (npm run e2e)
//
// Environment:
//   PGLIVE_TEST_DATABASE_URL  admin URL of a PostgreSQL server (default: the
//                             project-local cluster from `dev/pg.sh start`)
//   PGLIVE_BIN                server binary (default <repo>/target/debug/pglive,
//                             built with cargo when missing)
//   PGLIVE_CHROMIUM           browser (default /usr/bin/chromium)
//   PGLIVE_E2E_SKIP_BUILD=1   use web/dist as it is (default: npm run build)
//   PGLIVE_E2E_TIMEOUT_MS     hard limit for the whole run (default 600000)
//   PGLIVE_E2E_HEADFUL=1      show the browser (debugging)
//   PGLIVE_E2E_ONLY=REGEX     run only the tests whose name matches (debugging)
//
// A fresh database `pglive_e2e_<random>` is created, migrated with
// `pglive migrate` and written by psql as the admin URL's user (the tables'
// owner), served with `pglive --addr 127.0.0.1:0`, and dropped at the end.
// Every server logs in as `pglive_authenticator` (the least-privileged role
// the migrations create; trust auth, no password), with authentication on
// as `just dev` runs it (development tokens, tenant contexts, the anonymous
// role): such a role cannot read anything without a token's role. The pages
// sign in as editor@public, who reads and writes the public tenant, the
// one psql rows without a tenant land in; REST calls from here carry
// editor's token. Some tests start servers of their own on the same database (with
// authentication, behind a TCP proxy that can cut connections, serving the
// React example); the PostgreSQL outage test runs against a throwaway
// cluster of its own (`dev/pg.sh start <dir> <port>`), never the shared one.
// Writes web/test-results/dashboard.png (and failure screenshots) and the
// servers' logs to web/test-results/server.log. The last line printed is
// always `N passed, N failed`; the exit code is non-zero on any failure.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const ROOT = path.resolve(WEB, '..')
const RESULTS = path.join(WEB, 'test-results')
const DIST = path.join(WEB, 'dist')
const EXAMPLE_DIST = path.join(WEB, 'examples', 'react', 'dist')
const PG_SH = path.join(ROOT, 'dev', 'pg.sh')
/** Signs the development tokens of the multi-user tests' server (never a real secret). */
const JWT_SECRET = 'e2e-development-secret-not-for-production'
/** The role every server logs in as (NOINHERIT; granted pglive_user and pglive_anon by the migrations). */
const AUTHENTICATOR = 'pglive_authenticator'
/** Authentication as `just dev` runs it; every server the tests start has it. */
const AUTH_ARGS = [
  '--jwt-secret',
  JWT_SECRET,
  '--dev-tokens',
  '--jwt-context-claims',
  'tenant',
  '--anon-role',
  'pglive_anon',
]
/** The demo user the main pages sign in as (web/src/session.ts): the public tenant's writer. */
const EDITOR = { id: 'editor', sub: 'editor', role: 'pglive_user', claims: { tenant: 'public' } }
const TIMEOUT_MS = Number(process.env.PGLIVE_E2E_TIMEOUT_MS ?? 600_000)
const TEST_TIMEOUT_MS = 90_000
const CHROMIUM = process.env.PGLIVE_CHROMIUM ?? '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
]

mkdirSync(RESULTS, { recursive: true })

let passed = 0
let failed = 0
let skipped = 0
let finished = false
const state = {
  adminUrl: null,
  dbName: null,
  dbUrl: null,
  server: null, // { proc, port, base }
  /** Editor's bearer token for REST calls to the main server, minted once it runs. */
  editorToken: null,
  /** Servers started by single tests; stopped at the end whatever happens. */
  extraServers: new Set(),
  /** TCP proxies started by tests. */
  proxies: new Set(),
  /** Throwaway PostgreSQL clusters: { dir, port }. */
  clusters: new Set(),
  browser: null,
  serverLog: createWriteStream(path.join(RESULTS, 'server.log'), { flags: 'w' }),
  pageErrors: [],
}

const log = (...args) => console.log(...args)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const rand = () => randomBytes(4).toString('hex')

// --- hard limit and cleanup -------------------------------------------------

const hardTimer = setTimeout(() => {
  console.error(`e2e: hard timeout after ${TIMEOUT_MS} ms`)
  void finish(1, 'hard timeout')
}, TIMEOUT_MS)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => void finish(1, signal))
}

async function cleanup() {
  const steps = []
  if (state.browser) {
    const b = state.browser
    state.browser = null
    steps.push(Promise.race([b.close().catch(() => {}), sleep(10_000)]))
  }
  steps.push(stopServer())
  for (const s of [...state.extraServers]) steps.push(stopProcess(s))
  for (const p of [...state.proxies]) p.close()
  await Promise.all(steps)
  for (const c of [...state.clusters]) stopCluster(c)
  if (state.dbName && state.adminUrl) {
    const r = psqlRaw(state.adminUrl, `DROP DATABASE IF EXISTS "${state.dbName}" WITH (FORCE)`)
    if (r.status !== 0) console.error(`e2e: could not drop ${state.dbName}: ${r.stderr}`)
    state.dbName = null
  }
  state.serverLog.end()
}

async function finish(code, why) {
  if (finished) return
  finished = true
  clearTimeout(hardTimer)
  if (why) failed += 1
  try {
    await Promise.race([cleanup(), sleep(30_000)])
  } catch (e) {
    console.error('e2e: cleanup failed:', e)
  }
  if (why) log(`FAIL - run aborted: ${why}`)
  log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
  process.exit(code !== 0 || failed > 0 ? 1 : 0)
}

// --- processes ----------------------------------------------------------------

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...opts })
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`)
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${(r.stderr || r.stdout || '').slice(-2000)}`)
  }
  return r.stdout
}

function psqlRaw(url, sql) {
  return spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql], {
    encoding: 'utf8',
    timeout: 30_000,
  })
}

/** Runs SQL on the test database; returns the output lines. */
function sql(query) {
  const r = psqlRaw(state.dbUrl, query)
  if (r.error || r.status !== 0) throw new Error(`psql failed: ${r.error?.message ?? r.stderr}`)
  return r.stdout.split('\n').filter((l) => l !== '')
}

function serverBin() {
  const bin = process.env.PGLIVE_BIN ?? path.join(ROOT, 'target', 'debug', 'pglive')
  if (!existsSync(bin)) {
    log(`e2e: ${bin} missing; cargo build -p pglive-server`)
    run('cargo', ['build', '-p', 'pglive-server'], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 1_200_000,
    })
  }
  return bin
}

/** `url` with its user replaced by the authenticator role (no password: the clusters trust local logins). */
function asAuthenticator(url) {
  const u = new URL(url)
  u.username = AUTHENTICATOR
  u.password = ''
  return u.toString()
}

/**
 * Starts pglive on `port` (0: any) and resolves once it says where it
 * listens. `options`: `dbUrl` (an admin URL, default the test database; the
 * server logs in to it as the authenticator), `webDir` (default the
 * dashboard's dist/), `args` (more flags, after authentication's).
 */
function startServer(bin, port, options = {}) {
  const dbUrl = asAuthenticator(options.dbUrl ?? state.dbUrl)
  const webDir = options.webDir ?? DIST
  const extra = options.args ?? []
  return new Promise((resolve, reject) => {
    const args = ['--database-url', dbUrl, '--addr', `127.0.0.1:${port}`, '--web-dir', webDir, ...AUTH_ARGS, ...extra]
    const proc = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PGLIVE_LOG: process.env.PGLIVE_LOG ?? 'info' },
    })
    let out = ''
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`pglive did not report its address within 30 s; stdout: ${out}`))
    }, 30_000)
    proc.stderr.on('data', (d) => state.serverLog.write(d))
    proc.stdout.on('data', (d) => {
      state.serverLog.write(d)
      out += d
      const m = out.match(/pglive listening on (http:\/\/127\.0\.0\.1:(\d+))/)
      if (m) {
        clearTimeout(timer)
        resolve({ proc, port: Number(m[2]), base: m[1] })
      }
    })
    proc.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`pglive exited (${code ?? signal}) before listening; see test-results/server.log`))
    })
    proc.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

async function stopServer(signal = 'SIGTERM') {
  const s = state.server
  if (!s) return
  state.server = null
  await stopProcess(s, signal)
}

/** A server for one test, stopped by `stopProcess` (or at the end of the run). */
async function startExtraServer(bin, options) {
  const s = await startServer(bin, 0, options)
  state.extraServers.add(s)
  return s
}

async function stopProcess(s, signal = 'SIGTERM') {
  state.extraServers.delete(s)
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return
  const exited = new Promise((r) => s.proc.once('exit', r))
  s.proc.kill(signal)
  const t = setTimeout(() => s.proc.kill('SIGKILL'), 5_000)
  await Promise.race([exited, sleep(8_000)])
  clearTimeout(t)
}

/** Starts the server again on the same port (retrying while the port is busy). */
async function restartServer(bin, port) {
  let last
  for (let i = 0; i < 20; i++) {
    try {
      return await startServer(bin, port)
    } catch (e) {
      last = e
      await sleep(300)
    }
  }
  throw last
}

/**
 * A TCP proxy to `target()` (a port on 127.0.0.1) that a test can cut: every
 * connection through it is destroyed, and new ones are refused, until it is
 * restored. The server behind stays up, so a client that reconnects can
 * resume.
 */
function startProxy(target) {
  return new Promise((resolve, reject) => {
    const sockets = new Set()
    let down = false
    const server = net.createServer((client) => {
      if (down) {
        client.destroy()
        return
      }
      const upstream = net.connect(target(), '127.0.0.1')
      for (const sock of [client, upstream]) {
        sockets.add(sock)
        sock.on('close', () => sockets.delete(sock))
        sock.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port
      const proxy = {
        port,
        base: `http://127.0.0.1:${port}`,
        cut() {
          down = true
          for (const sock of sockets) sock.destroy()
        },
        restore() {
          down = false
        },
        close() {
          this.cut()
          server.close()
          state.proxies.delete(proxy)
        },
      }
      state.proxies.add(proxy)
      resolve(proxy)
    })
  })
}

/** A free TCP port on 127.0.0.1 (free when asked; good enough for a test). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Starts a throwaway cluster with dev/pg.sh; returns its admin URL. */
function startCluster(cluster) {
  state.clusters.add(cluster)
  const r = spawnSync('bash', [PG_SH, 'start', cluster.dir, String(cluster.port)], {
    encoding: 'utf8',
    timeout: 120_000,
  })
  if (r.status !== 0) throw new Error(`dev/pg.sh start failed: ${(r.stderr || r.error?.message || '').slice(-1500)}`)
  return r.stdout.trim()
}

function stopCluster(cluster, { remove = true } = {}) {
  spawnSync('bash', [PG_SH, 'stop', cluster.dir], { encoding: 'utf8', timeout: 120_000 })
  if (remove) {
    state.clusters.delete(cluster)
    rmSync(cluster.dir, { recursive: true, force: true })
  }
}

// --- browser helpers -------------------------------------------------------------

/** Polls `check` until it returns a truthy value. */
async function until(check, what, timeout = 15_000) {
  const end = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await check()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) {
      throw new Error(
        `timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`,
      )
    }
    await sleep(100)
  }
}

/**
 * A browser context whose pages act as demo user `user` ('editor' unless
 * said; null: anonymous) from their first load: the dashboard reads its
 * user from sessionStorage (web/src/session.ts). A page that switches user
 * later keeps its own choice across reloads.
 */
async function newContext(options = {}, user = EDITOR.id) {
  const context = await state.browser.newContext(options)
  if (user !== null) {
    await context.addInitScript((id) => {
      if (sessionStorage.getItem('pglive.user') === null) sessionStorage.setItem('pglive.user', id)
    }, user)
  }
  return context
}

async function openPage(context, label, base = state.server.base, url = '/') {
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  page.on('pageerror', (e) => state.pageErrors.push(`${label}: ${e.message}`))
  await page.goto(base + url)
  await page.evaluate(() => {
    window.__e2eNoReload = true
  })
  await waitStatus(page, 'live')
  return page
}

/** The connection's counters, from the indicator's data attributes. */
async function liveStats(page) {
  const el = page.getByTestId('conn')
  const read = async (name) => Number(await el.getAttribute(`data-${name}`))
  return {
    connections: await read('connections'),
    resumes: await read('resumes'),
    snapshots: await read('snapshots'),
    authentications: await read('authentications'),
  }
}

/** Signs a dashboard page in as `user` ('alice', 'bob' or 'anonymous') with the user switcher. */
async function signIn(page, user) {
  const switcher = page.getByTestId('user-switcher')
  await switcher.waitFor({ state: 'visible' })
  await switcher.selectOption(user)
  await waitStatus(page, 'live')
}

const status = (page) => page.getByTestId('conn-status').textContent()

async function waitStatus(page, want, timeout = 20_000) {
  await until(async () => (await status(page)) === want, `connection status "${want}"`, timeout)
}

async function assertNotReloaded(page) {
  const ok = await page.evaluate(() => window.__e2eNoReload === true)
  if (!ok) throw new Error('the page was reloaded')
}

const itemNames = (page) => page.getByTestId('item-name').allTextContents()
const itemRow = (page, name) =>
  page.getByTestId('item-row').filter({ has: page.getByTestId('item-name').getByText(name, { exact: true }) })
const card = (page, column, title) =>
  page
    .getByTestId(`column-${column}`)
    .getByTestId('task-card')
    .filter({ has: page.getByTestId('task-title').getByText(title, { exact: true }) })

/** The public tenant's item names, as editor's pages show them. */
const publicItemNames = () => sql(`SELECT name FROM items WHERE tenant = 'public' ORDER BY id`)

async function hasItem(page, name) {
  return (await itemNames(page)).includes(name)
}

async function countOf(page, testId) {
  return Number(await page.getByTestId(testId).textContent())
}

/** A development token for `user` (EDITOR's shape) from the server at `base`. */
async function devToken(base, user = EDITOR) {
  const res = await fetch(`${base}/api/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: user.sub, role: user.role, claims: user.claims }),
  })
  const body = await res.json().catch(() => null)
  if (res.status !== 200 || typeof body?.token !== 'string') {
    throw new Error(`no development token: ${res.status} ${JSON.stringify(body)}`)
  }
  return body.token
}

/** A REST call to the main server as editor. */
async function api(method, url, body) {
  state.editorToken ??= await devToken(state.server.base)
  const headers = { authorization: `Bearer ${state.editorToken}` }
  if (body) headers['content-type'] = 'application/json'
  const res = await fetch(state.server.base + url, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : undefined }
}

function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`)
}

// --- tests ---------------------------------------------------------------------------

/**
 * The next request the page sends that matches. Started before the action that
 * sends it; if the test fails before awaiting it, its later rejection (when the
 * page closes) must not abort the whole run as an unhandled rejection.
 */
function nextRequest(page, predicate) {
  const request = page.waitForRequest(predicate)
  request.catch(() => {})
  return request
}

const tests = []
const ONLY = process.env.PGLIVE_E2E_ONLY ? new RegExp(process.env.PGLIVE_E2E_ONLY) : null
const test = (name, fn) => {
  if (ONLY === null || ONLY.test(name)) tests.push({ name, fn })
}

// First, while the database holds only the seeded rows.
test('(p) README screenshots: desktop 1280×800 and phone 375×700 in docs/screenshots', async () => {
  const dir = path.join(ROOT, 'docs', 'screenshots')
  mkdirSync(dir, { recursive: true })
  for (const [file, viewport, inspector] of [
    ['desktop.png', { width: 1280, height: 800 }, false],
    ['desktop-inspector.png', { width: 1280, height: 800 }, true],
    ['phone.png', { width: 375, height: 700 }, false],
  ]) {
    const context = await newContext({ viewport, deviceScaleFactor: viewport.width < 600 ? 2 : 1 })
    try {
      const page = await openPage(context, `screenshot ${file}`)
      await page.getByTestId('task-card').first().waitFor({ state: 'visible' })
      if (inspector) {
        await page.getByTestId('inspector-toggle').click()
        await page.getByTestId('inspector-sub').first().waitFor({ state: 'visible' })
        // A change, so that the inspector shows a version, a last change and a latency.
        sql(`UPDATE items SET name = name WHERE id = (SELECT min(id) FROM items)`)
        await until(
          async () => /\d+ ms/.test((await page.getByTestId('inspector-latency').allTextContents()).join(' ')),
          'a latency to show',
        )
      }
      await sleep(1800) // let highlight animations finish
      await page.screenshot({ path: path.join(dir, file) })
      log(`   screenshot: docs/screenshots/${file}`)
    } finally {
      await context.close().catch(() => {})
    }
  }
})

test('(a) add, rename and delete in one page show in the other', async ({ pageA, pageB }) => {
  const name = `e2e item ${rand()}`
  const renamed = `${name} renamed`
  await pageA.getByTestId('item-name-input').fill(name)
  await pageA.getByTestId('item-add').click()
  await until(() => hasItem(pageB, name), `"${name}" in page B`)
  await until(() => hasItem(pageA, name), `"${name}" in page A`)
  await until(
    async () => (await countOf(pageA, 'items-count')) === (await countOf(pageB, 'items-count')),
    'equal item counts',
  )

  const row = itemRow(pageA, name)
  await row.getByTestId('item-rename').click()
  await pageA.getByTestId('item-rename-input').fill(renamed)
  await pageA.getByTestId('item-rename-input').press('Enter')
  await until(
    async () => (await hasItem(pageB, renamed)) && !(await hasItem(pageB, name)),
    `rename to "${renamed}" in page B`,
  )

  const before = await countOf(pageB, 'items-count')
  await itemRow(pageA, renamed).getByTestId('item-delete').click()
  await until(async () => !(await hasItem(pageB, renamed)), `"${renamed}" gone from page B`)
  await until(async () => (await countOf(pageB, 'items-count')) === before - 1, 'page B count decremented')
  assertEqual(sql(`SELECT count(*) FROM items WHERE name LIKE '${name}%'`), ['0'], 'rows left in the database')
  await assertNotReloaded(pageB)
})

test('(e) tasks board: add, move and filter by assignee, live across pages', async ({ pageA, pageB }) => {
  const title = `e2e task ${rand()}`
  await pageA.getByTestId('task-title-input').fill(title)
  await pageA.getByTestId('task-assignee-input').selectOption('bob')
  await pageA.getByTestId('task-priority-input').selectOption('3')
  const todoBefore = await countOf(pageB, 'count-todo')
  await pageA.getByTestId('task-add').click()
  await until(async () => (await card(pageB, 'todo', title).count()) === 1, 'new task in page B todo column')
  await until(async () => (await countOf(pageB, 'count-todo')) === todoBefore + 1, 'todo count +1 in page B')
  const assignee = await card(pageB, 'todo', title).getByTestId('task-assignee').textContent()
  if (!assignee?.includes('bob')) throw new Error(`assignee shown as ${assignee}`)

  // While it moves, page B must never show the card in two columns at once.
  const cardId = await card(pageB, 'todo', title).getAttribute('data-id')
  await pageB.evaluate((id) => {
    const copies = () => document.querySelectorAll(`[data-testid="task-card"][data-id="${id}"]`).length
    window.__maxCopies = copies()
    const check = () => (window.__maxCopies = Math.max(window.__maxCopies, copies()))
    window.__copiesObserver = new MutationObserver(check)
    window.__copiesObserver.observe(document.body, { childList: true, subtree: true })
  }, cardId)
  await card(pageA, 'todo', title).getByTestId('task-move-next').click()
  await until(
    async () => (await card(pageB, 'in_progress', title).count()) === 1,
    'task moved to in progress in page B',
  )
  await until(async () => (await card(pageB, 'todo', title).count()) === 0, 'task left todo in page B')
  await card(pageA, 'in_progress', title).getByTestId('task-move-prev').click()
  await until(async () => (await card(pageB, 'todo', title).count()) === 1, 'task back in todo in page B')
  await card(pageA, 'todo', title).getByTestId('task-move-next').click()
  await until(async () => (await card(pageB, 'in_progress', title).count()) === 1, 'task in progress again')
  await sleep(400)
  const maxCopies = await pageB.evaluate(() => {
    window.__copiesObserver.disconnect()
    return window.__maxCopies
  })
  assertEqual(maxCopies, 1, 'most copies of the moving card on screen at once')
  await card(pageB, 'in_progress', title).getByTestId('task-move-next').click()
  await until(async () => (await card(pageA, 'done', title).count()) === 1, 'task done in page A')

  // The filter changes the columns' subscriptions.
  await pageB.getByTestId('assignee-filter').selectOption('alice')
  await until(async () => (await card(pageB, 'done', title).count()) === 0, 'bob task hidden under alice filter')
  const aliceDone = Number(
    sql(`SELECT count(*) FROM tasks WHERE status = 'done' AND assignee = 'alice' AND tenant = 'public'`)[0],
  )
  await until(async () => (await countOf(pageB, 'count-done')) === aliceDone, `done count = ${aliceDone} for alice`)
  await pageB.getByTestId('assignee-filter').selectOption('bob')
  await until(async () => (await card(pageB, 'done', title).count()) === 1, 'bob task visible under bob filter')
  // A change while filtered still arrives.
  sql(`UPDATE tasks SET status = 'todo' WHERE title = '${title}'`)
  await until(async () => (await card(pageB, 'todo', title).count()) === 1, 'SQL status change under the bob filter')
  await pageB.getByTestId('assignee-filter').selectOption('unassigned')
  await until(async () => (await card(pageB, 'todo', title).count()) === 0, 'bob task hidden under unassigned filter')
  await pageB.getByTestId('assignee-filter').selectOption('all')
  await until(async () => (await card(pageB, 'todo', title).count()) === 1, 'task visible for everyone')
  const total = Number(sql(`SELECT count(*) FROM tasks WHERE tenant = 'public'`)[0])
  await until(
    async () =>
      (await countOf(pageB, 'tasks-count')) === total &&
      (await countOf(pageB, 'count-todo')) +
        (await countOf(pageB, 'count-in_progress')) +
        (await countOf(pageB, 'count-done')) ===
        total,
    `board counts add up to ${total}`,
  )

  await card(pageA, 'todo', title).getByTestId('task-delete').click()
  await until(async () => (await card(pageB, 'todo', title).count()) === 0, 'deleted task gone from page B')
  await assertNotReloaded(pageA)
  await assertNotReloaded(pageB)
})

test('(b) a row inserted with SQL outside the app appears without reload', async ({ pageA, pageB }) => {
  const name = `from psql ${rand()}`
  sql(`INSERT INTO items (name) VALUES ('${name}')`)
  await until(() => hasItem(pageA, name), `"${name}" in page A`)
  await until(() => hasItem(pageB, name), `"${name}" in page B`)
  const title = `psql task ${rand()}`
  sql(`INSERT INTO tasks (title, status, assignee, priority) VALUES ('${title}', 'in_progress', 'carol', 2)`)
  await until(async () => (await card(pageA, 'in_progress', title).count()) === 1, 'psql task in page A')
  sql(`UPDATE items SET name = '${name} (edited)' WHERE name = '${name}'`)
  await until(() => hasItem(pageB, `${name} (edited)`), 'psql update in page B')
  await assertNotReloaded(pageA)
  await assertNotReloaded(pageB)
})

test('(c) server restart: reconnecting, then live, converging to the database', async ({ pageA, bin }) => {
  const port = state.server.port
  const names = await itemNames(pageA)
  const victim = names[0]
  const kept = names[1]
  const proc = state.server.proc
  state.server = null
  const exited = new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', r)))
  proc.kill('SIGKILL')
  await exited
  await waitStatus(pageA, 'reconnecting', 15_000)

  // Changes while the server is down.
  const added = `while down ${rand()}`
  sql(`INSERT INTO items (name) VALUES ('${added}')`)
  if (victim) sql(`DELETE FROM items WHERE name = '${victim.replaceAll("'", "''")}'`)
  if (kept) {
    sql(
      `UPDATE items SET name = '${kept.replaceAll("'", "''")} (offline edit)' WHERE name = '${kept.replaceAll("'", "''")}'`,
    )
  }
  await sleep(1000)
  const still = await status(pageA)
  if (still !== 'reconnecting') throw new Error(`status while down is "${still}"`)
  await pageA.screenshot({ path: path.join(RESULTS, 'dashboard-reconnecting.png') })

  state.server = await restartServer(bin, port)
  await waitStatus(pageA, 'live', 30_000)
  const expected = publicItemNames()
  await until(
    async () => JSON.stringify(await itemNames(pageA)) === JSON.stringify(expected),
    'page items = database items',
    15_000,
  )
  await until(async () => (await countOf(pageA, 'items-count')) === expected.length, 'count = database count')
  if (!(await hasItem(pageA, added))) throw new Error(`"${added}" missing`)
  await assertNotReloaded(pageA)
})

test('(c2) the second page converged too and writes work after the restart', async ({ pageA, pageB }) => {
  await waitStatus(pageB, 'live', 30_000)
  const expected = publicItemNames()
  await until(
    async () => JSON.stringify(await itemNames(pageB)) === JSON.stringify(expected),
    'page B items = database items',
  )
  const name = `after restart ${rand()}`
  await pageB.getByTestId('item-name-input').fill(name)
  await pageB.getByTestId('item-add').click()
  await until(() => hasItem(pageA, name), 'write after restart reaches page A')
})

test('(d) names the server would refuse are refused in the page first, by the same rules', async ({ pageA }) => {
  // The server's own verdicts, asked directly: the page must agree with them.
  const long = 'x'.repeat(201)
  const direct = await api('POST', '/api/items', { name: long })
  if (direct.status !== 400 || typeof direct.body?.message !== 'string') {
    throw new Error(`expected a 400 ApiError, got ${direct.status} ${JSON.stringify(direct.body)}`)
  }
  // U+0085 is whitespace to the server (Rust's trim), though JavaScript's trim() keeps it.
  for (const blank of ['   ', '\u0085 \u3000']) {
    const r = await api('POST', '/api/items', { name: blank })
    assertEqual(r.status, 400, `the server's answer to ${JSON.stringify(blank)}`)
  }
  const countBefore = Number(sql('SELECT count(*) FROM items')[0])
  const posts = []
  const onRequest = (r) => r.method() === 'POST' && r.url().includes('/api/items') && posts.push(r.url())
  pageA.on('request', onRequest)
  const add = pageA.getByTestId('item-add')
  const problem = pageA.getByTestId('item-name-problem')
  try {
    await pageA.getByTestId('item-name-input').fill(long)
    await until(async () => await add.isDisabled(), 'Add disabled for 201 characters')
    const said = await problem.textContent()
    if (!/too long: 201 of at most 200/.test(said ?? '')) throw new Error(`the form says: ${said}`)
    await add.click({ force: true })
    for (const blank of ['   ', '\u0085 \u3000']) {
      await pageA.getByTestId('item-name-input').fill(blank)
      await until(async () => await add.isDisabled(), `Add disabled for ${JSON.stringify(blank)}`)
      await until(async () => /only spaces/.test((await problem.textContent()) ?? ''), 'the blank name message')
    }
    await pageA.screenshot({ path: path.join(RESULTS, 'dashboard-error.png') })
    // 200 characters, exactly the limit, are fine (200 emoji too: code points are counted, as the server does).
    for (const ok of ['y'.repeat(200), '😀'.repeat(200)]) {
      await pageA.getByTestId('item-name-input').fill(ok)
      await until(async () => !(await add.isDisabled()), 'Add enabled at the limit')
      assertEqual(await problem.count(), 0, 'no message at the limit')
    }
    await pageA.getByTestId('item-name-input').fill('')
    await sleep(300)
  } finally {
    pageA.off('request', onRequest)
  }
  assertEqual(posts, [], 'POSTs sent for names the page refused')
  assertEqual(sql('SELECT count(*) FROM items')[0], String(countBefore), 'no row written')

  // A task title: the same rule (text(max = 200)) on another table.
  await pageA.getByTestId('task-title-input').fill('t'.repeat(201))
  await until(async () => await pageA.getByTestId('task-add').isDisabled(), 'Add task disabled for 201 characters')
  await pageA.getByTestId('task-title-problem').waitFor({ state: 'visible' })
  await pageA.getByTestId('task-title-input').fill('')

  // Renaming to an invalid name: Save is disabled and says why; Escape closes; the name stays.
  const first = (await itemNames(pageA))[0]
  await itemRow(pageA, first).getByTestId('item-rename').click()
  await pageA.getByTestId('item-rename-input').fill('y'.repeat(300))
  await until(async () => await pageA.getByTestId('item-rename-save').isDisabled(), 'Save disabled')
  await pageA.getByTestId('item-rename-problem').waitFor({ state: 'visible' })
  await pageA.getByTestId('item-rename-input').press('Escape')
  await until(async () => (await pageA.getByTestId('item-editor').count()) === 0, 'the editor closed')
  if (!(await hasItem(pageA, first))) throw new Error('original name lost after a refused rename')
})

test('(d2) an edit whose row someone else renames, then deletes, says so and keeps the typed text', async ({
  pageA,
}) => {
  const name = `edited elsewhere ${rand()}`
  const [id] = sql(`INSERT INTO items (name) VALUES ('${name}') RETURNING id`)
  await until(() => hasItem(pageA, name), `"${name}" in page A`)
  await itemRow(pageA, name).getByTestId('item-rename').click()
  const input = pageA.getByTestId('item-rename-input')
  const mine = `${name} (mine)`
  await input.fill(mine)
  const conflict = pageA.getByTestId('item-edit-conflict')

  sql(`UPDATE items SET name = '${name} (theirs)' WHERE id = ${id}`)
  await until(async () => (await conflict.getAttribute('data-conflict')) === 'changed', 'the "changed" notice')
  const said = await conflict.textContent()
  if (!said?.includes(`${name} (theirs)`)) throw new Error(`the notice does not name the new value: ${said}`)
  assertEqual(await input.inputValue(), mine, 'typed text after their rename')
  // Two rows after it, so that when it leaves the list its element must move
  // past them to the end (with none after it, it would not move at all).
  const after = [`${name} after 1`, `${name} after 2`]
  sql(`INSERT INTO items (name) VALUES ('${after[0]}'), ('${after[1]}')`)
  for (const n of after) await until(() => hasItem(pageA, n), `"${n}" in page A`)

  // Marks the editor's element, to tell the same editor from a new one later.
  await pageA.getByTestId('item-editor').evaluate((el) => (el.dataset.e2eMark = 'before the delete'))
  sql(`DELETE FROM items WHERE id = ${id}`)
  await until(async () => (await conflict.getAttribute('data-conflict')) === 'deleted', 'the "deleted" notice')
  assertEqual(await pageA.getByTestId('item-editor').count(), 1, 'editors open after the delete')
  // The same row element, marked as gone, holds the editor: no copy of the
  // row stays in the list, fading out with a second editor in it.
  assertEqual(
    await pageA.locator(`[data-testid="item-row-ghost"][data-id="${id}"] [data-testid="item-editor"]`).count(),
    1,
    'the editor in the row marked as gone',
  )
  assertEqual(
    await pageA.getByTestId('item-editor').getAttribute('data-e2e-mark'),
    'before the delete',
    'the same editor element as before the delete',
  )
  assertEqual(await pageA.locator(`[data-testid="item-row"][data-id="${id}"]`).count(), 0, 'the row in the list')
  assertEqual(await input.inputValue(), mine, 'typed text after their delete')
  // The focus stayed in the editor: typing goes on where it was.
  await pageA.keyboard.type(' and more')
  const typed = `${mine} and more`
  assertEqual(await input.inputValue(), typed, 'typing on after their delete')
  // The typed name can still become an item.
  await pageA.getByTestId('item-edit-add-new').click()
  await until(() => hasItem(pageA, typed), `"${typed}" added as a new item`)
  await until(async () => (await pageA.getByTestId('item-editor').count()) === 0, 'the editor closed')
  sql(`DELETE FROM items WHERE name IN ('${typed}', '${after[0]}', '${after[1]}')`)
})

test('(f) bigint keys above 2^53 round-trip from psql to the page and back', async ({ pageA, pageB }) => {
  // As JavaScript numbers both are 2^53: a client that rounded would show one
  // row twice, or rename and delete the wrong one.
  const id = '9007199254740993'
  const twin = '9007199254740992'
  const name = `bigint ${rand()}`
  sql(`INSERT INTO items (id, name) VALUES (${id}, '${name}'), (${twin}, '${name} twin')`)
  const row = (page, key) => page.locator(`[data-testid="item-row"][data-id="${key}"]`)
  for (const [page, label] of [
    [pageA, 'page A'],
    [pageB, 'page B'],
  ]) {
    await until(async () => (await row(page, id).count()) === 1, `item ${id} in ${label}`)
    await until(async () => (await row(page, twin).count()) === 1, `item ${twin} in ${label}`)
    assertEqual(await row(page, id).getByTestId('item-id').textContent(), `#${id}`, `id shown in ${label}`)
    assertEqual(await row(page, id).getByTestId('item-name').textContent(), name, `name in ${label}`)
    assertEqual(await row(page, twin).getByTestId('item-id').textContent(), `#${twin}`, `twin shown in ${label}`)
  }

  // Rename through the UI: the PATCH goes to the exact key.
  const patch = nextRequest(pageA, (r) => r.method() === 'PATCH' && r.url().includes('/api/items/'))
  await row(pageA, id).getByTestId('item-rename').click()
  await pageA.getByTestId('item-rename-input').fill(`${name} renamed`)
  await pageA.getByTestId('item-rename-input').press('Enter')
  const patchReq = await patch
  assertEqual(new URL(patchReq.url()).pathname, `/api/items/${id}`, 'PATCH path')
  assertEqual((await patchReq.response())?.status(), 200, 'PATCH status')
  await until(
    async () => (await row(pageB, id).getByTestId('item-name').textContent()) === `${name} renamed`,
    'rename in page B',
  )
  assertEqual(sql(`SELECT name FROM items WHERE id = ${id}`), [`${name} renamed`], 'renamed row in the database')
  assertEqual(sql(`SELECT name FROM items WHERE id = ${twin}`), [`${name} twin`], 'twin untouched')

  // Delete through the UI: only that row goes.
  const del = nextRequest(pageA, (r) => r.method() === 'DELETE' && r.url().includes('/api/items/'))
  await row(pageA, id).getByTestId('item-delete').click()
  const delReq = await del
  assertEqual(new URL(delReq.url()).pathname, `/api/items/${id}`, 'DELETE path')
  assertEqual((await delReq.response())?.status(), 204, 'DELETE status')
  await until(async () => (await row(pageB, id).count()) === 0, `item ${id} gone from page B`)
  assertEqual(sql(`SELECT count(*) FROM items WHERE id = ${id}`), ['0'], 'deleted in the database')
  if ((await row(pageA, twin).count()) !== 1 || (await row(pageB, twin).count()) !== 1) {
    throw new Error(`item ${twin} went away with ${id}`)
  }
  sql(`DELETE FROM items WHERE id = ${twin}`)
  await until(async () => (await row(pageA, twin).count()) === 0, `item ${twin} gone from page A`)
  await assertNotReloaded(pageA)
})

test('(g) comments: uuid keys live from psql and the UI in the open panel', async ({ pageA, pageB }) => {
  const title = `commented ${rand()}`
  const [taskId] = sql(`INSERT INTO tasks (title, status, priority) VALUES ('${title}', 'todo', 3) RETURNING id`)
  await until(async () => (await card(pageA, 'todo', title).count()) === 1, 'task in page A')
  const panel = (page) => page.getByTestId('comments-panel')
  const comment = (page, id) => panel(page).locator(`[data-testid="comment"][data-id="${id}"]`)
  const commentIds = (page) =>
    panel(page)
      .getByTestId('comment')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-id')))

  // Selecting the card opens its comments.
  await card(pageA, 'todo', title).getByTestId('task-title').click()
  await until(async () => (await panel(pageA).getAttribute('data-task-id')) === taskId, 'comments panel for the task')
  await until(async () => (await panel(pageA).getByTestId('comments-empty').count()) === 1, 'no comments yet')
  const shownTitle = await panel(pageA).getByTestId('comments-task').textContent()
  if (!shownTitle?.includes(title)) throw new Error(`panel names the task as ${shownTitle}`)

  // (b) psql insert, update and delete show live.
  const body = `from psql ${rand()}`
  const [uuid] = sql(`INSERT INTO comments (task_id, author, body) VALUES (${taskId}, 'psql', '${body}') RETURNING id`)
  if (!/^[0-9a-f-]{36}$/.test(uuid)) throw new Error(`not a uuid: ${uuid}`)
  await until(async () => (await comment(pageA, uuid).count()) === 1, `comment ${uuid} in page A`)
  assertEqual(await comment(pageA, uuid).getByTestId('comment-body').textContent(), body, 'comment body')
  assertEqual(await comment(pageA, uuid).getByTestId('comment-edited').count(), 0, 'no edited marker yet')
  sql(`UPDATE comments SET body = '${body} (edited)' WHERE id = '${uuid}'`)
  await until(
    async () => (await comment(pageA, uuid).getByTestId('comment-body').textContent()) === `${body} (edited)`,
    'edited body in page A',
  )
  await until(async () => (await comment(pageA, uuid).getByTestId('comment-edited').count()) === 1, 'edited marker')

  // Newest first; an older comment sorts below, and the hour range hides it.
  const [old] = sql(
    `INSERT INTO comments (task_id, author, body, created_at) VALUES (${taskId}, 'psql', 'three hours ago', now() - interval '3 hours') RETURNING id`,
  )
  await until(async () => JSON.stringify(await commentIds(pageA)) === JSON.stringify([uuid, old]), 'newest first')
  await panel(pageA).getByTestId('comments-range').selectOption('hour')
  await until(async () => JSON.stringify(await commentIds(pageA)) === JSON.stringify([uuid]), 'last hour only')
  await panel(pageA).getByTestId('comments-range').selectOption('all')
  await until(async () => (await commentIds(pageA)).length === 2, 'all comments again')
  // Recently edited: the edited comment only.
  await panel(pageA).getByTestId('comments-order').selectOption('edited')
  await until(async () => JSON.stringify(await commentIds(pageA)) === JSON.stringify([uuid]), 'edited comments only')
  await panel(pageA).getByTestId('comments-order').selectOption('newest')
  await until(async () => (await commentIds(pageA)).length === 2, 'newest first again')

  sql(`DELETE FROM comments WHERE id = '${uuid}'`)
  await until(async () => (await comment(pageA, uuid).count()) === 0, `comment ${uuid} gone from page A`)

  // Through the UI: add in page A, see it in page B, edit and delete there.
  await card(pageB, 'todo', title).getByTestId('task-comments').click()
  await until(async () => (await panel(pageB).getAttribute('data-task-id')) === taskId, 'panel in page B')
  const text = `from the browser ${rand()}`
  await panel(pageA).getByTestId('comment-author-input').fill('dana')
  await panel(pageA).getByTestId('comment-body-input').fill(text)
  await panel(pageA).getByTestId('comment-add').click()
  const added = async () => {
    const rows = sql(`SELECT id FROM comments WHERE body = '${text}'`)
    return rows.length === 1 ? rows[0] : null
  }
  const mine = await until(added, 'comment in the database')
  await until(async () => (await comment(pageB, mine).count()) === 1, 'UI comment in page B')
  assertEqual(await comment(pageB, mine).getByTestId('comment-author').textContent(), 'dana', 'author')
  // The form clears when page A's POST answers, which can come after page B has the comment
  // over its socket: wait for it rather than racing the response.
  await until(
    async () => (await panel(pageA).getByTestId('comment-body-input').inputValue()) === '',
    'the comment form cleared',
  )

  const patch = nextRequest(pageB, (r) => r.method() === 'PATCH' && r.url().includes('/api/comments/'))
  await comment(pageB, mine).getByTestId('comment-edit').click()
  await panel(pageB).getByTestId('comment-edit-input').fill(`${text} (fixed)`)
  await panel(pageB).getByTestId('comment-edit-save').click()
  assertEqual(new URL((await patch).url()).pathname, `/api/comments/${mine}`, 'comment PATCH path')
  await until(
    async () => (await comment(pageA, mine).getByTestId('comment-body').textContent()) === `${text} (fixed)`,
    'UI edit in page A',
  )
  await until(async () => (await comment(pageA, mine).getByTestId('comment-edited').count()) === 1, 'edited in page A')

  const del = nextRequest(pageB, (r) => r.method() === 'DELETE' && r.url().includes('/api/comments/'))
  await comment(pageB, mine).getByTestId('comment-delete').click()
  assertEqual(new URL((await del).url()).pathname, `/api/comments/${mine}`, 'comment DELETE path')
  await until(async () => (await comment(pageA, mine).count()) === 0, 'UI delete in page A')
  assertEqual(sql(`SELECT count(*) FROM comments WHERE id = '${mine}'`), ['0'], 'comment deleted in the database')
  await pageA.screenshot({ path: path.join(RESULTS, 'dashboard-comments.png') })

  // An edit whose comment psql edits, then deletes, says so and keeps the
  // typed text; Escape then closes the editor, not the panel.
  const [other] = sql(
    `INSERT INTO comments (task_id, author, body) VALUES (${taskId}, 'psql', 'to be edited elsewhere') RETURNING id`,
  )
  await until(async () => (await comment(pageB, other).count()) === 1, 'the comment to edit in page B')
  await comment(pageB, other).getByTestId('comment-edit').click()
  const editInput = panel(pageB).getByTestId('comment-edit-input')
  await editInput.fill('my version')
  const conflict = panel(pageB).getByTestId('comment-edit-conflict')
  sql(`UPDATE comments SET body = 'their version' WHERE id = '${other}'`)
  await until(async () => (await conflict.getAttribute('data-conflict')) === 'changed', 'the "changed" notice')
  assertEqual(await editInput.inputValue(), 'my version', 'typed text after their edit')
  // Two newer comments above it, so that when it leaves the list its element
  // must move past them to the top.
  const newer = sql(
    `INSERT INTO comments (task_id, author, body) VALUES (${taskId}, 'psql', 'newer 1'), (${taskId}, 'psql', 'newer 2') RETURNING id`,
  )
  for (const n of newer) await until(async () => (await comment(pageB, n).count()) === 1, `comment ${n} in page B`)
  await panel(pageB)
    .getByTestId('comment-editor')
    .evaluate((el) => (el.dataset.e2eMark = 'before the delete'))
  sql(`DELETE FROM comments WHERE id = '${other}'`)
  await until(async () => (await conflict.getAttribute('data-conflict')) === 'deleted', 'the "deleted" notice')
  assertEqual(await panel(pageB).getByTestId('comment-editor').count(), 1, 'editors open after the delete')
  assertEqual(
    await panel(pageB)
      .locator(`[data-testid="comment-ghost"][data-id="${other}"] [data-testid="comment-editor"]`)
      .count(),
    1,
    'the editor in the comment marked as gone',
  )
  assertEqual(
    await panel(pageB).getByTestId('comment-editor').getAttribute('data-e2e-mark'),
    'before the delete',
    'the same editor element as before the delete',
  )
  assertEqual(await comment(pageB, other).count(), 0, 'the deleted comment in the list')
  assertEqual(await editInput.inputValue(), 'my version', 'typed text after their delete')
  // The focus stayed in the editor: typing goes on where it was.
  await pageB.keyboard.type(' and more')
  assertEqual(await editInput.inputValue(), 'my version and more', 'typing on after their delete')
  await editInput.press('Escape')
  await until(async () => (await panel(pageB).getByTestId('comment-editor').count()) === 0, 'the editor closed')
  assertEqual(await panel(pageB).count(), 1, 'comment panels open in page B after Escape in the editor')

  // Deleting the task takes its comments with it (ON DELETE CASCADE).
  sql(`DELETE FROM tasks WHERE id = ${taskId}`)
  await until(async () => (await comment(pageA, old).count()) === 0, 'cascaded comment gone from page A')
  await until(
    async () => (await panel(pageB).getByTestId('comments-task').textContent())?.includes('deleted'),
    'page B says the task was deleted',
  )

  // Escape and the close button close the panel.
  await panel(pageA).getByTestId('comments-range').press('Escape')
  await panel(pageB).getByTestId('comments-close').click()
  await until(async () => (await panel(pageA).count()) === 0 && (await panel(pageB).count()) === 0, 'panels closed')
  await assertNotReloaded(pageA)
  await assertNotReloaded(pageB)
})

test("(h) two users side by side each see only their tenant's rows, live", async ({ bin }) => {
  // A server with authentication: development tokens, tenant-scoped
  // contexts, and the anonymous role for pages that sign in as nobody.
  const server = await startExtraServer(bin)
  const contexts = []
  const newPage = async (label, url = '/') => {
    // Anonymous to begin with: the pages sign in with the switcher.
    const context = await newContext({ viewport: { width: 1280, height: 800 } }, null)
    contexts.push(context)
    return openPage(context, label, server.base, url)
  }
  try {
    // Alice's tokens live 4 s, so that her page refreshes them in band while the test runs.
    const alice = await newPage('alice', '/?token_ttl=4')
    const bob = await newPage('bob')
    const anon = await newPage('anonymous')
    await signIn(alice, 'alice')
    await signIn(bob, 'bob')
    const namesOf = (tenant) => sql(`SELECT name FROM items WHERE tenant = '${tenant}' ORDER BY id`)
    const converged = async (page, tenant, what) =>
      until(async () => JSON.stringify(await itemNames(page)) === JSON.stringify(namesOf(tenant)), what)
    await converged(alice, 'acme', 'alice sees the acme items')
    await converged(bob, 'globex', 'bob sees the globex items')
    await converged(anon, 'public', 'anonymous sees the public items')

    // Anonymous → alice moved the subscriptions in band: one connection,
    // and the inspector's status history shows no reconnect.
    assertEqual((await liveStats(alice)).connections, 1, "alice's connections after the switch")
    await alice.getByTestId('inspector-toggle').click()
    const switched = await alice
      .getByTestId('inspector-history')
      .locator('li')
      .evaluateAll((els) => els.map((e) => e.dataset.state))
    if (switched.includes('reconnecting')) {
      throw new Error(`the user switch shows as a reconnect (newest first): ${switched.join(', ')}`)
    }
    await alice.getByTestId('inspector-close').click()

    // psql writes to each tenant reach that tenant's page only.
    const acme = `acme item ${rand()}`
    const globex = `globex item ${rand()}`
    sql(`INSERT INTO items (name, tenant) VALUES ('${acme}', 'acme'), ('${globex}', 'globex')`)
    await until(() => hasItem(alice, acme), `"${acme}" in alice's page`)
    await until(() => hasItem(bob, globex), `"${globex}" in bob's page`)
    const acmeTask = `acme task ${rand()}`
    const globexTask = `globex task ${rand()}`
    sql(
      `INSERT INTO tasks (title, status, priority, tenant) VALUES ('${acmeTask}', 'in_progress', 2, 'acme'), ('${globexTask}', 'in_progress', 2, 'globex')`,
    )
    await until(async () => (await card(alice, 'in_progress', acmeTask).count()) === 1, 'acme task for alice')
    await until(async () => (await card(bob, 'in_progress', globexTask).count()) === 1, 'globex task for bob')

    // A write through the page is the writer's tenant's (the token's claim).
    const mine = `alice wrote ${rand()}`
    await alice.getByTestId('item-name-input').fill(mine)
    await alice.getByTestId('item-add').click()
    await until(() => hasItem(alice, mine), `"${mine}" in alice's page`)
    assertEqual(sql(`SELECT tenant FROM items WHERE name = '${mine}'`), ['acme'], "the new row's tenant")

    // A later globex write reaching bob means whatever was to reach him has.
    const marker = `globex marker ${rand()}`
    sql(`INSERT INTO items (name, tenant) VALUES ('${marker}', 'globex')`)
    await until(() => hasItem(bob, marker), "the marker in bob's page")
    await converged(alice, 'acme', 'alice: acme items only')
    await converged(bob, 'globex', 'bob: globex items only')
    await converged(anon, 'public', 'anonymous: public items only')
    for (const [page, label, foreign] of [
      [alice, 'alice', [globex, marker, globexTask]],
      [bob, 'bob', [acme, mine, acmeTask]],
      [anon, 'anonymous', [acme, globex, mine, marker, acmeTask, globexTask]],
    ]) {
      const names = await itemNames(page)
      const titles = await page.getByTestId('task-title').allTextContents()
      const leaked = foreign.filter((n) => names.includes(n) || titles.includes(n))
      if (leaked.length > 0) throw new Error(`${label} sees another tenant's rows: ${leaked.join(', ')}`)
    }

    // Alice's page refreshed her short-lived token in band and stayed live.
    await until(async () => (await liveStats(alice)).authentications >= 3, "two refreshes of alice's token", 20_000)
    const stats = await liveStats(alice)
    assertEqual(stats.connections, 1, "alice's connections (refreshes need no reconnect)")
    assertEqual(await status(alice), 'live', "alice's status after the refreshes")
    const late = `after refresh ${rand()}`
    sql(`INSERT INTO items (name, tenant) VALUES ('${late}', 'acme')`)
    await until(() => hasItem(alice, late), 'a write after the refreshes reaches alice')

    await alice.screenshot({ path: path.join(RESULTS, 'dashboard-alice.png') })
    await bob.screenshot({ path: path.join(RESULTS, 'dashboard-bob.png') })

    // The anonymous role cannot write: a refused write shows a notice over
    // the page (the layout does not move), and after a refused save Escape
    // still closes the editor (the Save button that had the focus was
    // disabled while saving, which drops the focus).
    const layoutTop = () => anon.evaluate(() => document.querySelector('main.layout').getBoundingClientRect().top)
    const topBefore = await layoutTop()
    await anon.getByTestId('item-name-input').fill(`anonymous write ${rand()}`)
    await anon.getByTestId('item-add').click()
    await anon.getByTestId('error').first().waitFor({ state: 'visible' })
    assertEqual(await layoutTop(), topBefore, 'the layout top with a notice shown')
    const publicName = (await itemNames(anon))[0]
    await itemRow(anon, publicName).getByTestId('item-rename').click()
    await anon.getByTestId('item-rename-input').fill(`${publicName} renamed anonymously`)
    await anon.getByTestId('item-rename-save').click()
    await until(
      async () => (await anon.getByTestId('error').filter({ hasText: 'Could not rename the item' }).count()) === 1,
      'the refused rename notice',
    )
    assertEqual(
      await anon.getByTestId('item-rename-input').inputValue(),
      `${publicName} renamed anonymously`,
      'typed text after a refused save',
    )
    await anon.keyboard.press('Escape')
    await until(async () => (await anon.getByTestId('item-editor').count()) === 0, 'Escape closed the editor')
    if (!(await hasItem(anon, publicName))) throw new Error('the name changed although the save was refused')

    // Switching user in place: bob's page becomes alice's, without a reload.
    await signIn(bob, 'alice')
    await converged(bob, 'acme', 'the switched page shows acme items')
    if (await hasItem(bob, marker)) throw new Error('globex rows stayed after the switch')
    await assertNotReloaded(bob)
  } finally {
    for (const c of contexts) await c.close().catch(() => {})
    await stopProcess(server)
  }
})

test('(i) a dropped connection resumes: rows stay on screen, writes made while away arrive', async ({ bin }) => {
  // The page talks to the server through a proxy that can cut its
  // connections while the server (and its groups, kept by a second page)
  // stays up, so the reconnect can resume instead of downloading again.
  let target = 0
  const proxy = await startProxy(() => target)
  const server = await startExtraServer(bin, { args: ['--allowed-origins', proxy.base] })
  target = server.port
  const contexts = []
  try {
    const direct = await newContext()
    const proxied = await newContext()
    contexts.push(direct, proxied)
    const keeper = await openPage(direct, 'resume (direct)', server.base)
    const page = await openPage(proxied, 'resume (proxied)', proxy.base)
    const dbNames = publicItemNames
    await until(async () => JSON.stringify(await itemNames(page)) === JSON.stringify(dbNames()), 'page = database')
    await until(async () => JSON.stringify(await itemNames(keeper)) === JSON.stringify(dbNames()), 'keeper = database')
    const before = await liveStats(page)
    const rowsBefore = (await itemNames(page)).length

    // Watch the rows on screen: the count must never fall to zero.
    await page.evaluate(() => {
      const count = () => document.querySelectorAll('[data-testid="item-row"]').length
      window.__minRows = count()
      window.__states = []
      const check = () => {
        window.__minRows = Math.min(window.__minRows, count())
        const s = document.querySelector('[data-testid="conn-status"]')?.textContent ?? ''
        if (window.__states.at(-1) !== s) window.__states.push(s)
      }
      check()
      new MutationObserver(check).observe(document.body, { childList: true, subtree: true, characterData: true })
      window.__rowWatch = setInterval(check, 10)
    })

    proxy.cut()
    await waitStatus(page, 'reconnecting', 15_000)
    const [first, second] = sql(`SELECT id FROM items WHERE tenant = 'public' ORDER BY id LIMIT 2`)
    const added = `while away ${rand()}`
    sql(`INSERT INTO items (name) VALUES ('${added}')`)
    sql(`UPDATE items SET name = name || ' (edited while away)' WHERE id = ${first}`)
    sql(`DELETE FROM items WHERE id = ${second}`)
    await until(() => hasItem(keeper, added), 'the writes reach the connected page')
    await sleep(800)
    assertEqual(await status(page), 'reconnecting', 'status while cut off')
    await page.screenshot({ path: path.join(RESULTS, 'dashboard-resuming.png') })

    proxy.restore()
    await waitStatus(page, 'live', 30_000)
    await until(
      async () => JSON.stringify(await itemNames(page)) === JSON.stringify(dbNames()),
      'page = database after the resume',
    )
    if (!(await hasItem(page, added))) throw new Error(`"${added}" missing`)
    const after = await liveStats(page)
    const seen = await page.evaluate(() => {
      clearInterval(window.__rowWatch)
      return { minRows: window.__minRows, states: window.__states }
    })
    log(
      `   resume: ${after.resumes - before.resumes} resumed, ${after.snapshots - before.snapshots} snapshots, ` +
        `fewest rows on screen ${seen.minRows} (of ${rowsBefore}), statuses ${seen.states.join(' → ')}`,
    )
    if (seen.minRows === 0) throw new Error('the rows left the screen during the reconnect')
    if (seen.minRows < rowsBefore - 1) throw new Error(`rows on screen fell to ${seen.minRows} of ${rowsBefore}`)
    if (after.connections <= before.connections) throw new Error('the page did not reconnect')
    if (after.resumes <= before.resumes) throw new Error('no subscription was resumed')
    assertEqual(after.snapshots, before.snapshots, 'snapshots after the reconnect (all resumed)')
    if (seen.states.some((s) => s === 'connecting' || s.startsWith('delayed'))) {
      throw new Error(`unexpected statuses: ${seen.states.join(' → ')}`)
    }
    await assertNotReloaded(page)
  } finally {
    for (const c of contexts) await c.close().catch(() => {})
    proxy.close()
    await stopProcess(server)
  }
})

test('(j) PostgreSQL stopped: delayed within 2 s, writes say why; started again: live and converged', async ({
  bin,
}) => {
  // A cluster of this test's own: stopping the shared one would break
  // whatever else uses it.
  const cluster = { dir: path.join(os.tmpdir(), `pglive-e2e-outage-${rand()}`), port: await freePort() }
  let adminUrl
  try {
    adminUrl = startCluster(cluster)
  } catch (e) {
    stopCluster(cluster)
    return `skipped: no throwaway PostgreSQL cluster could be started (${e.message.split('\n')[0]})`
  }
  const u = new URL(adminUrl)
  u.pathname = '/pglive_outage'
  const dbUrl = u.toString()
  let server = null
  const contexts = []
  try {
    const created = psqlRaw(adminUrl, 'CREATE DATABASE pglive_outage')
    if (created.status !== 0) throw new Error(`CREATE DATABASE failed: ${created.stderr}`)
    run(bin, ['migrate', '--database-url', dbUrl])
    const q = (query) => {
      const r = psqlRaw(dbUrl, query)
      if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`)
      return r.stdout.split('\n').filter((l) => l !== '')
    }
    q(`INSERT INTO items (name) VALUES ('Anvil'), ('Bicycle'), ('Compass')`)
    server = await startExtraServer(bin, { dbUrl })
    // Minted now: the token endpoint checks the role against PostgreSQL.
    const token = await devToken(server.base)
    const context = await newContext()
    contexts.push(context)
    const page = await openPage(context, 'outage', server.base)
    const pillState = () => page.getByTestId('inspector-toggle').getAttribute('data-state')
    assertEqual(await pillState(), 'live', "the inspector pill's state while PostgreSQL is up")
    const dbNames = () => q('SELECT name FROM items ORDER BY id')
    await until(async () => JSON.stringify(await itemNames(page)) === JSON.stringify(dbNames()), 'page = database')

    stopCluster(cluster, { remove: false })
    const stopped = Date.now()
    await until(async () => (await status(page))?.startsWith('delayed'), 'the delayed status', 2_000)
    log(`   "${await status(page)}" shown ${Date.now() - stopped} ms after PostgreSQL stopped`)
    // The server sees its change feed go first, and names the cause once
    // its database probe (every 2 s) fails too.
    await until(
      async () => (await status(page)) === 'delayed — database unreachable',
      'the status "delayed — database unreachable"',
      10_000,
    )
    log(`   "delayed — database unreachable" shown ${Date.now() - stopped} ms after PostgreSQL stopped`)
    // The inspector's pill says what the header says, from the same status.
    assertEqual(await pillState(), 'delayed', "the inspector pill's state while PostgreSQL is down")
    assertEqual(await pillState(), await page.getByTestId('conn').getAttribute('data-state'), 'pill and header')
    await page.screenshot({ path: path.join(RESULTS, 'dashboard-delayed.png') })

    // A write says why it failed, in the server's words.
    const direct = await fetch(server.base + '/api/items', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'probe' }),
    })
    const body = await direct.json()
    assertEqual(direct.status, 503, 'REST status while PostgreSQL is down')
    const name = `while down ${rand()}`
    await page.getByTestId('item-name-input').fill(name)
    await page.getByTestId('item-add').click()
    const notice = page.getByTestId('error').filter({ hasText: body.message })
    await until(async () => (await notice.count()) === 1, `the notice "${body.message}"`)
    const text = await notice.first().textContent()
    if (!/database/i.test(text ?? '')) throw new Error(`the notice does not say what is wrong: ${text}`)
    log(`   notice: ${text?.replace(/\s+/g, ' ').trim()}`)
    // The rows stay on screen meanwhile.
    assertEqual(await itemNames(page), ['Anvil', 'Bicycle', 'Compass'], 'rows while PostgreSQL is down')

    startCluster(cluster)
    await waitStatus(page, 'live', 30_000)
    await until(async () => (await pillState()) === 'live', 'the pill live again')
    const back = `after the outage ${rand()}`
    q(`INSERT INTO items (name) VALUES ('${back}')`)
    await until(async () => JSON.stringify(await itemNames(page)) === JSON.stringify(dbNames()), 'converged again')
    if (!(await hasItem(page, back))) throw new Error(`"${back}" missing`)
    await assertNotReloaded(page)
  } finally {
    for (const c of contexts) await c.close().catch(() => {})
    if (server) await stopProcess(server)
    stopCluster(cluster)
  }
})

test('(k) the React example frontend: a psql write arrives live', async ({ bin }) => {
  // The example has no sign-in: it reads as the anonymous role, the public tenant.
  const server = await startExtraServer(bin, { webDir: EXAMPLE_DIST })
  const context = await newContext({}, null)
  try {
    const page = await context.newPage()
    page.on('pageerror', (e) => state.pageErrors.push(`react example: ${e.message}`))
    await page.goto(server.base + '/')
    const names = () => page.getByTestId('example-item').allTextContents()
    const newest = () => sql(`SELECT name FROM items WHERE tenant = 'public' ORDER BY id DESC LIMIT 50`)
    await until(async () => (await page.getByTestId('example-status').textContent()) === 'live', 'example live')
    await until(async () => JSON.stringify(await names()) === JSON.stringify(newest()), 'example = database')
    const name = `react ${rand()}`
    sql(`INSERT INTO items (name) VALUES ('${name}')`)
    await until(async () => (await names())[0] === name, `"${name}" first in the React page`)
    await page.screenshot({ path: path.join(RESULTS, 'example-react.png') })
  } finally {
    await context.close().catch(() => {})
    await stopProcess(server)
  }
})

/** Whether the page scrolls sideways (the document is wider than the viewport). */
const overflowX = (page) =>
  page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }))

/** Whether `locator`'s box is inside the viewport. */
const inViewport = (locator) =>
  locator.evaluate((el) => {
    const r = el.getBoundingClientRect()
    return r.bottom > 0 && r.top < window.innerHeight && r.height > 0
  })

test('(l) phones: no sideways scrolling at 375 and 320 px with 200-character names; the status stays in sight', async () => {
  const long = `${'W'.repeat(150)}${rand()}`.padEnd(200, 'W')
  const longTitle = `Long${'T'.repeat(190)}${rand()}`.slice(0, 200)
  const [itemId] = sql(`INSERT INTO items (name) VALUES ('${long}') RETURNING id`)
  const [taskId] = sql(`INSERT INTO tasks (title, status, priority) VALUES ('${longTitle}', 'todo', 3) RETURNING id`)
  const context = await newContext({
    viewport: { width: 375, height: 700 },
    isMobile: true,
    hasTouch: true,
  })
  try {
    const page = await openPage(context, 'phone')
    await until(
      async () => (await page.locator(`[data-testid="item-row"][data-id="${itemId}"]`).count()) === 1,
      'long item',
    )
    await until(
      async () => (await page.locator(`[data-testid="task-card"][data-id="${taskId}"]`).count()) === 1,
      'long task',
    )
    for (const [width, height] of [
      [375, 700],
      [320, 640],
    ]) {
      await page.setViewportSize({ width, height })
      await sleep(300)
      const o = await overflowX(page)
      if (o.scrollWidth > o.innerWidth) {
        const wide = await page.evaluate(() =>
          [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
            .slice(0, 5)
            .map((el) => `${el.tagName.toLowerCase()}.${el.className}`),
        )
        throw new Error(`at ${width}×${height} the page is ${o.scrollWidth} px wide (${wide.join(', ')})`)
      }
      // The long name stays inside its row.
      const row = await page.locator(`[data-testid="item-row"][data-id="${itemId}"]`).boundingBox()
      if (!row || row.x < 0 || row.x + row.width > width)
        throw new Error(`the long item's row is ${JSON.stringify(row)}`)
      // Scrolled to the bottom, the status pill is still on screen.
      await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight))
      await sleep(200)
      const scrolled = await page.evaluate(() => window.scrollY)
      if (scrolled < 200) throw new Error(`the page did not scroll (scrollY ${scrolled})`)
      if (!(await inViewport(page.getByTestId('conn')))) throw new Error(`at ${width} px the status left the screen`)
      await page.evaluate(() => window.scrollTo(0, 0))
    }
  } finally {
    await context.close().catch(() => {})
    sql(`DELETE FROM items WHERE id = ${itemId}`)
    sql(`DELETE FROM tasks WHERE id = ${taskId}`)
  }
})

test('(m) a change that lands below the fold shows "new below", which scrolls to it', async () => {
  const context = await newContext({ viewport: { width: 375, height: 700 } })
  try {
    const page = await openPage(context, 'phone cue')
    await page.getByTestId('column-done').waitFor({ state: 'attached' })
    if (await inViewport(page.getByTestId('column-done'))) throw new Error('the done column is not below the fold')
    assertEqual(await page.getByTestId('new-below').count(), 0, '"new below" chips before the change')
    const title = `below the fold ${rand()}`
    const [id] = sql(`INSERT INTO tasks (title, status, priority) VALUES ('${title}', 'done', 0) RETURNING id`)
    const chip = page.getByTestId('new-below')
    await chip.waitFor({ state: 'visible' })
    const text = await chip.textContent()
    if (!/\d+ new below/.test(text ?? '')) throw new Error(`the chip says ${text}`)
    const newCard = page.locator(`[data-testid="task-card"][data-id="${id}"]`)
    if (await inViewport(newCard)) throw new Error('the new card is on screen already')
    // The chip takes the reader to the nearest change below; a few clicks at most reach this one.
    for (let i = 0; i < 5 && !(await inViewport(newCard)); i++) {
      if ((await chip.count()) === 0) break
      await chip.click()
      await sleep(900)
    }
    await until(() => inViewport(newCard), 'the new card scrolled into view', 5_000)
    sql(`DELETE FROM tasks WHERE id = ${id}`)
  } finally {
    await context.close().catch(() => {})
  }
})

/**
 * Every visible control of the page (button, input, select, a, textarea)
 * that some other element covers at its centre: what `elementFromPoint`
 * finds there is neither the control nor inside it. Controls under the
 * sticky header (scrolled beneath it by design) are not visible and not
 * counted; the header's own are.
 */
const coveredControls = (page) =>
  page.evaluate(() => {
    const header = document.querySelector('header.topbar')
    const headerBottom = header ? header.getBoundingClientRect().bottom : 0
    const describe = (el) =>
      el
        ? `${el.tagName.toLowerCase()}${el.dataset?.testid ? `[${el.dataset.testid}]` : ''}.${el.className}`
        : 'nothing'
    const covered = []
    for (const el of document.querySelectorAll('button, input, select, a, textarea')) {
      const style = getComputedStyle(el)
      if (style.visibility === 'hidden' || style.display === 'none') continue
      const r = el.getBoundingClientRect()
      if (r.width === 0 || r.height === 0) continue
      const x = r.left + r.width / 2
      const y = r.top + r.height / 2
      if (x < 0 || x >= window.innerWidth || y < 0 || y >= window.innerHeight) continue
      if (!header?.contains(el) && y < headerBottom) continue
      const hit = document.elementFromPoint(x, y)
      if (hit !== el && !el.contains(hit)) covered.push(`${describe(el)} under ${describe(hit)}`)
    }
    return covered
  })

test('(r) phones: the "Live queries" pill covers no control at 375×700 and 320×640', async () => {
  const context = await newContext({ viewport: { width: 375, height: 700 }, isMobile: true, hasTouch: true })
  try {
    const page = await openPage(context, 'phone pill')
    await page.getByTestId('task-add').waitFor({ state: 'attached' })
    for (const [width, height] of [
      [375, 700],
      [320, 640],
    ]) {
      await page.setViewportSize({ width, height })
      await until(async () => (await page.evaluate(() => window.innerWidth)) === width, `the viewport at ${width} px`)
      const pill = page.getByTestId('inspector-toggle')
      await pill.waitFor({ state: 'visible' })
      if (!(await inViewport(pill))) throw new Error(`at ${width} px the pill is not shown`)
      // At the top (the first screen: the tasks form), scrolled to the
      // middle, and at the bottom of the page.
      const scrollHeight = await page.evaluate(() => document.documentElement.scrollHeight)
      for (const y of [0, Math.round(scrollHeight / 2), scrollHeight]) {
        await page.evaluate((to) => window.scrollTo(0, to), y)
        await until(
          async () =>
            page.evaluate(
              (to) =>
                Math.abs(window.scrollY - Math.min(to, document.documentElement.scrollHeight - window.innerHeight)) < 2,
              y,
            ),
          `scrolled to ${y}`,
        )
        const covered = await coveredControls(page)
        if (covered.length > 0) {
          throw new Error(`at ${width}×${height}, scrolled to ${y}: ${covered.slice(0, 5).join('; ')}`)
        }
        if (!(await inViewport(pill))) throw new Error(`at ${width} px, scrolled to ${y}, the pill left the screen`)
      }
      await page.evaluate(() => window.scrollTo(0, 0))
    }
    await page.screenshot({ path: path.join(RESULTS, 'phone-pill.png') })
  } finally {
    await context.close().catch(() => {})
  }
})

test('(n) a 2,000-row column renders one window of cards; "show more" raises the live limit', async ({ pageA }) => {
  await pageA.getByTestId('assignee-filter').selectOption('all')
  const tag = `bulk ${rand()}`
  sql(`INSERT INTO tasks (title, status, priority) SELECT '${tag} ' || g, 'todo', 0 FROM generate_series(1, 2000) AS g`)
  const todo = pageA.getByTestId('column-todo')
  const cards = todo.getByTestId('task-card')
  try {
    await until(
      async () => (await pageA.getByTestId('count-todo').getAttribute('data-more')) === 'true',
      'a full window',
    )
    const query = JSON.parse(await todo.getAttribute('data-query'))
    assertEqual([query.limit, query.order], [50, { by: 'priority', dir: 'desc' }], 'the column subscribes with')
    const first = await cards.count()
    if (first > 50) throw new Error(`${first} cards rendered, more than one window of 50`)
    if (first < 10) throw new Error(`only ${first} cards rendered`)
    assertEqual(await pageA.getByTestId('count-todo').textContent(), `${first}+`, 'the count says there are more')
    await pageA.getByTestId('more-todo').click()
    await until(async () => (await cards.count()) > first, 'more cards after "show more"')
    await until(async () => (await cards.count()) === 100, 'a second window of cards')
    assertEqual(JSON.parse(await todo.getAttribute('data-query')).limit, 100, 'the raised limit')
    // The window is live: a more urgent task enters it at the top.
    const urgent = `urgent among bulk ${rand()}`
    sql(`INSERT INTO tasks (title, status, priority) VALUES ('${urgent}', 'todo', 3)`)
    await until(async () => (await card(pageA, 'todo', urgent).count()) === 1, 'the urgent task in the window')
    if ((await cards.count()) > 100) throw new Error(`${await cards.count()} cards in a window of 100`)
    sql(`DELETE FROM tasks WHERE title = '${urgent}'`)
  } finally {
    sql(`DELETE FROM tasks WHERE title LIKE '${tag} %'`)
  }
  await until(
    async () => (await pageA.getByTestId('count-todo').getAttribute('data-more')) === 'false',
    'back under one window',
  )
})

test('(o) the live-query inspector shows each subscription, its version advancing with a psql write', async ({
  pageA,
}) => {
  await pageA.getByTestId('inspector-toggle').click()
  const inspector = pageA.getByTestId('inspector')
  await inspector.waitFor({ state: 'visible' })
  const itemsSub = inspector.locator(`[data-testid="inspector-sub"][data-table="items"][data-query*="limit"]`).first()
  await itemsSub.waitFor({ state: 'visible' })
  const query = JSON.parse(await itemsSub.getAttribute('data-query'))
  assertEqual(query.limit, 50, "the items subscription's limit")
  const tables = await inspector.getByTestId('inspector-sub').evaluateAll((els) => els.map((e) => e.dataset.table))
  for (const t of ['items', 'tasks']) if (!tables.includes(t)) throw new Error(`no ${t} subscription listed: ${tables}`)
  const version = async () => Number(await itemsSub.getByTestId('inspector-version').textContent())
  const before = await version()
  const rows = Number(await itemsSub.getByTestId('inspector-rows').textContent())
  const name = `inspected ${rand()}`
  sql(`INSERT INTO items (name) VALUES ('${name}')`)
  await until(async () => (await version()) > before, 'the version shown advances')
  await until(
    async () => Number(await itemsSub.getByTestId('inspector-rows').textContent()) === rows + 1,
    'the row count shown grows',
  )
  // The diff carried noticed_at: a latency from the server noticing it to the page painting it.
  const latency = await until(async () => {
    const t = await itemsSub.getByTestId('inspector-latency').textContent()
    return /^\d+ ms$/.test(t ?? '') ? t : null
  }, 'a measured latency')
  const ms = Number(latency.split(' ')[0])
  if (ms > 10_000) throw new Error(`latency ${latency}`)
  log(`   inspector: items version ${before} → ${await version()}, latency ${latency}`)
  const history = await inspector
    .getByTestId('inspector-history')
    .locator('li')
    .evaluateAll((els) => els.map((e) => e.dataset.state))
  // Newest first: live now, after the restart test's reconnecting.
  assertEqual(history[0], 'live', 'the latest connection status')
  if (!history.includes('reconnecting')) throw new Error(`no reconnecting in the history: ${history}`)
  await pageA.screenshot({ path: path.join(RESULTS, 'dashboard-inspector.png') })
  await pageA.getByTestId('inspector-close').click()
  await until(async () => (await inspector.count()) === 0, 'the inspector closed')
  sql(`DELETE FROM items WHERE name = '${name}'`)
})

test('(q) a query the database keeps refusing shows as delayed — query_failing in the inspector, then live', async ({
  bin,
}) => {
  // A database of this test's own: breaking a column would break every
  // other page's items.
  const dbName = `pglive_e2e_qf_${rand()}`
  const u = new URL(state.adminUrl)
  u.pathname = `/${dbName}`
  const dbUrl = u.toString()
  const created = psqlRaw(state.adminUrl, `CREATE DATABASE "${dbName}"`)
  if (created.status !== 0) throw new Error(`CREATE DATABASE failed: ${created.stderr}`)
  let server = null
  const context = await newContext()
  const q = (query) => {
    const r = psqlRaw(dbUrl, query)
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`)
    return r.stdout.split('\n').filter((l) => l !== '')
  }
  try {
    run(bin, ['migrate', '--database-url', dbUrl])
    q(`INSERT INTO items (name) VALUES ('Anvil'), ('Bicycle')`)
    // Many failures allowed: the group keeps retrying, and says so, instead of giving up.
    server = await startExtraServer(bin, { dbUrl, args: ['--max-query-failures', '1000'] })
    const page = await openPage(context, 'query failing', server.base)
    await page.getByTestId('inspector-toggle').click()
    const itemsSub = page.locator(`[data-testid="inspector-sub"][data-table="items"][data-query*="limit"]`).first()
    const subStatus = () => itemsSub.getByTestId('inspector-sub-status').textContent()
    await until(async () => (await subStatus()) === 'live', 'the items subscription live')
    q('ALTER TABLE items RENAME COLUMN name TO name_renamed')
    q(`INSERT INTO items (name_renamed) VALUES ('while failing')`)
    await until(async () => (await subStatus()) === 'delayed — query_failing', 'delayed — query_failing', 20_000)
    // One subscription's trouble is not the connection's.
    assertEqual(await status(page), 'live', 'the connection status meanwhile')
    assertEqual(await itemNames(page), ['Anvil', 'Bicycle'], 'rows kept meanwhile')
    // The items panel says so too.
    const warning = page.getByTestId('items-panel').getByTestId('live-warning')
    await until(async () => (await warning.getAttribute('data-reason')) === 'query_failing', 'the panel says delayed')
    await page.screenshot({ path: path.join(RESULTS, 'dashboard-query-failing.png') })
    q('ALTER TABLE items RENAME COLUMN name_renamed TO name')
    await until(async () => (await subStatus()) === 'live', 'live again', 30_000)
    await until(async () => (await itemNames(page)).includes('while failing'), 'the row written meanwhile')
    await until(async () => (await warning.count()) === 0, 'the panel warning gone')
  } finally {
    await context.close().catch(() => {})
    if (server) await stopProcess(server)
    psqlRaw(state.adminUrl, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`)
  }
})

test('(s) task cards: a psql comment shows live (count and newest body) in its tenant only; the items count is exact', async () => {
  const tag = rand()
  const acmeTask = `acme commented ${tag}`
  const globexTask = `globex commented ${tag}`
  const bulk = `acme bulk ${tag}`
  const contexts = []
  const pageAs = async (user) => {
    const context = await newContext({ viewport: { width: 1440, height: 900 } }, user)
    contexts.push(context)
    const page = await openPage(context, `${user} (comments)`)
    await until(async () => (await page.getByTestId('user-switcher').inputValue()) === user, `signed in as ${user}`)
    return page
  }
  /** What every task card of `page` shows: title, comment count, newest comment. */
  const cardsOf = (page) =>
    page.getByTestId('task-card').evaluateAll((els) =>
      els.map((el) => ({
        title: el.querySelector('[data-testid="task-title"]')?.textContent ?? null,
        count: el.querySelector('[data-testid="task-comment-count"]')?.textContent ?? null,
        newest:
          el.querySelector('[data-testid="task-newest-comment"]')?.textContent?.replace(/\s+/g, ' ').trim() ?? null,
      })),
    )
  const commentCount = (page, title) => card(page, 'todo', title).getByTestId('task-comment-count').textContent()
  const newestBody = (page, title) => card(page, 'todo', title).getByTestId('task-newest-body').textContent()
  const countOfTenant = (table, tenant) => Number(sql(`SELECT count(*) FROM ${table} WHERE tenant = '${tenant}'`)[0])
  try {
    const [acmeId] = sql(
      `INSERT INTO tasks (title, status, priority, tenant) VALUES ('${acmeTask}', 'todo', 3, 'acme') RETURNING id`,
    )
    const [globexId] = sql(
      `INSERT INTO tasks (title, status, priority, tenant) VALUES ('${globexTask}', 'todo', 3, 'globex') RETURNING id`,
    )
    const alice = await pageAs('alice')
    const bob = await pageAs('bob')
    await until(async () => (await card(alice, 'todo', acmeTask).count()) === 1, "the acme task on alice's board")
    await until(async () => (await card(bob, 'todo', globexTask).count()) === 1, "the globex task on bob's board")
    assertEqual(await commentCount(alice, acmeTask), '0', "the acme card's comment count before any comment")
    assertEqual(await card(alice, 'todo', acmeTask).getByTestId('task-newest-comment').count(), 0, 'a newest comment')
    assertEqual(await commentCount(bob, globexTask), '0', "the globex card's comment count")
    const bobBefore = await cardsOf(bob)
    if (bobBefore.some((c) => c.title === acmeTask)) throw new Error('bob sees the acme task')

    // Comments written from psql, as the tables' owner: the card follows.
    const first = `first look ${tag}`
    sql(
      `INSERT INTO comments (task_id, author, body, created_at) VALUES (${acmeId}, 'carol', '${first}', now() - interval '1 minute')`,
    )
    await until(async () => (await commentCount(alice, acmeTask)) === '1', 'the acme card counts 1 comment')
    await until(async () => (await newestBody(alice, acmeTask)) === first, 'the first comment on the card')
    assertEqual(
      await card(alice, 'todo', acmeTask).getByTestId('task-newest-author').textContent(),
      'carol',
      "the newest comment's author",
    )
    // A newer, long comment takes its place, cut on the card and whole in its tooltip.
    const second = `second thoughts ${tag}: ${'the migration needs a rollback plan and a dry run first '.repeat(3).trim()}`
    sql(`INSERT INTO comments (task_id, author, body) VALUES (${acmeId}, 'dave', '${second}')`)
    await until(async () => (await commentCount(alice, acmeTask)) === '2', 'the acme card counts 2 comments')
    await until(
      async () => (await newestBody(alice, acmeTask))?.startsWith(`second thoughts ${tag}`),
      'the newer comment on the card',
    )
    const shown = await newestBody(alice, acmeTask)
    if (!shown.endsWith('…') || shown.length >= second.length) throw new Error(`the long body is not cut: "${shown}"`)
    const tooltip = await card(alice, 'todo', acmeTask).getByTestId('task-newest-comment').getAttribute('title')
    assertEqual(tooltip, `dave: ${second}`, "the newest comment's tooltip")
    if ((await card(alice, 'todo', acmeTask).textContent()).includes(first)) {
      throw new Error('the older comment still shows as the newest')
    }

    await alice.screenshot({ path: path.join(RESULTS, 'dashboard-card-comments.png') })

    // A later globex comment reaching bob means whatever was to reach him has.
    const marker = `globex marker ${tag}`
    sql(`INSERT INTO comments (task_id, author, body) VALUES (${globexId}, 'erin', '${marker}')`)
    await until(async () => (await commentCount(bob, globexTask)) === '1', 'the globex card counts its comment')
    await until(async () => (await newestBody(bob, globexTask)) === marker, "the globex comment on bob's card")
    const bobAfter = await cardsOf(bob)
    const expectBob = bobBefore.map((c) =>
      c.title === globexTask ? { ...c, count: '1', newest: `erin ${marker}` } : c,
    )
    assertEqual(bobAfter, expectBob, "bob's cards after the acme comments and the globex marker")
    const bobText = await bob.locator('body').innerText()
    for (const foreign of [acmeTask, first, `second thoughts ${tag}`]) {
      if (bobText.includes(foreign)) throw new Error(`bob's page shows "${foreign}"`)
    }
    const aliceText = await alice.locator('body').innerText()
    for (const foreign of [globexTask, marker]) {
      if (aliceText.includes(foreign)) throw new Error(`alice's page shows "${foreign}"`)
    }

    // The inspector lists the board's included relation with what it holds:
    // one entry per acme to-do task with comments, one row each (limit 1).
    await alice.getByTestId('inspector-toggle').click()
    const todoSub = alice
      .getByTestId('inspector')
      .locator('[data-testid="inspector-sub"][data-table="tasks"][data-query*="\\"todo\\""]')
      .first()
    const relation = todoSub.locator('[data-testid="inspector-relation"][data-name="comments"]')
    const withComments = Number(
      sql(
        `SELECT count(DISTINCT c.task_id) FROM comments c JOIN tasks t ON t.id = c.task_id WHERE t.tenant = 'acme' AND t.status = 'todo'`,
      )[0],
    )
    await until(
      async () =>
        (await relation.getAttribute('data-entries')) === String(withComments) &&
        (await relation.getAttribute('data-rows')) === String(withComments),
      `the todo column's comments relation holding ${withComments} entries and rows in the inspector`,
    )
    const described = await relation.textContent()
    if (!described?.includes('has_many comments, counted')) throw new Error(`the relation shows as "${described}"`)
    await alice.getByTestId('inspector-close').click()

    // The items panel counts every item alice may read, beyond its window of 50.
    const itemsCount = (page) => page.getByTestId('items-count')
    const aliceItems = async () => (await itemsCount(alice).textContent())?.trim()
    await until(async () => (await aliceItems()) === String(countOfTenant('items', 'acme')), "alice's exact item count")
    assertEqual(await itemsCount(alice).getAttribute('data-exact'), 'true', 'the items count is exact')
    const bobItems = await itemsCount(bob).textContent()
    assertEqual(bobItems, String(countOfTenant('items', 'globex')), "bob's exact item count")
    sql(`INSERT INTO items (name, tenant) SELECT '${bulk} ' || g, 'acme' FROM generate_series(1, 60) AS g`)
    const many = countOfTenant('items', 'acme')
    if (many <= 50) throw new Error(`only ${many} acme items`)
    await until(async () => (await aliceItems()) === String(many), `alice's item count = ${many}`)
    assertEqual(await itemsCount(alice).getAttribute('data-more'), 'true', 'more items than the window')
    const rowsShown = await alice.getByTestId('item-row').count()
    if (rowsShown > 50) throw new Error(`${rowsShown} item rows in a window of 50`)
    sql(`INSERT INTO items (name, tenant) VALUES ('${bulk} one more', 'acme')`)
    await until(async () => (await aliceItems()) === String(many + 1), `alice's item count = ${many + 1}`)
    sql(`DELETE FROM items WHERE name LIKE '${bulk} %'`)
    await until(
      async () => (await aliceItems()) === String(countOfTenant('items', 'acme')),
      'the count after the delete',
    )
    assertEqual(await itemsCount(bob).textContent(), bobItems, "bob's item count after the acme writes")
  } finally {
    for (const c of contexts) await c.close().catch(() => {})
    sql(`DELETE FROM items WHERE name LIKE '${bulk} %'`)
    sql(`DELETE FROM tasks WHERE title IN ('${acmeTask}', '${globexTask}')`)
  }
})

test('dashboard screenshot', async ({ pageA }) => {
  await pageA.setViewportSize({ width: 1440, height: 900 })
  await pageA.getByTestId('assignee-filter').selectOption('all')
  await pageA.evaluate(() => document.querySelectorAll('[data-testid="error"] button').forEach((b) => b.click()))
  await until(async () => (await pageA.getByTestId('error').count()) === 0, 'notices dismissed')
  await pageA.getByTestId('item-name-input').fill('')
  await sleep(1800) // let highlight animations finish
  const file = path.join(RESULTS, 'dashboard.png')
  await pageA.screenshot({ path: file, fullPage: true })
  log(`   screenshot: ${path.relative(process.cwd(), file)}`)
})

test('no uncaught errors in the pages', async () => {
  if (state.pageErrors.length > 0) throw new Error(state.pageErrors.join('\n'))
})

// --- setup and run ------------------------------------------------------------------

async function seed() {
  const items = [
    'Quarterly report',
    'Design review notes',
    'Release checklist',
    'Customer interview: Acme',
    'Onboarding guide',
  ]
  for (const name of items) await api('POST', '/api/items', { name })
  const tasks = [
    { title: 'Write the migration guide', status: 'todo', priority: 2, assignee: 'alice', due_date: '2026-12-04' },
    { title: 'Fix flaky login test', status: 'todo', priority: 3, assignee: 'bob' },
    { title: 'Update dependencies', status: 'todo', priority: 0 },
    { title: 'Benchmark the diff engine', status: 'in_progress', priority: 2, assignee: 'carol' },
    { title: 'Dark mode for the dashboard', status: 'in_progress', priority: 1, assignee: 'alice' },
    { title: 'Set up CI caching', status: 'done', priority: 1, assignee: 'bob' },
    { title: 'Draft the launch post', status: 'done', priority: 2, assignee: 'carol', due_date: '2026-11-20' },
  ]
  for (const t of tasks) {
    const r = await api('POST', '/api/tasks', t)
    if (r.status !== 201) throw new Error(`seeding a task failed: ${r.status} ${JSON.stringify(r.body)}`)
  }
}

async function main() {
  // PostgreSQL
  state.adminUrl =
    process.env.PGLIVE_TEST_DATABASE_URL || run('bash', [path.join(ROOT, 'dev', 'pg.sh'), 'start']).trim()
  if (!state.adminUrl) throw new Error('no PostgreSQL admin URL')
  state.dbName = `pglive_e2e_${rand()}`
  const u = new URL(state.adminUrl)
  u.pathname = `/${state.dbName}`
  state.dbUrl = u.toString()
  const created = psqlRaw(state.adminUrl, `CREATE DATABASE "${state.dbName}"`)
  if (created.status !== 0) {
    state.dbName = null
    throw new Error(`CREATE DATABASE failed: ${created.stderr || created.error?.message}`)
  }
  log(`e2e: database ${state.dbName}`)

  // Web app and server
  if (process.env.PGLIVE_E2E_SKIP_BUILD !== '1' || !existsSync(path.join(DIST, 'index.html'))) {
    log('e2e: npm run build')
    run('npm', ['run', 'build'], { cwd: WEB, stdio: ['ignore', 'ignore', 'inherit'] })
  }
  if (process.env.PGLIVE_E2E_SKIP_BUILD !== '1' || !existsSync(path.join(EXAMPLE_DIST, 'index.html'))) {
    // The example imports the package as published: its dist/ first, then the example.
    log('e2e: npm run build:example')
    run('npm', ['run', 'build:example'], { cwd: WEB, stdio: ['ignore', 'ignore', 'inherit'] })
  }
  const bin = serverBin()
  // Migrations as the owner; the server as the authenticator (startServer).
  run(bin, ['migrate', '--database-url', state.dbUrl])
  state.server = await startServer(bin, 0)
  log(`e2e: pglive at ${state.server.base}`)
  await seed()

  // Browser
  const { chromium } = await import('playwright-core')
  state.browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: process.env.PGLIVE_E2E_HEADFUL !== '1',
    timeout: 60_000,
  })
  const contextA = await newContext({ viewport: { width: 1440, height: 900 } })
  const contextB = await newContext({ viewport: { width: 1280, height: 800 } })
  const pageA = await openPage(contextA, 'page A')
  const pageB = await openPage(contextB, 'page B')
  const ctx = { pageA, pageB, bin }

  for (const t of tests) {
    const started = Date.now()
    let timer
    try {
      const outcome = await Promise.race([
        t.fn(ctx),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`test timed out after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS)
        }),
      ])
      // A test that cannot run here returns why ("skipped: ...").
      if (typeof outcome === 'string' && outcome.startsWith('skipped')) {
        skipped += 1
        log(`skip - ${t.name}: ${outcome}`)
      } else {
        passed += 1
        log(`ok   - ${t.name} (${Date.now() - started} ms)`)
      }
    } catch (e) {
      failed += 1
      log(`FAIL - ${t.name}: ${e?.stack ?? e}`)
      const shot = path.join(RESULTS, `failure-${tests.indexOf(t) + 1}.png`)
      await pageA.screenshot({ path: shot, fullPage: true }).catch(() => {})
      log(`       screenshot of page A: ${path.relative(process.cwd(), shot)}`)
      if (!state.server) {
        // A failure in the restart test must not take the others down with it.
        state.server = await restartServer(bin, 0).catch(() => null)
      }
    } finally {
      clearTimeout(timer)
    }
  }
}

main().then(
  () => finish(0),
  (e) => {
    console.error(`e2e: setup failed: ${e?.stack ?? e}`)
    return finish(1, 'setup failed')
  },
)
