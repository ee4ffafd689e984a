import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// `npm run dev` serves the example with HMR and forwards the live WebSocket
// to a running pglive server (default 127.0.0.1:8080). `npm run build`
// writes dist/, which `pglive --web-dir examples/react/dist` serves as is.
//
// The package is imported as published: its built `dist/` (run
// `npm run build:client` in web/ first), not its sources.
const server = process.env.PGLIVE_SERVER ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': { target: server, changeOrigin: true },
      '/ws': { target: server, ws: true, changeOrigin: true },
    },
  },
  build: {
    target: 'es2022',
  },
})
