//! The run's own database: the kit's fresh one, kept or dropped at the end.

use nts_testkit::TestDb;

/// Creates and migrates `nts_torture_<seed>_<random>`; with `break_inventory_guard`
/// also drops the CHECK that would otherwise stop an oversell.
pub async fn create(server: &str, seed: u64, break_inventory_guard: bool) -> anyhow::Result<TestDb> {
    let db = TestDb::create_on(server, &format!("nts_torture_{seed}")).await?;
    if break_inventory_guard {
        let pool = db.pool(1).await?;
        sqlx::query("ALTER TABLE ticket_types DROP CONSTRAINT ticket_types_inventory").execute(&pool).await?;
        pool.close().await;
    }
    Ok(db)
}
