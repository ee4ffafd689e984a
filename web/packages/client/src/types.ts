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

/** Any live row. */
export type AnyRow = RowOf<Table>

/** One relation of `table`, as declared in the generated `liveTables`. */
export type RelationOf<T extends Table> = (typeof liveTables)[T]['relations'][number]

/** The field(s) one relation adds to a row: its rows, and for `has_many` its `<name>_count`. */
type RelationField<R> = R extends { kind: 'has_many'; name: infer N extends string; target: infer To extends Table }
  ? { key: N; value: RowOf<To>[] } | { key: `${N}_count`; value: number }
  : R extends { kind: 'belongs_to'; name: infer N extends string; target: infer To extends Table }
    ? { key: N; value: RowOf<To> | null }
    : never

/**
 * What included relations add to a row of `table`, derived from its
 * declared relations (so the same as the generated `TasksRelated`,
 * `CommentsRelated`; `{}` for a table without relations). Every field is
 * optional: a query has it only when its `include` names the relation
 * (and the `_count` only with `count: true`).
 */
export type RelatedOf<T extends Table> = {
  [F in RelationField<RelationOf<T>> as F['key']]?: F['value']
}

/**
 * A row of `table` as a live query hands it out: `RowOf<T>` with the
 * fields its included relations add, e.g. `LiveRowOf<'tasks'>` is
 * `Task & TasksRelated`. For a table without relations, just `RowOf<T>`.
 */
export type LiveRowOf<T extends Table> = LiveRows[T]

type LiveRows = { [T in Table]: [keyof RelatedOf<T>] extends [never] ? RowOf<T> : RowOf<T> & RelatedOf<T> }

/**
 * The rows a query's result holds: `RowsOf<{ table: 'items' }>` is `Item[]`,
 * `RowsOf<{ table: 'tasks' }>` is `(Task & TasksRelated)[]`.
 */
export type RowsOf<Q extends LiveQuery> = LiveRowOf<Q['table']>[]

/** Any live row, with whatever its included relations add. */
export type AnyLiveRow = LiveRows[Table]

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
