//! Deploys and their stored comparisons in the SQLite store.
//!
//! Both tables are insert-if-absent: a deploy's id is a hash of what identifies it, and a
//! comparison is written once per deploy, so retries and several collectors sharing the file
//! all read the same rows.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::sqlite::backend;
use crate::deploys::{Deploy, DeployQuery};

const COLUMNS: &str =
    "id, service, environment, version, commit_id, description, time_ms, automatic, commit_time_ms";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deploy> {
    Ok(Deploy {
        id: r.get(0)?,
        service: r.get(1)?,
        environment: r.get(2)?,
        version: r.get(3)?,
        commit: r.get(4)?,
        description: r.get(5)?,
        time_ms: r.get(6)?,
        automatic: r.get::<_, i64>(7)? != 0,
        commit_time_ms: r.get(8)?,
    })
}

pub(super) fn record(conn: &Connection, d: &Deploy) -> Result<Deploy, StoreError> {
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO deploys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            d.id,
            d.service,
            d.environment,
            d.version,
            d.commit,
            d.description,
            d.time_ms,
            i64::from(d.automatic),
            d.commit_time_ms
        ],
    )
    .map_err(backend)?;
    get(conn, &d.id)?.ok_or_else(|| StoreError::Backend(format!("deploy {} vanished", d.id)))
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<Deploy>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM deploys WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
    .map_err(backend)
}

pub(super) fn list(conn: &Connection, q: &DeployQuery) -> Result<Vec<Deploy>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM deploys
             WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR environment = ?2)
               AND time_ms >= ?3 AND time_ms < ?4
             ORDER BY time_ms DESC, id LIMIT ?5"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(
            params![
                q.service,
                q.environment,
                q.from_ms.unwrap_or(i64::MIN),
                q.to_ms.unwrap_or(i64::MAX),
                i64::try_from(q.limit).unwrap_or(i64::MAX)
            ],
            from_row,
        )
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub(super) fn uncompared(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Deploy>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM deploys
             WHERE time_ms >= ?1 AND time_ms < ?2
               AND id NOT IN (SELECT deploy_id FROM comparisons)
             ORDER BY time_ms, id"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![from_ms, to_ms], from_row)
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub(super) fn save_comparison(
    conn: &Connection,
    deploy_id: &str,
    report: &str,
) -> Result<String, StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO comparisons (deploy_id, report) VALUES (?1, ?2)",
        params![deploy_id, report],
    )
    .map_err(backend)?;
    comparison(conn, deploy_id)?
        .ok_or_else(|| StoreError::Backend(format!("comparison of {deploy_id} vanished")))
}

pub(super) fn comparison(conn: &Connection, deploy_id: &str) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT report FROM comparisons WHERE deploy_id = ?1",
        [deploy_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
}

pub(super) fn enforce_retention(conn: &Connection, before_ms: i64) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM comparisons WHERE deploy_id IN (SELECT id FROM deploys WHERE time_ms < ?1)",
        [before_ms],
    )
    .map_err(backend)?;
    let deleted = conn
        .execute("DELETE FROM deploys WHERE time_ms < ?1", [before_ms])
        .map_err(backend)?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use crate::deploys::{Deploy, NewDeploy};
    use crate::store::{SqliteStore, Store};

    const NOW: i64 = 1_800_000_000_000;

    fn deploy(service: &str, version: &str, time_ms: i64) -> Deploy {
        NewDeploy {
            service: service.into(),
            version: version.into(),
            time_ms: Some(time_ms),
            commit: Some("abc123".into()),
            ..NewDeploy::default()
        }
        .into_deploy(NOW, 0)
        .unwrap()
    }

    #[test]
    fn deploys_and_comparisons_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let d = deploy("search", "7", NOW - 2000);
        store.record_deploy(&d).unwrap();
        store.save_comparison(&d.id, "{\"v\":1}").unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.deploy(&d.id).unwrap(), Some(d.clone()));
        assert_eq!(
            store.comparison(&d.id).unwrap().as_deref(),
            Some("{\"v\":1}")
        );
    }

    #[test]
    fn a_version_1_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = rusqlite::Connection::open(dir.path().join("headlight.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE deploys; DROP TABLE comparisons;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(dir.path()).unwrap();
        let d = deploy("checkout", "1.0", NOW);
        store.record_deploy(&d).unwrap();
        assert_eq!(store.deploy(&d.id).unwrap(), Some(d));
    }
}
