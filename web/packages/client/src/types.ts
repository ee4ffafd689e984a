// Helper types for the live layer, derived from the generated wire bindings
// only: nothing here restates a shape the bindings already define.
import type { LiveQuery, ServerMessage, Snapshot, liveTables } from './generated'

/** A live table's name, as a query names it: `"items" | "tasks" | "comments"`. */
export type Table = LiveQuery['table']

/** The query type for one table, e.g. `QueryFor<'tasks'>`. */
export type QueryFor<T extends Table> = Extract<LiveQuery, { table: T }>

/** Each table's row type, taken from the generated `Snapshot` union. */
type Rows = { [S in Snapshot as S['table']]: S['rows'][number] }

/** The row type of one table, e.g. `RowOf<'tasks'>` is `Task`. */
export type RowOf<T extends Table> = Rows[T]

/** The rows a query's result holds: `RowsOf<{ table: 'items' }>` is `Item[]`. */
export type RowsOf<Q extends LiveQuery> = RowOf<Q['table']>[]

/** Any live row. */
export type AnyRow = RowOf<Table>

/** The name of one table's key column, as declared in the generated `liveTables`. */
export type KeyColumn<T extends Table> = (typeof liveTables)[T]['key'] & keyof RowOf<T>

/**
 * One table's primary key as it travels: `RowKey<'items'>` is a decimal
 * string (a bigint), `RowKey<'tasks'>` a number, `RowKey<'comments'>` a uuid
 * string. Without an argument, any table's key.
 */
export type RowKey<T extends Table = Table> = RowOf<T>[KeyColumn<T>]

export type SnapshotMessage = Extract<ServerMessage, { type: 'snapshot' }>
export type DiffMessage = Extract<ServerMessage, { type: 'diff' }>
export type ErrorFrame = Extract<ServerMessage, { type: 'error' }>
