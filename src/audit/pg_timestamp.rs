//! [`PgTimestamp`]: a point in time that binds as `TIMESTAMP` (OID 1114), the only timestamp type
//! QuestDB takes over PG-wire; PostgreSQL reads the same encoding.

use std::error::Error;

use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// Microseconds between the Unix epoch and 2000-01-01T00:00:00Z, PostgreSQL's epoch.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Microseconds since 2000-01-01 (UTC), as PG-wire's binary `TIMESTAMP` carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    pub fn from_unix_micros(micros: i64) -> PgTimestamp {
        PgTimestamp(micros - PG_EPOCH_OFFSET_MICROS)
    }

    pub fn unix_micros(self) -> i64 {
        self.0 + PG_EPOCH_OFFSET_MICROS
    }
}

impl ToSql for PgTimestamp {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTimestamp {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<PgTimestamp, Box<dyn Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| "a TIMESTAMP value is not 8 bytes")?;
        Ok(PgTimestamp(i64::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_round_trips_and_2000_is_zero() {
        assert_eq!(PgTimestamp::from_unix_micros(PG_EPOCH_OFFSET_MICROS), PgTimestamp(0));
        let t = PgTimestamp::from_unix_micros(1_764_028_800_123_456);
        assert_eq!(t.unix_micros(), 1_764_028_800_123_456);
        let mut out = BytesMut::new();
        t.to_sql(&Type::TIMESTAMP, &mut out)
            .expect("encoding an i64 cannot fail");
        assert_eq!(PgTimestamp::from_sql(&Type::TIMESTAMP, &out).expect("8 bytes"), t);
        assert!(!<PgTimestamp as ToSql>::accepts(&Type::TIMESTAMPTZ));
    }
}
