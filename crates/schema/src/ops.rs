//! Filter operators. Each is defined once, with both of its meanings: the SQL
//! condition a full query runs ([`Operator::sql`]) and the Rust predicate the
//! engine applies to changed rows in memory ([`Operator::test`]). The two must
//! agree for every value, NULL included; the server's tests check that per
//! operator and per column type against PostgreSQL.

use std::cmp::Ordering;

use serde::Serialize;

use crate::scalar::Scalar;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
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

/// One operator over columns of type `V`.
pub trait Operator<V: Scalar> {
    /// What a client gives: a value, a list, a text or a flag.
    type Operand;
    const OP: Op;
    /// Appends the SQL condition.
    fn sql(column: &ColumnSql, operand: &Self::Operand, out: &mut Sql);
    /// The same condition in Rust; `value` is `None` for SQL `NULL`.
    fn test(value: Option<&V>, operand: &Self::Operand) -> bool;
    /// Refuses operands PostgreSQL cannot take or pglive does not serve.
    fn check(operand: &Self::Operand) -> Result<(), String>;
    /// Canonical form: equal conditions normalize equal.
    fn normalize(_operand: &mut Self::Operand) {}
}

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

/// `column LIKE '%text%'`, the text taken literally (case-sensitive).
#[derive(Debug)]
pub struct Contains;

/// `column > value` (text in byte order).
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

/// `column IS NULL` (`true`) or `column IS NOT NULL` (`false`).
#[derive(Debug)]
pub struct IsNull;

impl<V: Scalar> Operator<V> for Eq {
    type Operand = V;
    const OP: Op = Op::Eq;
    fn sql(column: &ColumnSql, operand: &V, out: &mut Sql) {
        // Equality needs no collation: deterministic collations compare
        // equal only byte-equal strings, and leaving it out keeps indexes usable.
        out.push(column.ident);
        out.push(" = ");
        out.bind(operand.to_sql());
    }
    fn test(value: Option<&V>, operand: &V) -> bool {
        value.is_some_and(|v| v.pg_cmp(operand) == Ordering::Equal)
    }
    fn check(operand: &V) -> Result<(), String> {
        check_scalar(operand)
    }
    fn normalize(operand: &mut V) {
        operand.normalize();
    }
}

impl<V: Scalar> Operator<V> for In {
    type Operand = Vec<V>;
    const OP: Op = Op::In;
    fn sql(column: &ColumnSql, operand: &Vec<V>, out: &mut Sql) {
        out.push(column.ident);
        out.push(" = ANY(");
        out.bind(V::array(operand));
        out.push(")");
    }
    fn test(value: Option<&V>, operand: &Vec<V>) -> bool {
        value.is_some_and(|v| operand.iter().any(|o| v.pg_cmp(o) == Ordering::Equal))
    }
    fn check(operand: &Vec<V>) -> Result<(), String> {
        if operand.is_empty() {
            return Err("must list at least one value".into());
        }
        if operand.len() > MAX_IN_VALUES {
            return Err(format!("must list at most {MAX_IN_VALUES} values"));
        }
        operand.iter().try_for_each(check_scalar)
    }
    fn normalize(operand: &mut Vec<V>) {
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

impl Operator<String> for Contains {
    type Operand = String;
    const OP: Op = Op::Contains;
    fn sql(column: &ColumnSql, operand: &String, out: &mut Sql) {
        out.push(column.ident);
        out.push(" LIKE ");
        out.bind(SqlValue::Text(like_contains(operand)));
    }
    fn test(value: Option<&String>, operand: &String) -> bool {
        value.is_some_and(|v| v.contains(operand.as_str()))
    }
    fn check(operand: &String) -> Result<(), String> {
        check_scalar(operand)
    }
}

macro_rules! comparison {
    ($op:ident, $sql:literal, $holds:expr) => {
        impl<V: Scalar> Operator<V> for $op {
            type Operand = V;
            const OP: Op = Op::$op;
            fn sql(column: &ColumnSql, operand: &V, out: &mut Sql) {
                column.ordered(out);
                out.push($sql);
                out.bind(operand.to_sql());
            }
            fn test(value: Option<&V>, operand: &V) -> bool {
                let holds: fn(Ordering) -> bool = $holds;
                value.is_some_and(|v| holds(v.pg_cmp(operand)))
            }
            fn check(operand: &V) -> Result<(), String> {
                check_scalar(operand)
            }
            fn normalize(operand: &mut V) {
                operand.normalize();
            }
        }
    };
}

comparison!(Gt, " > ", |o| o == Ordering::Greater);
comparison!(Gte, " >= ", |o| o != Ordering::Less);
comparison!(Lt, " < ", |o| o == Ordering::Less);
comparison!(Lte, " <= ", |o| o != Ordering::Greater);

impl<V: Scalar> Operator<V> for IsNull {
    type Operand = bool;
    const OP: Op = Op::IsNull;
    fn sql(column: &ColumnSql, operand: &bool, out: &mut Sql) {
        out.push(column.ident);
        out.push(if *operand { " IS NULL" } else { " IS NOT NULL" });
    }
    fn test(value: Option<&V>, operand: &bool) -> bool {
        value.is_none() == *operand
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
        <Contains as Operator<String>>::sql(&TITLE, &"x".into(), &mut sql);
        assert_eq!(sql.to_string(), "\"title\" LIKE $1");
    }

    #[test]
    fn null_matches_nothing_but_is_null() {
        let none: Option<&String> = None;
        assert!(!<Eq as Operator<String>>::test(none, &"a".into()));
        assert!(!<In as Operator<String>>::test(none, &vec!["a".into()]));
        assert!(!<Contains as Operator<String>>::test(none, &String::new()));
        assert!(!<Gt as Operator<String>>::test(none, &"a".into()));
        assert!(<IsNull as Operator<String>>::test(none, &true));
        assert!(!<IsNull as Operator<String>>::test(none, &false));
    }

    #[test]
    fn comparisons_use_byte_order_for_text() {
        let mut sql = Sql::new("");
        <Lt as Operator<String>>::sql(&TITLE, &"m".into(), &mut sql);
        assert_eq!(sql.to_string(), "\"title\" COLLATE \"C\" < $1");
        let upper = "Z".to_string();
        assert!(<Lt as Operator<String>>::test(Some(&upper), &"a".into()));
    }

    #[test]
    fn in_lists_normalize_and_are_bounded() {
        let mut v = vec![3i32, 1, 3, 2];
        <In as Operator<i32>>::normalize(&mut v);
        assert_eq!(v, [1, 2, 3]);
        assert!(<In as Operator<i32>>::check(&vec![]).is_err());
        assert!(<In as Operator<i32>>::check(&vec![0; MAX_IN_VALUES + 1]).is_err());
    }
}
