// Declarations refused whatever the operators: each struct is one mistake.
use pglive_macros::live_table;

#[live_table(name = "nullable_keys", key = id)]
pub struct NullableKey {
    pub id: Option<i32>,
}

#[live_table(name = "unknown_options", key = id)]
pub struct UnknownOption {
    #[live(searchable)]
    pub id: i32,
}

#[live_table(name = "twice", key = id)]
pub struct Twice {
    #[live(filter(eq, eq))]
    pub id: i32,
}

fn main() {}
