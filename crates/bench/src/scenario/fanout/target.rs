//! The servers S1–S6 compare.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pglive,
    /// The article's Node.js server (`../shared/peers/seed-node`).
    Peer,
    /// The fan-out floor (`../shared/peers/floor-rs`).
    Floor,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Pglive => "pglive",
            Target::Peer => "seed-node",
            Target::Floor => "floor",
        }
    }

    /// The suffix of its databases' names.
    pub fn db_suffix(self) -> &'static str {
        match self {
            Target::Pglive => "pglive",
            Target::Peer => "peer",
            Target::Floor => "floor",
        }
    }
}
