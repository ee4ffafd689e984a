// Comparisons filter columns whose values are ordered; a flag is not.
use pglive_macros::live_table;

#[live_table(name = "flags", key = id)]
pub struct Flag {
    #[live(generated, filter(eq))]
    pub id: i32,
    #[live(filter(eq, gte))]
    pub done: bool,
}

fn main() {}
