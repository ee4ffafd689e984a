import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { LiveClient } from '@pglive/client'
import { LiveClientProvider } from '@pglive/client/react'
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './App'

// One LiveClient (one WebSocket, to this page's own server at /ws) and one
// QueryClient for the whole app; live queries are cached like any other.
const live = new LiveClient()
const queryClient = new QueryClient()

const root = document.getElementById('root')
if (!root) throw new Error('no #root element')

createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <LiveClientProvider client={live}>
        <App />
      </LiveClientProvider>
    </QueryClientProvider>
  </StrictMode>,
)
