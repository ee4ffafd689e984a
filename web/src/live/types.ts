// Helper types for the live layer, derived from the generated wire bindings
// only: nothing here restates a shape the bindings already define.
import type { LiveQuery, ServerMessage, Snapshot } from '../generated'

/** A live table's name, as a query names it: `"items" | "tasks"`. */
export type Table = LiveQuery['table']

/** The query type for one table, e.g. `QueryFor<'tasks'>`. */
export type QueryFor<T extends Table> = Extract<LiveQuery, { table: T }>

/** The row type of one table, taken from the generated `Snapshot` union. */
export type RowOf<T extends Table> = Extract<Snapshot, { table: T }>['rows'][number]

/** The rows a query's result holds: `RowsOf<{ table: 'items' }>` is `Item[]`. */
export type RowsOf<Q extends LiveQuery> = RowOf<Q['table']>[]

/** Any live row. */
export type AnyRow = RowOf<Table>

/** A live row's primary key. */
export type RowKey = AnyRow['id']

export type SnapshotMessage = Extract<ServerMessage, { type: 'snapshot' }>
export type DiffMessage = Extract<ServerMessage, { type: 'diff' }>
export type ErrorFrame = Extract<ServerMessage, { type: 'error' }>
