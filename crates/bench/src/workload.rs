//! What a scenario's writes are: the table they go to and the mix of row
//! operations. The scenarios' parameters name them, the database seeds the
//! table, and the writer carries them out.

use anyhow::{Context, Result};
use serde::Serialize;

/// The table the writes go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// `items`: every client sees every write (group 0).
    Items,
    /// `tasks` with `assignee = 'user-<g>'`, g in 0..groups: only group g's
    /// clients see a write.
    Tasks { groups: usize },
}

/// Percentages of UPDATE, INSERT and DELETE row operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub update: u32,
    pub insert: u32,
    pub delete: u32,
}

impl std::str::FromStr for Mix {
    type Err = anyhow::Error;

    /// `update=60,insert=20,delete=20` (missing kinds are 0).
    fn from_str(s: &str) -> Result<Mix> {
        let mut mix = Mix {
            update: 0,
            insert: 0,
            delete: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .with_context(|| format!("mix part {part:?}: expected kind=percent"))?;
            let v: u32 = v
                .trim()
                .parse()
                .with_context(|| format!("mix part {part:?}: bad percent"))?;
            match k.trim() {
                "update" | "u" => mix.update = v,
                "insert" | "i" => mix.insert = v,
                "delete" | "d" => mix.delete = v,
                other => anyhow::bail!("mix: unknown kind {other:?} (update, insert, delete)"),
            }
        }
        anyhow::ensure!(
            mix.update + mix.insert + mix.delete == 100,
            "mix percentages must add up to 100"
        );
        Ok(mix)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "update={},insert={},delete={}",
            self.update, self.insert, self.delete
        )
    }
}
