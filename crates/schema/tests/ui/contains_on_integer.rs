// `contains` matches text: it cannot filter an integer column.
use pglive_macros::live_table;

#[live_table(name = "counters", key = id)]
pub struct Counter {
    #[live(generated, filter(eq))]
    pub id: i32,
    #[live(filter(eq, contains))]
    pub count: i32,
}

fn main() {}
