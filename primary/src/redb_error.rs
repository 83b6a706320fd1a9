//! One macro for the error enums that wrap redb (the registry's and the spool's): every
//! specific redb error converts into the enum's `Database(redb::Error)` variant, so `?` works.

macro_rules! from_redb_errors {
    ($target:ty) => {
        $crate::redb_error::from_redb_errors!(
            $target: redb::DatabaseError,
            redb::TransactionError,
            redb::TableError,
            redb::StorageError,
            redb::CommitError,
            redb::SetDurabilityError
        );
    };
    ($target:ty: $($source:ty),*) => {$(
        impl From<$source> for $target {
            fn from(e: $source) -> Self {
                Self::Database(e.into())
            }
        }
    )*};
}

pub(crate) use from_redb_errors;
