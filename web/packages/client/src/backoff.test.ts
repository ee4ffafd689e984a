import { describe, expect, it } from 'vitest'
import { backoffDelay } from './backoff'

describe('backoffDelay', () => {
  it('doubles the ceiling from 250 ms up to the 10 s cap', () => {
    const almostOne = () => 0.999999
    const delays = Array.from({ length: 10 }, (_, n) => backoffDelay(n, almostOne))
    expect(delays).toEqual([249, 499, 999, 1999, 3999, 7999, 9999, 9999, 9999, 9999])
  })

  it('is full jitter: uniform in [0, ceiling)', () => {
    expect(backoffDelay(3, () => 0)).toBe(0)
    expect(backoffDelay(3, () => 0.5)).toBe(1000)
    expect(backoffDelay(40, () => 0.5)).toBe(5000)
  })

  it('takes a policy', () => {
    expect(backoffDelay(2, () => 0.5, { baseMs: 100, capMs: 300 })).toBe(150)
  })
})
