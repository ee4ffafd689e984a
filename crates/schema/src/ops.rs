//! Filter operators. Each is defined once, here, with everything about it:
//! its name (what a declaration writes in `filter(...)`, the suffix of its
//! filter field `<column>_<name>` and what the table metadata lists), the
//! column types it can filter, the value a client gives ([`Operator::Operand`],
//! which is also its TypeScript and JSON Schema type), the SQL condition a
//! full query runs ([`Supports::sql`]) and the Rust predicate the engine
//! applies to changed rows in memory ([`Supports::test`]). The two meanings
//! must agree for every value, NULL included; the server's tests check that
//! per operator and per column type against PostgreSQL.
//!
//! `#[live_table]` knows no operator. It turns a name in `filter(...)` into
//! the type of the same name in CamelCase (`is_null` → [`IsNull`]) and
//! generates code bounded by `ColumnType: Supports<Operator>`, so a pair this
//! module does not implement (`contains` on an integer, `gte` on a `bool`,
//! `is_null` on a column that is not an `Option`) is a compile error at the
//! column's declaration.
//!
//! # Adding an operator
//!
//! 1. Here: a variant of [`Op`] and its snake_case name in [`Op::name`]; a
//!    unit struct named after it in CamelCase, with a doc comment saying its
//!    SQL, and its [`Operator`] impl (its line in `operator!`: the operand
//!    type); its filter field's doc in [`filter_doc!`]; and its [`Supports`]
//!    impl: a blanket over [`ColumnType`], bounded (`Ordered`, `Nullable`,
//!    ...) to the column types it can filter, and marked
//!    `#[diagnostic::do_not_recommend]` so that a refused pair is reported
//!    with the `Supports` message.
//! 2. Its test in `crates/server/tests/operators.rs`: a `check` call per
//!    column type it filters, so that its Rust predicate is proven to select
//!    exactly the rows its SQL does.
//! 3. `cargo test -p pglive-schema`, which regenerates the TypeScript
//!    (`web/packages/client/src/generated`) and the JSON Schemas
//!    (`crates/schema/json-schema`); commit them.
//!
//! Declarations can then name it in `filter(...)`; nothing else changes.

use std::cmp::Ordering;

use serde::{Serialize, Serializer};

use crate::scalar::{Ordered, Scalar};
use crate::sql::{Sql, SqlValue};

/// Longest text a filter accepts, in characters.
pub const MAX_FILTER_TEXT: usize = 200;
/// Most values an `in` filter accepts.
pub const MAX_IN_VALUES: usize = 100;

/// A column as a condition names it.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSql {
    /// The quoted identifier, e.g. `"title"`.
    pub ident: &'static str,
    /// Text-like: ordered comparisons say `COLLATE "C"`.
    pub text: bool,
}

impl ColumnSql {
    /// The column as ordered comparisons and `ORDER BY` see it: byte order for text.
    pub fn ordered(&self, sql: &mut Sql) {
        sql.push(self.ident);
        if self.text {
            sql.push(" COLLATE \"C\"");
        }
    }
}

/// Every operator, as the table metadata lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Open to new operators: code outside this crate that matches on it
// keeps a wildcard arm, so adding one touches only this file (and its test).
#[non_exhaustive]
pub enum Op {
    Eq,
    In,
    Contains,
    Gt,
    Gte,
    Lt,
    Lte,
    IsNull,
}

impl Op {
    /// The operator's name: what a declaration writes in `filter(...)`, the
    /// suffix of its filter field (`<column>_<name>`) and, serialized, what
    /// the table metadata lists. Its type is this name in CamelCase.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::In => "in",
            Op::Contains => "contains",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::IsNull => "is_null",
        }
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The doc comment of the filter field `<column>_<operator>`:
/// `filter_doc!(eq, "title")`. `#[live_table]` puts it on each field it
/// generates; it is a macro because a doc attribute needs its text when the
/// field's TypeScript and JSON Schema are derived. One line an operator: a
/// table, not code.
#[doc(hidden)]
#[macro_export]
macro_rules! __filter_doc {
    (is_null, $c:literal) => (::std::concat!(" `true`: `", $c, "` is null; `false`: it is not."));
    // An unknown name has no type either, and the compiler says so at the
    // name; a second error here would only repeat it.
    ($op:tt, $c:literal) => (::std::concat!(" `", $c, "` ", $crate::__filter_doc!(@ $op)));
    (@ eq) => ("equals this value.");
    (@ in) => ("is one of these values.");
    (@ contains) => ("contains this text (case-sensitive).");
    (@ gt) => ("is greater than this value.");
    (@ gte) => ("is greater than or equal to this value.");
    (@ lt) => ("is less than this value.");
    (@ lte) => ("is less than or equal to this value.");
    (@ $other:tt) => ("");
}

#[doc(inline)]
pub use crate::__filter_doc as filter_doc;

/// A filter operator: one of the unit structs below. A declaration names it
/// by its [`Op::name`].
pub trait Operator {
    const OP: Op;
    /// What a client gives to filter a column of scalar type `V`: a value,
    /// a list, a text or a flag. Its TypeScript and JSON Schema are the
    /// filter field's.
    type Operand<V: Scalar>;
}

/// The type a column is declared with: a scalar, or `Option` of one for a
/// nullable column.
pub trait ColumnType {
    type Scalar: Scalar;
    /// The value as a filter tests it; `None` is SQL `NULL`.
    fn value(&self) -> Option<&Self::Scalar>;
}

impl<V: Scalar> ColumnType for V {
    type Scalar = V;
    fn value(&self) -> Option<&V> {
        Some(self)
    }
}

impl<V: Scalar> ColumnType for Option<V> {
    type Scalar = V;
    fn value(&self) -> Option<&V> {
        self.as_ref()
    }
}

/// A nullable column's type: `Option` of a scalar.
pub trait Nullable: ColumnType {}

impl<V: Scalar> Nullable for Option<V> {}

/// Operator `O` filters columns of this type. Implemented exactly for the
/// pairs that make sense: a table declaration that asks for another pair
/// does not compile.
#[diagnostic::on_unimplemented(
    message = "operator `{O}` cannot filter a column of type `{Self}`",
    label = "this column's `filter(...)` names `{O}`",
    note = "the column types each operator filters are its `Supports` impls in `pglive_schema::ops`"
)]
pub trait Supports<O: Operator>: ColumnType {
    /// Appends the SQL condition.
    fn sql(column: &ColumnSql, operand: &Operand<O, Self>, out: &mut Sql);
    /// The same condition in Rust, on a row's value.
    fn test(value: &Self, operand: &Operand<O, Self>) -> bool;
    /// Refuses operands PostgreSQL cannot take or pglive does not serve.
    fn check(operand: &Operand<O, Self>) -> Result<(), String>;
    /// Canonical form: equal conditions normalize equal.
    fn normalize(_operand: &mut Operand<O, Self>) {}
}

/// What a client gives operator `O` to filter a column of type `C`.
pub type Operand<O, C> = <O as Operator>::Operand<<C as ColumnType>::Scalar>;

fn check_scalar<V: Scalar>(value: &V) -> Result<(), String> {
    if let Some(text) = value.text()
        && text.chars().count() > MAX_FILTER_TEXT
    {
        return Err(format!("text must be at most {MAX_FILTER_TEXT} characters"));
    }
    value.check()
}

/// `column = value`. A NULL column matches nothing.
#[derive(Debug)]
pub struct Eq;

/// `column = ANY(values)`.
#[derive(Debug)]
pub struct In;

/// `column LIKE '%text%'`, the text taken literally (case-sensitive). Text
/// (`String`) columns only.
#[derive(Debug)]
pub struct Contains;

/// `column > value` (text in byte order). [`Ordered`] columns only.
#[derive(Debug)]
pub struct Gt;

/// `column >= value`.
#[derive(Debug)]
pub struct Gte;

/// `column < value`.
#[derive(Debug)]
pub struct Lt;

/// `column <= value`.
#[derive(Debug)]
pub struct Lte;

/// `column IS NULL` (`true`) or `column IS NOT NULL` (`false`). Nullable
/// (`Option`) columns only.
#[derive(Debug)]
pub struct IsNull;

macro_rules! operator {
    ($($op:ident: $operand:ty),+ $(,)?) => {
        $(impl Operator for $op {
            const OP: Op = Op::$op;
            type Operand<V: Scalar> = $operand;
        })+
    };
}

operator!(
    Eq: V,
    In: Vec<V>,
    Contains: String,
    Gt: V,
    Gte: V,
    Lt: V,
    Lte: V,
    IsNull: bool,
);

#[diagnostic::do_not_recommend]
impl<C: ColumnType> Supports<Eq> for C {
    fn sql(column: &ColumnSql, operand: &C::Scalar, out: &mut Sql) {
        // Equality needs no collation: deterministic collations compare
        // equal only byte-equal strings, and leaving it out keeps indexes usable.
        out.push(column.ident);
        out.push(" = ");
        out.bind(operand.to_sql());
    }
    fn test(value: &C, operand: &C::Scalar) -> bool {
        value
            .value()
            .is_some_and(|v| v.pg_cmp(operand) == Ordering::Equal)
    }
    fn check(operand: &C::Scalar) -> Result<(), String> {
        check_scalar(operand)
    }
    fn normalize(operand: &mut C::Scalar) {
        operand.normalize();
    }
}

#[diagnostic::do_not_recommend]
impl<C: ColumnType> Supports<In> for C {
    fn sql(column: &ColumnSql, operand: &Vec<C::Scalar>, out: &mut Sql) {
        out.push(column.ident);
        out.push(" = ANY(");
        out.bind(C::Scalar::array(operand));
        out.push(")");
    }
    fn test(value: &C, operand: &Vec<C::Scalar>) -> bool {
        value
            .value()
            .is_some_and(|v| operand.iter().any(|o| v.pg_cmp(o) == Ordering::Equal))
    }
    fn check(operand: &Vec<C::Scalar>) -> Result<(), String> {
        if operand.is_empty() {
            return Err("must list at least one value".into());
        }
        if operand.len() > MAX_IN_VALUES {
            return Err(format!("must list at most {MAX_IN_VALUES} values"));
        }
        operand.iter().try_for_each(check_scalar)
    }
    fn normalize(operand: &mut Vec<C::Scalar>) {
        operand.iter_mut().for_each(Scalar::normalize);
        operand.sort_by(Scalar::pg_cmp);
        operand.dedup_by(|a, b| a.pg_cmp(b) == Ordering::Equal);
    }
}

/// `text` as a `LIKE` pattern that matches it literally anywhere.
pub fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[diagnostic::do_not_recommend]
impl<C: ColumnType<Scalar = String>> Supports<Contains> for C {
    fn sql(column: &ColumnSql, operand: &String, out: &mut Sql) {
        out.push(column.ident);
        out.push(" LIKE ");
        out.bind(SqlValue::Text(like_contains(operand)));
    }
    fn test(value: &C, operand: &String) -> bool {
        value.value().is_some_and(|v| v.contains(operand.as_str()))
    }
    fn check(operand: &String) -> Result<(), String> {
        check_scalar(operand)
    }
}

macro_rules! comparison {
    ($op:ident, $sql:literal, $holds:expr) => {
        #[diagnostic::do_not_recommend]
        impl<C: ColumnType> Supports<$op> for C
        where
            C::Scalar: Ordered,
        {
            fn sql(column: &ColumnSql, operand: &C::Scalar, out: &mut Sql) {
                column.ordered(out);
                out.push($sql);
                out.bind(operand.to_sql());
            }
            fn test(value: &C, operand: &C::Scalar) -> bool {
                let holds: fn(Ordering) -> bool = $holds;
                value.value().is_some_and(|v| holds(v.pg_cmp(operand)))
            }
            fn check(operand: &C::Scalar) -> Result<(), String> {
                check_scalar(operand)
            }
            fn normalize(operand: &mut C::Scalar) {
                operand.normalize();
            }
        }
    };
}

comparison!(Gt, " > ", |o| o == Ordering::Greater);
comparison!(Gte, " >= ", |o| o != Ordering::Less);
comparison!(Lt, " < ", |o| o == Ordering::Less);
comparison!(Lte, " <= ", |o| o != Ordering::Greater);

#[diagnostic::do_not_recommend]
impl<C: Nullable> Supports<IsNull> for C {
    fn sql(column: &ColumnSql, operand: &bool, out: &mut Sql) {
        out.push(column.ident);
        out.push(if *operand { " IS NULL" } else { " IS NOT NULL" });
    }
    fn test(value: &C, operand: &bool) -> bool {
        value.value().is_none() == *operand
    }
    fn check(_: &bool) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: ColumnSql = ColumnSql {
        ident: "\"title\"",
        text: true,
    };

    #[test]
    fn like_patterns_are_literal() {
        assert_eq!(like_contains("a_%\\"), "%a\\_\\%\\\\%");
        let mut sql = Sql::new("");
        <String as Supports<Contains>>::sql(&TITLE, &"x".into(), &mut sql);
        assert_eq!(sql.to_string(), "\"title\" LIKE $1");
    }

    #[test]
    fn null_matches_nothing_but_is_null() {
        let none: Option<String> = None;
        assert!(!<Option<String> as Supports<Eq>>::test(&none, &"a".into()));
        assert!(!<Option<String> as Supports<In>>::test(
            &none,
            &vec!["a".into()]
        ));
        assert!(!<Option<String> as Supports<Contains>>::test(
            &none,
            &String::new()
        ));
        assert!(!<Option<String> as Supports<Gt>>::test(&none, &"a".into()));
        assert!(<Option<String> as Supports<IsNull>>::test(&none, &true));
        assert!(!<Option<String> as Supports<IsNull>>::test(&none, &false));
    }

    #[test]
    fn comparisons_use_byte_order_for_text() {
        let mut sql = Sql::new("");
        <String as Supports<Lt>>::sql(&TITLE, &"m".into(), &mut sql);
        assert_eq!(sql.to_string(), "\"title\" COLLATE \"C\" < $1");
        let upper = "Z".to_string();
        assert!(<String as Supports<Lt>>::test(&upper, &"a".into()));
    }

    #[test]
    fn in_lists_normalize_and_are_bounded() {
        let mut v = vec![3i32, 1, 3, 2];
        <i32 as Supports<In>>::normalize(&mut v);
        assert_eq!(v, [1, 2, 3]);
        assert!(<i32 as Supports<In>>::check(&vec![]).is_err());
        assert!(<i32 as Supports<In>>::check(&vec![0; MAX_IN_VALUES + 1]).is_err());
    }
}
