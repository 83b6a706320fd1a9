//! The history query in InfluxQL: `GET /query?db=&epoch=ms&q=` on InfluxDB 1.x (basic auth
//! when configured; the nine statements in one request, `;`-separated) and on InfluxDB 3's
//! v1-compatible `/query` (`Authorization: Bearer`, one statement per request).

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::Value;
use url::Url;

use super::answer;
use super::query_series::{HISTORY_BODY_LIMIT, SERIES_QUERIES, SeriesQuery, SeriesRows, TagStep};
use super::v1::{endpoint, with_basic_auth};
use crate::history::Window;

#[derive(Clone)]
pub(crate) struct InfluxQl {
    pub base: Url,
    pub database: String,
    /// The retention policy to read from (1.x); `None` on InfluxDB 3.
    pub retention_policy: Option<String>,
    pub basic: Option<(String, String)>,
    pub authorization: Option<HeaderValue>,
    /// InfluxDB 3 is sent one statement at a time.
    pub one_statement_per_request: bool,
}

impl InfluxQl {
    /// The rows of each series, in [`SERIES_QUERIES`] order.
    pub async fn history(
        &self,
        http: &reqwest::Client,
        node: &str,
        window: &Window,
    ) -> Result<Vec<SeriesRows>, String> {
        let statements: Vec<String> = SERIES_QUERIES
            .iter()
            .map(|q| self.statement(q, node, window))
            .collect();
        if self.one_statement_per_request {
            let mut out = Vec::with_capacity(statements.len());
            for (query, statement) in SERIES_QUERIES.iter().zip(&statements) {
                let answer = self.run(http, statement).await?;
                out.push(rows_of(query, result_at(&answer, 0)?)?);
            }
            Ok(out)
        } else {
            let answer = self.run(http, &statements.join(";")).await?;
            SERIES_QUERIES
                .iter()
                .enumerate()
                .map(|(i, query)| rows_of(query, result_at(&answer, i)?))
                .collect()
        }
    }

    /// One `SELECT` of a series: per step (and tag) the mean of the field, the lowest of the
    /// field and its `_min` peak, and the highest of the field and its `_max` peak.
    pub fn statement(&self, query: &SeriesQuery, node: &str, window: &Window) -> String {
        let f = quote_ident(query.field);
        let mut select =
            format!("mean({f}) AS \"mean\", min({f}) AS \"min_mean\", max({f}) AS \"max_mean\"");
        if let Some(min) = query.min_field {
            select.push_str(&format!(", min({}) AS \"min_peak\"", quote_ident(min)));
        }
        if let Some(max) = query.max_field {
            select.push_str(&format!(", max({}) AS \"max_peak\"", quote_ident(max)));
        }
        let from = match &self.retention_policy {
            Some(rp) => format!(
                "{}.{}.{}",
                quote_ident(&self.database),
                quote_ident(rp),
                quote_ident(query.measurement)
            ),
            None => quote_ident(query.measurement),
        };
        let group = match query.tag {
            Some((tag, _)) => format!("time({}s), {}", window.step_ms / 1000, quote_ident(tag)),
            None => format!("time({}s)", window.step_ms / 1000),
        };
        format!(
            "SELECT {select} FROM {from} WHERE \"node\" = {} AND time >= {}ms AND time <= {}ms \
             GROUP BY {group} fill(none)",
            quote_string(node),
            window.from_ms,
            window.to_ms
        )
    }

    async fn run(&self, http: &reqwest::Client, q: &str) -> Result<Value, String> {
        let mut url = endpoint(&self.base, &["query"]);
        url.query_pairs_mut()
            .append_pair("db", &self.database)
            .append_pair("epoch", "ms")
            .append_pair("q", q);
        let mut request = with_basic_auth(http.get(url), self.basic.as_ref());
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let (answer, json) = answer::send_influxql(request, HISTORY_BODY_LIMIT).await?;
        if !answer.is_success() {
            return Err(answer.summary());
        }
        Ok(json)
    }
}

/// The result of statement `index`, or its error.
fn result_at(answer: &Value, index: usize) -> Result<&Value, String> {
    let results = answer
        .get("results")
        .and_then(Value::as_array)
        .ok_or("answer has no results")?;
    let result = results
        .iter()
        .find(|r| r.get("statement_id").and_then(Value::as_u64) == Some(index as u64))
        .or_else(|| results.get(index))
        .ok_or_else(|| format!("answer has no result for statement {index}"))?;
    match result.get("error").and_then(Value::as_str) {
        Some(error) => Err(error.to_owned()),
        None => Ok(result),
    }
}

/// Reads one statement's series (one per tag value) into rows.
pub(crate) fn rows_of(query: &SeriesQuery, result: &Value) -> Result<SeriesRows, String> {
    let mut rows = SeriesRows::new();
    let Some(series) = result.get("series").and_then(Value::as_array) else {
        return Ok(rows);
    };
    for one in series {
        let tag = query
            .tag
            .and_then(|(tag, _)| one.pointer(&format!("/tags/{tag}")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let columns: Vec<&str> = one
            .get("columns")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let at = |name: &str| columns.iter().position(|c| *c == name);
        let time_at = at("time").ok_or("a series without a time column")?;
        let values = one
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for row in values {
            let Some(ts_ms) = row.get(time_at).and_then(Value::as_i64) else {
                return Err(format!("a row without a time in ms: {row}"));
            };
            let num = |name: &str| at(name).and_then(|i| row.get(i)).and_then(Value::as_f64);
            let mut step = TagStep {
                mean: num("mean"),
                min: num("min_mean"),
                max: num("max_mean"),
            };
            step.merge(TagStep {
                mean: None,
                min: num("min_peak"),
                max: num("max_peak"),
            });
            rows.entry((tag.clone(), ts_ms)).or_default().merge(step);
        }
    }
    Ok(rows)
}

/// An InfluxQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An InfluxQL string literal in single quotes.
fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Range;

    fn v1() -> InfluxQl {
        InfluxQl {
            base: Url::parse("http://127.0.0.1:8086").unwrap(),
            database: "pivitals".into(),
            retention_policy: Some("pivitals_365d".into()),
            basic: None,
            authorization: None,
            one_statement_per_request: false,
        }
    }

    #[test]
    fn statements_group_by_the_step_and_the_tag() {
        let window = Window::new(Range::Day, 1_780_000_000_000, 1000);
        let cpu = v1().statement(&SERIES_QUERIES[0], "pi-'01", &window);
        assert_eq!(
            cpu,
            format!(
                "SELECT mean(\"usage_percent\") AS \"mean\", min(\"usage_percent\") AS \"min_mean\", \
                 max(\"usage_percent\") AS \"max_mean\", min(\"usage_percent_min\") AS \"min_peak\", \
                 max(\"usage_percent_max\") AS \"max_peak\" FROM \"pivitals\".\"pivitals_365d\".\"cpu\" \
                 WHERE \"node\" = 'pi-\\'01' AND time >= {}ms AND time <= {}ms GROUP BY time(288s) fill(none)",
                window.from_ms, window.to_ms
            )
        );
        let temp = v1().statement(&SERIES_QUERIES[2], "pi", &window);
        assert!(
            temp.ends_with("GROUP BY time(288s), \"sensor\" fill(none)"),
            "{temp}"
        );
        // InfluxDB 3 has no retention policies: the measurement alone, the database as `db`.
        let v3 = InfluxQl {
            retention_policy: None,
            one_statement_per_request: true,
            ..v1()
        };
        let disk = v3.statement(&SERIES_QUERIES[3], "pi", &window);
        assert!(disk.contains(" FROM \"disk\" WHERE "), "{disk}");
        assert!(
            !disk.contains("min_peak"),
            "disk has no peak fields: {disk}"
        );
    }

    #[test]
    fn rows_take_the_peaks_where_written() {
        let result: Value = serde_json::from_str(
            r#"{"statement_id":0,"series":[
              {"name":"temperature","tags":{"sensor":"a"},"columns":["time","mean","min_mean","max_mean","min_peak","max_peak"],
               "values":[[1000,40.5,40,41,39,80],[2000,41,41,41,null,null]]},
              {"name":"temperature","tags":{"sensor":"b"},"columns":["time","mean","min_mean","max_mean","min_peak","max_peak"],
               "values":[[1000,30,30,30,30,30]]}]}"#,
        )
        .unwrap();
        let rows = rows_of(&SERIES_QUERIES[2], &result).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[&("a".to_string(), 1000)],
            TagStep {
                mean: Some(40.5),
                min: Some(39.0),
                max: Some(80.0)
            }
        );
        assert_eq!(rows[&("a".to_string(), 2000)].max, Some(41.0));
    }
}
