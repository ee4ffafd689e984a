// An operator is a type in `pglive_schema::ops`, named in CamelCase; `like`
// would be `ops::Like`, which does not exist.
use pglive_macros::live_table;

#[live_table(name = "words", key = id)]
pub struct Word {
    #[live(generated, filter(eq, like))]
    pub id: i32,
}

fn main() {}
