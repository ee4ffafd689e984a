//! Diesel mappings of the live tables. The SQL that creates them lives in
//! `migrations/`; these definitions must match it column for column.

diesel::table! {
    items (id) {
        id -> Int4,
        name -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tasks (id) {
        id -> Int4,
        title -> Text,
        status -> Text,
        priority -> Int2,
        assignee -> Nullable<Text>,
        due_date -> Nullable<Date>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}
