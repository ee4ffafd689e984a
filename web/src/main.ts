import { MutationCache, QueryClient, VueQueryPlugin } from '@tanstack/vue-query'
import { createApp } from 'vue'
import { LiveClient } from '@pglive/client'
import { createLive } from '@pglive/client/vue'
import App from './App.vue'
import { installInspector } from './inspector'
import { clearNotices, reportError } from './notices'
import { getToken, probeDevTokens } from './session'
import './style.css'

function contextOf(meta: Record<string, unknown> | undefined): string {
  return typeof meta?.context === 'string' ? meta.context : 'Request failed'
}

const queryClient = new QueryClient({
  defaultOptions: {
    queries: { staleTime: Infinity, retry: false, refetchOnWindowFocus: false },
    mutations: { retry: false },
  },
  mutationCache: new MutationCache({
    onError: (error, _vars, _result, mutation) => reportError(contextOf(mutation.meta), error),
    onSuccess: (_data, _vars, _result, mutation) => clearNotices(contextOf(mutation.meta)),
  }),
})

// Every connection authenticates as the user picked in the switcher (none
// for anonymous), with a fresh token on every reconnect.
const live = new LiveClient({ getToken })
// From the start, so that the inspector's history and latencies are complete when it is opened.
installInspector(live)
void probeDevTokens()

createApp(App).use(VueQueryPlugin, { queryClient }).use(createLive(live)).mount('#app')
