import { MutationCache, QueryClient, VueQueryPlugin } from '@tanstack/vue-query'
import { createApp } from 'vue'
import App from './App.vue'
import { LiveClient } from './live'
import { createLive } from './live/vue'
import { clearNotices, reportError } from './notices'
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

const live = new LiveClient()

createApp(App).use(VueQueryPlugin, { queryClient }).use(createLive(live)).mount('#app')
