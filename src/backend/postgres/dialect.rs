impl super::super::Dialect for sqlx::Postgres {}
