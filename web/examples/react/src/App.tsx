import { statusLabel } from '@pglive/client'
import { useConnectionStatus, useLiveQuery } from '@pglive/client/react'

/** The newest items, live: a psql INSERT shows up here without a reload. */
export function App() {
  const status = useConnectionStatus()
  const {
    data: items,
    isPending,
    error,
    liveError,
  } = useLiveQuery({
    table: 'items',
    order: { by: 'id', dir: 'desc' },
    limit: 50,
  })

  return (
    <main style={{ fontFamily: 'system-ui, sans-serif', maxWidth: 640, margin: '2rem auto', padding: '0 1rem' }}>
      <h1>pglive + React</h1>
      <p>
        Connection: <strong data-testid="example-status">{statusLabel(status)}</strong>
      </p>
      {liveError && <p role="alert">Live updates paused: {liveError.message}</p>}
      {isPending && !error && <p>Loading…</p>}
      {error && <p role="alert">Could not load the items: {error.message}</p>}
      {items && (
        <>
          <p>
            <span data-testid="example-count">{items.length}</span> newest items
          </p>
          <ul data-testid="example-items">
            {items.map((item) => (
              <li key={item.id} data-testid="example-item" data-id={item.id}>
                {item.name}
              </li>
            ))}
          </ul>
        </>
      )}
    </main>
  )
}
