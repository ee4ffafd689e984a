// Typed errors the live client hands to the app. Each carries the server's
// error code (or one of the client's own) so that the app can branch on it
// instead of parsing messages.
import type { ErrorCode, ErrorMessage } from './generated'

/** An `error` frame for one subscription: that subscription is not active. */
export class LiveSubscriptionError extends Error {
  override name = 'LiveSubscriptionError'
  readonly code: ErrorCode
  readonly frame: ErrorMessage

  constructor(frame: ErrorMessage) {
    super(frame.message)
    this.code = frame.code
    this.frame = frame
  }
}

/**
 * Why the connection has no identity:
 * - `unauthenticated`: the server refused the token (or needs one and got none);
 * - `token_expired`: the token expired before a fresh one arrived;
 * - `forbidden`: the token's role may not be used;
 * - `unavailable`: the server could not check the token right now;
 * - `token_unavailable`: the app's `getToken` failed (the client's own code).
 */
export type AuthErrorCode =
  Extract<ErrorCode, 'unauthenticated' | 'token_expired' | 'forbidden' | 'unavailable'> | 'token_unavailable'

const AUTH_CODES: ReadonlySet<string> = new Set<AuthErrorCode>([
  'unauthenticated',
  'token_expired',
  'forbidden',
  'unavailable',
  'token_unavailable',
])

/** Whether a connection-level error code is about the connection's identity. */
export function isAuthErrorCode(code: string): code is AuthErrorCode {
  return AUTH_CODES.has(code)
}

/** Authentication failed or lapsed; the client keeps retrying with backoff. */
export class LiveAuthError extends Error {
  override name = 'LiveAuthError'
  readonly code: AuthErrorCode

  constructor(code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** An `error` frame about the whole connection that is not about its identity. */
export class LiveConnectionError extends Error {
  override name = 'LiveConnectionError'
  readonly code: ErrorCode
  readonly frame: ErrorMessage

  constructor(frame: ErrorMessage) {
    super(frame.message)
    this.code = frame.code
    this.frame = frame
  }
}

/** What `LiveClient.onError` reports. */
export type LiveError = LiveAuthError | LiveConnectionError
