//! The replication slot WAL capture reads from. pglive owns it: it is
//! created when missing (`pgoutput`, in this database), confirmed only up to
//! what the readers have handled, measured (bytes of WAL it retains), and
//! dropped by `pglive slot drop`. A slot keeps WAL until it is confirmed, so
//! a pglive that is down for long makes PostgreSQL keep WAL for it (up to
//! `max_slot_wal_keep_size`, past which PostgreSQL invalidates the slot; the
//! next start then recreates it and resyncs every client).

use std::str::FromStr;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::error::CaptureError;

/// `pglive_<database>`, made a legal slot name (lower-case letters, digits
/// and underscores, at most 63 bytes; a cut name gets a hash of the whole).
pub fn default_name(database_url: &str) -> Result<String, CaptureError> {
    let config = tokio_postgres::Config::from_str(database_url)
        .map_err(|err| CaptureError::Url(err.to_string()))?;
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    let cleaned: String = database
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("pglive_{cleaned}");
    if name.len() <= 63 {
        return Ok(name);
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    database.hash(&mut hasher);
    let hash = format!("{:016x}", hasher.finish());
    Ok(format!("{}_{hash}", &name[..63 - 17]))
}

/// PostgreSQL's rule for slot names.
pub fn validate(name: &str) -> Result<(), CaptureError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CaptureError::SlotName(name.to_owned()))
    }
}

#[derive(QueryableByName)]
struct Preflight {
    #[diesel(sql_type = Text)]
    wal_level: String,
    #[diesel(sql_type = Bool)]
    may_replicate: bool,
    #[diesel(sql_type = Text)]
    role: String,
}

/// The server and the role can do logical replication: clear errors
/// otherwise, before anything is created.
pub async fn preflight(conn: &mut AsyncPgConnection) -> Result<(), CaptureError> {
    let found: Preflight = diesel::sql_query(
        "SELECT current_setting('wal_level') AS wal_level, \
                coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false) AS may_replicate, \
                current_user::text AS role",
    )
    .get_result(conn)
    .await?;
    if found.wal_level != "logical" {
        return Err(CaptureError::WalLevel(found.wal_level));
    }
    if !found.may_replicate {
        return Err(CaptureError::NoReplication(found.role));
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Existing {
    #[diesel(sql_type = Nullable<Text>)]
    plugin: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    database: Option<String>,
    #[diesel(sql_type = Bool)]
    ours: bool,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    active_pid: Option<i32>,
}

async fn existing(
    conn: &mut AsyncPgConnection,
    slot: &str,
) -> Result<Option<Existing>, CaptureError> {
    let rows: Vec<Existing> = diesel::sql_query(
        "SELECT plugin::text, database::text, \
                (plugin = 'pgoutput' AND slot_type = 'logical' AND database = current_database()) AS ours, \
                active_pid \
           FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind::<Text, _>(slot)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Existing,
    Created,
}

/// Makes sure `slot` exists, belongs to this database, uses `pgoutput` and
/// is free. With `fresh`, an existing slot is dropped and created again:
/// when the capture mode was just switched, the old slot's WAL predates the
/// publication and could not be decoded.
pub async fn ensure(
    conn: &mut AsyncPgConnection,
    slot: &str,
    fresh: bool,
) -> Result<Ensured, CaptureError> {
    if let Some(found) = existing(conn, slot).await? {
        if !found.ours {
            return Err(CaptureError::ForeignSlot {
                slot: slot.to_owned(),
                database: found.database.unwrap_or_else(|| "(none)".into()),
                plugin: found.plugin.unwrap_or_else(|| "(none)".into()),
            });
        }
        if let Some(pid) = found.active_pid {
            return Err(CaptureError::SlotInUse {
                slot: slot.to_owned(),
                pid,
            });
        }
        if !fresh {
            return Ok(Ensured::Existing);
        }
        drop_inactive(conn, slot).await?;
    }
    // Creating a logical slot waits for the transactions running now to
    // end, so that it starts at a consistent point.
    tracing::info!(slot, "creating the replication slot");
    let created = diesel::sql_query(
        "SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')",
    )
    .bind::<Text, _>(slot)
    .execute(conn)
    .await;
    match created {
        Ok(_) => Ok(Ensured::Created),
        // Another server created it meanwhile: it is ours all the same.
        Err(err) if err.to_string().contains("already exists") => Ok(Ensured::Existing),
        Err(err) => Err(CaptureError::CreateSlot {
            slot: slot.to_owned(),
            reason: err.to_string(),
        }),
    }
}

async fn drop_inactive(conn: &mut AsyncPgConnection, slot: &str) -> Result<(), CaptureError> {
    diesel::sql_query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
          WHERE slot_name = $1 AND NOT active",
    )
    .bind::<Text, _>(slot)
    .execute(conn)
    .await?;
    Ok(())
}

/// What `pglive slot drop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Dropped,
    Missing,
}

/// `pglive slot drop`: drops the slot of `database_url` (named `slot_name`,
/// else the default name); returns its name and what happened.
pub async fn drop_for(
    database_url: &str,
    slot_name: Option<&str>,
) -> Result<(String, Dropped), CaptureError> {
    let slot = match slot_name {
        Some(name) => name.to_owned(),
        None => default_name(database_url)?,
    };
    let mut conn = crate::db::connect(database_url).await?;
    let dropped = drop(&mut conn, &slot).await?;
    Ok((slot, dropped))
}

/// Drops `slot` if it exists and no one reads from it.
pub async fn drop(conn: &mut AsyncPgConnection, slot: &str) -> Result<Dropped, CaptureError> {
    validate(slot)?;
    match existing(conn, slot).await? {
        None => Ok(Dropped::Missing),
        Some(found) => {
            if let Some(pid) = found.active_pid {
                return Err(CaptureError::SlotInUse {
                    slot: slot.to_owned(),
                    pid,
                });
            }
            drop_inactive(conn, slot).await?;
            Ok(Dropped::Dropped)
        }
    }
}

#[derive(QueryableByName)]
struct LagRow {
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    lag: Option<i64>,
}

/// The slot as the database sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// A walsender reads from it.
    pub active: bool,
    /// Bytes of WAL written since its confirmed position.
    pub bytes: i64,
}

/// Measures `slot`; `None` when it does not exist (any more).
pub async fn lag(conn: &mut AsyncPgConnection, slot: &str) -> Result<Option<Lag>, CaptureError> {
    let rows: Vec<LagRow> = diesel::sql_query(
        "SELECT active, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint AS lag \
           FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind::<Text, _>(slot)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|row| Lag {
        active: row.active,
        bytes: row.lag.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_legal_slot_names() {
        let name = default_name("postgres://u@h:5432/My-App.db").unwrap();
        assert_eq!(name, "pglive_my_app_db");
        validate(&name).unwrap();
        let long = format!("postgres://u@h/{}", "x".repeat(100));
        let name = default_name(&long).unwrap();
        assert_eq!(name.len(), 63);
        validate(&name).unwrap();
        assert_ne!(name, default_name(&format!("{long}y")).unwrap());
        assert_eq!(
            default_name("host=/tmp user=bob").unwrap(),
            "pglive_bob",
            "no database: libpq uses the user's name"
        );
        assert!(validate("Bad-Name").is_err());
        assert!(validate("").is_err());
    }
}
