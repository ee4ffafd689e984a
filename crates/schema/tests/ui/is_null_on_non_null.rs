// `is_null` filters nullable (`Option`) columns only.
use pglive_macros::live_table;

#[live_table(name = "notes", key = id)]
pub struct Note {
    #[live(generated, filter(eq))]
    pub id: i32,
    #[live(filter(eq, is_null))]
    pub owner: String,
}

fn main() {}
