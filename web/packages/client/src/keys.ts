// Each live table's key, read from the generated table declarations
// (`liveTables`), so that rows are keyed by the column the server keys them
// by, whatever its name and type.
import { liveTables } from './generated'
import type { KeyColumn, RowKey, RowOf, Table } from './types'

/** The name of `table`'s key column. */
export function keyColumn<T extends Table>(table: T): KeyColumn<T> {
  return liveTables[table].key
}

/** A function that reads a row's key of `table`. */
export function rowKey<T extends Table>(table: T): (row: RowOf<T>) => RowKey<T> {
  const column = keyColumn(table)
  return (row) => row[column]
}
