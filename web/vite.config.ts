import { fileURLToPath, URL } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { createLogger, defaultClientConditions, defaultServerConditions } from 'vite'
import { defineConfig } from 'vitest/config'

// `npm run dev` serves the app with HMR and forwards the API and the live
// WebSocket to a running pglive server (default 127.0.0.1:8080).
const server = process.env.PGLIVE_SERVER ?? 'http://127.0.0.1:8080'

// The dashboard imports `@pglive/client` by its package name; this export
// condition resolves it to the package's TypeScript sources, so that
// changes there show with HMR and no build step (tsconfig.json names the
// same condition for vue-tsc). Other consumers get the built `dist/`.
const SOURCE = '@pglive/source'

// Closing a tab resets the proxied WebSocket (ECONNRESET, EPIPE), and a
// pglive server that is not running yet refuses /api (ECONNREFUSED). Vite
// logs each with a stack trace that says nothing useful; these get one
// quiet line instead, and every other error still prints in full.
const QUIET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])
const logger = createLogger()
const logError = logger.error.bind(logger)
logger.error = (message, options) => {
  const code = (options?.error as NodeJS.ErrnoException | undefined)?.code
  if (message.includes('proxy') && code !== undefined) {
    if (QUIET_CODES.has(code)) return // a browser went away: nothing to do
    if (code === 'ECONNREFUSED') {
      logger.warnOnce(`pglive server at ${server} is not reachable (yet); /api and /ws fail until it is`)
      return
    }
  }
  logError(message, options)
}

export default defineConfig({
  customLogger: logger,
  plugins: [vue()],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
    conditions: [SOURCE, ...defaultClientConditions],
  },
  ssr: {
    resolve: { conditions: [SOURCE, ...defaultServerConditions] },
  },
  server: {
    proxy: {
      '/api': { target: server, changeOrigin: true },
      '/ws': { target: server, ws: true, changeOrigin: true },
    },
  },
  build: {
    target: 'es2022',
    sourcemap: true,
  },
  test: {
    // The dashboard's tests and the client package's (its own config).
    projects: [
      { extends: true, test: { name: 'dashboard', include: ['src/**/*.test.ts'], environment: 'node' } },
      'packages/client',
    ],
  },
})
