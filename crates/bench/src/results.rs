//! The results of one invocation: the JSON (written after every scenario,
//! so that a long `all` leaves partial results) and the same tables as
//! Markdown beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::machine::Machine;
use crate::scenario::Params;
use crate::scenario::fanout::{FloorRatioSpread, FloorRatios, TargetReport};
use crate::scenario::related::params::RParams;
use crate::scenario::related::report::RelReport;
use crate::scenario::tenants::params::TParams;
use crate::scenario::tenants::report::{ReconnectReport, RlsReport};
use crate::scenario::writers::WritersResult;

/// One run of an S1–S6 scenario.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub params: Params,
    /// Which of `--repeat` runs this was (1-based).
    pub round: u32,
    pub pglive: Option<TargetReport>,
    pub floor: Option<TargetReport>,
    pub peer: Option<TargetReport>,
    /// pglive ÷ floor in this run (when both ran).
    pub floor_ratios: Option<FloorRatios>,
}

/// The JSON results of one invocation.
#[derive(Debug, Serialize)]
pub struct Results {
    pub tool: &'static str,
    pub started_at: String,
    pub command: String,
    pub machine: Machine,
    pub pglive_bin: Option<String>,
    /// `git rev-parse HEAD` of the repository, `+dirty` with local changes
    /// under crates/ or migrations/.
    pub git: Option<String>,
    pub scenarios: Vec<ScenarioResult>,
    /// With `--repeat`: each scenario's ratios to the floor over its runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub floor_ratio_spreads: Vec<FloorRatioSpread>,
    /// Scenario W, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writers: Option<WritersResult>,
    /// Scenarios RLS and RECONNECT (and their smoke variants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenant_scenarios: Vec<TenantResult>,
    /// Scenarios REL and REL-MOVE (and REL-SMOKE).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related_scenarios: Vec<RelResult>,
}

/// One run of REL, REL-MOVE or REL-SMOKE.
#[derive(Debug, Serialize)]
pub struct RelResult {
    pub params: RParams,
    pub report: RelReport,
}

/// One run of RLS or RECONNECT (RECONNECT: resume, then snapshot).
#[derive(Debug, Serialize)]
pub struct TenantResult {
    pub params: TParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rls: Option<RlsReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconnect: Vec<ReconnectReport>,
}

/// The results so far and where they go.
pub struct Output {
    pub results: Results,
    pub json_path: PathBuf,
    pub md_path: PathBuf,
    markdown: String,
}

impl Output {
    /// The results go to `json_path`, the tables to the same path with `.md`.
    pub fn new(results: Results, json_path: PathBuf) -> Output {
        let md_path = json_path.with_extension("md");
        Output {
            results,
            json_path,
            md_path,
            markdown: String::new(),
        }
    }

    /// Adds to the Markdown tables.
    pub fn markdown(&mut self, text: &str) {
        self.markdown.push_str(text);
    }

    /// Writes both files as they are now.
    pub fn save(&self) -> Result<()> {
        write_json(&self.json_path, &self.results)?;
        std::fs::write(&self.md_path, &self.markdown)
            .with_context(|| format!("writing {}", self.md_path.display()))
    }
}

fn write_json(path: &Path, results: &Results) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(results).context("encoding results")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
