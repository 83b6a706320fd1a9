//! [`InfluxApi`]: the InfluxDB HTTP API versions pivitals speaks.

use std::fmt;

use serde::Deserialize;

/// Which InfluxDB HTTP API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// InfluxDB 1.x: `/write?db=&rp=`, InfluxQL on `/query`, optional basic auth.
    V1,
    /// InfluxDB 2.x: `/api/v2/write?org=&bucket=`, `Authorization: Token`.
    V2,
    /// InfluxDB 3 (Core, Enterprise): `/api/v3/write_lp?db=`, `Authorization: Bearer` when
    /// the server has auth, databases through `/api/v3/configure/database`.
    V3,
}

impl fmt::Display for InfluxApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InfluxApi::V1 => "v1",
            InfluxApi::V2 => "v2",
            InfluxApi::V3 => "v3",
        })
    }
}
