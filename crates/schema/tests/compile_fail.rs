//! Declarations `#[live_table]` must refuse, each with the compiler's
//! message pinned in `tests/ui/<case>.stderr`: an operator on a column type
//! `pglive_schema::ops` gives it no meaning for (reported at the column), and
//! mistakes in the declaration itself. After a deliberate change to a
//! message, `TRYBUILD=overwrite cargo test -p pglive-schema --test
//! compile_fail` rewrites the snapshots; review and commit them.

#[test]
fn impossible_declarations_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
