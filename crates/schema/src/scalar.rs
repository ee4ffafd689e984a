//! Column value types: what a live table's columns may hold, and how each one
//! binds, compares and checks exactly as PostgreSQL does.
//!
//! The engine keeps query results current in memory: it decides in Rust
//! whether a changed row passes a filter and where it sorts. That is only
//! correct if every comparison here agrees with PostgreSQL's, so each type
//! states its order ([`Scalar::pg_cmp`]), what PostgreSQL can store
//! ([`Scalar::check`]) and the precision it keeps ([`Scalar::normalize`]).
//! Text compares and sorts byte-wise: pglive's SQL says `COLLATE "C"`.

use std::cmp::Ordering;
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ts_rs::TS;
use uuid::Uuid;

use crate::sql::SqlValue;

/// What kind of value a column holds, as clients see it in the table metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalarKind {
    Bool,
    Int2,
    Int4,
    /// A `bigint`; a decimal string on the wire (see [`Int8`]).
    Int8,
    Text,
    /// Text restricted to a closed set of values (a `TEXT` column with a `CHECK`).
    Enum,
    Date,
    Timestamptz,
    Uuid,
}

/// A column value type.
pub trait Scalar:
    Clone + PartialEq + Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    const KIND: ScalarKind;
    /// The values of an [`ScalarKind::Enum`]; empty otherwise.
    const VALUES: &'static [&'static str] = &[];
    /// Text-like: compared and ordered with `COLLATE "C"` in SQL.
    const TEXT: bool = false;
    /// The diesel SQL type rows are decoded with.
    type Sql: diesel::sql_types::SqlType + diesel::sql_types::SingleValue;

    /// The value as a statement parameter.
    fn to_sql(&self) -> SqlValue;
    /// Values as one array parameter (for `= ANY($1)`).
    fn array(values: &[Self]) -> SqlValue;
    /// PostgreSQL's order of two non-null values.
    fn pg_cmp(&self, other: &Self) -> Ordering;
    /// Whether PostgreSQL can store the value; a message when it cannot.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// Rounds the value to what PostgreSQL keeps (timestamps: microseconds),
    /// so that Rust compares the same value SQL receives.
    fn normalize(&mut self) {}
    /// The text, for text rules (`text(max = N)`) and `contains`.
    fn text(&self) -> Option<&str> {
        None
    }
    /// The integer, for `range(min, max)`.
    fn integer(&self) -> Option<i64> {
        None
    }
}

/// A value type whose order comparison filters (`ops::Gt` and the like)
/// compare by: every scalar but `bool`, whose order (`false` before `true`)
/// no filter means.
pub trait Ordered: Scalar {}

/// A value that can be a table's key: hashable and totally ordered, and
/// readable from a change notice and from a URL path segment.
pub trait LiveKey: Scalar + Eq + Hash + Ord {
    /// Parses the key from a REST path segment.
    fn parse_path(segment: &str) -> Option<Self>;
}

/// No NUL characters: PostgreSQL's `text` cannot hold them.
fn check_text(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        Err("text must not contain NUL characters".into())
    } else {
        Ok(())
    }
}

impl Scalar for String {
    const KIND: ScalarKind = ScalarKind::Text;
    const TEXT: bool = true;
    type Sql = sql_types::Text;
    fn to_sql(&self) -> SqlValue {
        SqlValue::Text(self.clone())
    }
    fn array(values: &[Self]) -> SqlValue {
        SqlValue::TextArray(values.to_vec())
    }
    fn pg_cmp(&self, other: &Self) -> Ordering {
        // `COLLATE "C"` compares bytes, and UTF-8 byte order is `str`'s order.
        self.as_bytes().cmp(other.as_bytes())
    }
    fn check(&self) -> Result<(), String> {
        check_text(self)
    }
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Ordered for String {}

impl LiveKey for String {
    fn parse_path(segment: &str) -> Option<Self> {
        (!segment.is_empty() && !segment.contains('\0')).then(|| segment.to_owned())
    }
}

impl Scalar for bool {
    const KIND: ScalarKind = ScalarKind::Bool;
    type Sql = sql_types::Bool;
    fn to_sql(&self) -> SqlValue {
        SqlValue::Bool(*self)
    }
    fn array(values: &[Self]) -> SqlValue {
        SqlValue::BoolArray(values.to_vec())
    }
    fn pg_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}

macro_rules! integer {
    ($t:ty, $kind:ident, $sql:ty, $value:ident, $array:ident) => {
        impl Scalar for $t {
            const KIND: ScalarKind = ScalarKind::$kind;
            type Sql = $sql;
            fn to_sql(&self) -> SqlValue {
                SqlValue::$value(*self)
            }
            fn array(values: &[Self]) -> SqlValue {
                SqlValue::$array(values.to_vec())
            }
            fn pg_cmp(&self, other: &Self) -> Ordering {
                self.cmp(other)
            }
            fn integer(&self) -> Option<i64> {
                Some(i64::from(*self))
            }
        }

        impl Ordered for $t {}

        impl LiveKey for $t {
            fn parse_path(segment: &str) -> Option<Self> {
                segment.parse().ok()
            }
        }
    };
}

integer!(i16, Int2, sql_types::SmallInt, Int2, Int2Array);
integer!(i32, Int4, sql_types::Integer, Int4, Int4Array);

/// A PostgreSQL `bigint`. On the wire it is a decimal string: JavaScript's
/// `number` is exact only up to 2^53, and a key that a browser silently
/// rounded would name another row. It is read from a string or, for clients
/// that have exact integers, from a JSON number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, TS)]
#[ts(type = "string")]
pub struct Int8(pub i64);

impl Debug for Int8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Int8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<i64> for Int8 {
    fn from(v: i64) -> Int8 {
        Int8(v)
    }
}

impl FromStr for Int8 {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Int8, Self::Err> {
        s.parse().map(Int8)
    }
}

impl Serialize for Int8 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Int8 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Int8, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(i64),
            Text(String),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Number(n) => Ok(Int8(n)),
            Wire::Text(s) => s
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a 64-bit integer"))),
        }
    }
}

impl JsonSchema for Int8 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Int8".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A 64-bit integer as a decimal string (exact in every JSON client).",
            "type": "string",
            "pattern": "^-?[0-9]{1,19}$"
        })
    }
}

impl FromSql<sql_types::BigInt, Pg> for Int8 {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <i64 as FromSql<sql_types::BigInt, Pg>>::from_sql(bytes).map(Int8)
    }
}

impl Scalar for Int8 {
    const KIND: ScalarKind = ScalarKind::Int8;
    type Sql = sql_types::BigInt;
    fn to_sql(&self) -> SqlValue {
        SqlValue::Int8(self.0)
    }
    fn array(values: &[Self]) -> SqlValue {
        SqlValue::Int8Array(values.iter().map(|v| v.0).collect())
    }
    fn pg_cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
    fn integer(&self) -> Option<i64> {
        Some(self.0)
    }
}

impl Ordered for Int8 {}

impl LiveKey for Int8 {
    fn parse_path(segment: &str) -> Option<Self> {
        segment.parse().ok()
    }
}

impl Scalar for Uuid {
    const KIND: ScalarKind = ScalarKind::Uuid;
    type Sql = sql_types::Uuid;
    fn to_sql(&self) -> SqlValue {
        SqlValue::Uuid(*self)
    }
    fn array(values: &[Self]) -> SqlValue {
        SqlValue::UuidArray(values.to_vec())
    }
    fn pg_cmp(&self, other: &Self) -> Ordering {
        // PostgreSQL orders uuids by their 16 bytes, as `Uuid`'s `Ord` does.
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Ordered for Uuid {}

impl LiveKey for Uuid {
    fn parse_path(segment: &str) -> Option<Self> {
        Uuid::parse_str(segment).ok()
    }
}

impl Ordered for NaiveDate {}

impl Ordered for DateTime<Utc> {}

/// The earliest date and timestamp PostgreSQL stores: 4714-11-24 BC
/// (astronomical year -4713). chrono goes further back; PostgreSQL refuses.
fn pg_min_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap_or(NaiveDate::MIN)
}

impl Scalar for NaiveDate {
    const KIND: ScalarKind = ScalarKind::Date;
    type Sql = sql_types::Date;
    fn to_sql(&self) -> SqlValue {
        SqlValue::Date(*self)
    }
    fn array(values: &[Self]) -> SqlValue {
        SqlValue::DateArray(values.to_vec())
    }
    fn pg_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
    fn check(&self) -> Result<(), String> {
        // PostgreSQL's upper bound (5874897 AD) is past chrono's; only the
        // lower one can be crossed.
        if *self < pg_min_date() {
            return Err(format!(
                "date {self} is before 4714-11-24 BC, the earliest PostgreSQL stores (year {})",
                self.year()
            ));
        }
        Ok(())
    }
}

impl Scalar for DateTime<Utc> {
    const KIND: ScalarKind = ScalarKind::Timestamptz;
    type Sql = sql_types::Timestamptz;
    fn to_sql(&self) -> SqlValue {
        SqlValue::Timestamptz(*self)
    }
    fn array(values: &[Self]) -> SqlValue {
        SqlValue::TimestamptzArray(values.to_vec())
    }
    fn pg_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
    fn check(&self) -> Result<(), String> {
        if self.date_naive() < pg_min_date() {
            return Err(format!(
                "timestamp {self} is before 4714-11-24 BC, the earliest PostgreSQL stores"
            ));
        }
        Ok(())
    }
    fn normalize(&mut self) {
        // PostgreSQL keeps microseconds, and diesel sends a timestamp as
        // whole microseconds rounded down; round the same way here.
        let sub = i64::from(self.timestamp_subsec_nanos() % 1_000);
        *self -= chrono::Duration::nanoseconds(sub);
    }
}

/// Implements [`Scalar`] (and decoding) for a closed set of text values
/// stored in a `TEXT` column with a `CHECK`: the enum's serde names are the
/// stored values, and values sort as text, as in SQL.
#[macro_export]
macro_rules! text_enum {
    ($name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value),+
                }
            }

            /// Parses the stored form.
            pub fn parse(s: &str) -> ::std::option::Option<$name> {
                match s {
                    $($value => ::std::option::Option::Some($name::$variant),)+
                    _ => ::std::option::Option::None,
                }
            }
        }

        impl $crate::scalar::Scalar for $name {
            const KIND: $crate::scalar::ScalarKind = $crate::scalar::ScalarKind::Enum;
            const VALUES: &'static [&'static str] = &[$($value),+];
            const TEXT: bool = true;
            type Sql = ::diesel::sql_types::Text;
            fn to_sql(&self) -> $crate::sql::SqlValue {
                $crate::sql::SqlValue::Text(self.as_str().to_owned())
            }
            fn array(values: &[Self]) -> $crate::sql::SqlValue {
                $crate::sql::SqlValue::TextArray(values.iter().map(|v| v.as_str().to_owned()).collect())
            }
            fn pg_cmp(&self, other: &Self) -> ::std::cmp::Ordering {
                self.as_str().as_bytes().cmp(other.as_str().as_bytes())
            }
            fn text(&self) -> ::std::option::Option<&str> {
                ::std::option::Option::Some(self.as_str())
            }
        }

        impl $crate::scalar::Ordered for $name {}

        impl ::diesel::deserialize::FromSql<::diesel::sql_types::Text, ::diesel::pg::Pg> for $name {
            fn from_sql(bytes: ::diesel::pg::PgValue<'_>) -> ::diesel::deserialize::Result<Self> {
                let text = <::std::string::String as ::diesel::deserialize::FromSql<
                    ::diesel::sql_types::Text,
                    ::diesel::pg::Pg,
                >>::from_sql(bytes)?;
                $name::parse(&text).ok_or_else(|| {
                    ::std::format!("unknown {} value {text:?}", ::std::stringify!($name)).into()
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_travels_as_a_string_and_reads_both_forms() {
        let big = Int8(9_007_199_254_740_993);
        assert_eq!(serde_json::to_string(&big).unwrap(), "\"9007199254740993\"");
        assert_eq!(
            serde_json::from_str::<Int8>("\"9007199254740993\"").unwrap(),
            big
        );
        assert_eq!(
            serde_json::from_str::<Int8>("9007199254740993").unwrap(),
            big
        );
        assert!(serde_json::from_str::<Int8>("\"12x\"").is_err());
        assert!(serde_json::from_str::<Int8>("1.5").is_err());
    }

    #[test]
    fn dates_before_postgres_range_are_refused() {
        let ok = NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap();
        assert!(ok.check().is_ok());
        assert!(ok.pred_opt().unwrap().check().is_err());
        let far = NaiveDate::from_ymd_opt(-10000, 1, 1).unwrap();
        assert!(far.check().is_err());
        let t = far.and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert!(t.check().is_err());
    }

    #[test]
    fn timestamps_round_down_to_microseconds() {
        let mut t = DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap();
        t.normalize();
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_000);
        let mut before_2000 = DateTime::from_timestamp(-5, 999).unwrap();
        before_2000.normalize();
        assert_eq!(before_2000.timestamp_subsec_nanos(), 0);
        assert_eq!(before_2000.timestamp(), -5);
    }

    #[test]
    fn text_orders_by_bytes() {
        let (a, b) = ("Z".to_string(), "a".to_string());
        assert_eq!(a.pg_cmp(&b), Ordering::Less);
        assert!("x\0".to_string().check().is_err());
    }
}
