//! Strict decoding: nested values of the wire messages are accepted only
//! from JSON objects, as the published JSON Schema says. Below both `wire`
//! and `live` (whose generated query types use it too), so that neither
//! imports the other for it.

use serde::Deserialize;

/// Deserializes an optional nested value only from a JSON object (or
/// `null`). serde also builds structs from arrays (`"filter": []`), which
/// the published JSON Schema refuses; the server accepts exactly what the
/// schema accepts.
pub fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Object<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_any(Object(std::marker::PhantomData))
}

/// Deserializes a required nested value only from a JSON object (see
/// [`object`]).
pub fn object_required<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    object(deserializer)?.ok_or_else(|| serde::de::Error::custom("expected an object, found null"))
}
