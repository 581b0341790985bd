//! What factories add to [`TestDb`]: the reuse scope and the insert statistics of the test.

use crate::factory::InsertStats;
use crate::isolation::TestDb;

impl TestDb {
    /// Makes every factory that needs a `M` (an unset, required `belongs_to = M` association)
    /// use `model` for the rest of the test, instead of creating one: diamond-shaped graphs then
    /// share their parents. [`stop_reusing`](Self::stop_reusing) ends it.
    ///
    /// ```no_run
    /// # async fn demo(db: seedbed::TestDb) -> Result<(), seedbed::Error> {
    /// #[derive(Debug, Clone, sqlx::FromRow, seedbed::Factory)]
    /// #[factory(table = "organizations")]
    /// pub struct Organization {
    ///     #[factory(generated)]
    ///     pub id: i64,
    ///     #[factory(default = "Acme")]
    ///     pub name: String,
    ///     #[factory(sequence = "acme-{n}")]
    ///     pub slug: String,
    /// }
    ///
    /// #[derive(Debug, Clone, sqlx::FromRow, seedbed::Factory)]
    /// #[factory(table = "teams")]
    /// pub struct Team {
    ///     #[factory(generated)]
    ///     pub id: i64,
    ///     #[factory(belongs_to = Organization)]
    ///     pub organization_id: i64,
    ///     #[factory(sequence = "team {n}")]
    ///     pub name: String,
    /// }
    ///
    /// let acme = Organization::factory().create(&db).await?;
    /// db.reuse(&acme);
    /// let teams = Team::factory().create_list(&db, 3).await?;
    /// assert!(teams.iter().all(|t| t.organization_id == acme.id));
    /// assert_eq!(db.stats().table("organizations").rows, 1);
    /// # Ok(()) }
    /// ```
    pub fn reuse<M: Clone + Send + Sync + 'static>(&self, model: &M) -> &Self {
        self.context().reuse(model);
        self
    }

    /// Ends [`reuse`](Self::reuse) of the `M` set before.
    ///
    /// ```no_run
    /// # fn demo(db: seedbed::TestDb) {
    /// # #[derive(Clone)] struct Organization;
    /// db.stop_reusing::<Organization>();
    /// # }
    /// ```
    pub fn stop_reusing<M: 'static>(&self) -> &Self {
        self.context().stop_reusing::<M>();
        self
    }

    /// Rows and statements per table that factories wrote in this test (whatever they were given:
    /// `&TestDb`, the pool, a connection), to expose cascades of one INSERT per object.
    ///
    /// ```no_run
    /// # async fn demo(db: seedbed::TestDb) {
    /// println!("{}", db.stats()); // table, rows, statements
    /// assert_eq!(db.stats().table("users").statements, 0);
    /// # }
    /// ```
    pub fn stats(&self) -> InsertStats {
        self.context().insert_stats()
    }
}
