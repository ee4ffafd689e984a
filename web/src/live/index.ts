// The framework-free live layer. Vue bindings live in ./vue.
export { applyDiff, DiffError } from './applyDiff'
export { keyColumn, rowKey } from './keys'
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff'
export {
  LiveClient,
  LiveSubscriptionError,
  type ConnectionStatus,
  type LiveClientOptions,
  type LiveSubscriber,
  type Timers,
  type WebSocketLike,
} from './client'
export type * from './types'
