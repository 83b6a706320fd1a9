//! The history query in Flux for InfluxDB 2.x: `POST /api/v2/query?org=` with
//! `Authorization: Token`, a JSON body (`query`, `type: flux`, `dialect`) and
//! `Accept: application/csv`; the answer is annotated CSV (one yield per series and
//! statistic, named `INDEX:mean|min|max`).

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::json;
use url::Url;

use super::answer;
use super::query_series::{HISTORY_BODY_LIMIT, SERIES_QUERIES, SeriesQuery, SeriesRows, TagStep};
use super::v1::endpoint;
use crate::clock::rfc3339;
use crate::history::Window;

#[derive(Clone)]
pub(crate) struct Flux {
    pub base: Url,
    pub org: String,
    pub bucket: String,
    /// `Token …`, marked sensitive.
    pub authorization: HeaderValue,
}

impl Flux {
    /// The rows of each series, in [`SERIES_QUERIES`] order.
    pub async fn history(
        &self,
        http: &reqwest::Client,
        node: &str,
        window: &Window,
    ) -> Result<Vec<SeriesRows>, String> {
        let mut url = endpoint(&self.base, &["api", "v2", "query"]);
        url.query_pairs_mut().append_pair("org", &self.org);
        let body = json!({
            "query": self.script(node, window)?,
            "type": "flux",
            "dialect": {
                "header": true,
                "delimiter": ",",
                "annotations": ["datatype", "group", "default"],
                "commentPrefix": "#",
                "dateTimeFormat": "RFC3339",
            },
        });
        let request = http
            .post(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/csv")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = answer::send_query(request, HISTORY_BODY_LIMIT).await?;
        if !answer.is_success() {
            return Err(answer.summary());
        }
        parse_csv(&answer.body)
    }

    /// The Flux script: the node's points in the window, then per series three windowed
    /// aggregates (mean of the field; min of the field and its `_min` peak; max of the field
    /// and its `_max` peak), each yielded as `INDEX:STAT`.
    pub fn script(&self, node: &str, window: &Window) -> Result<String, String> {
        let time = |ms: i64| rfc3339(ms).ok_or_else(|| format!("time {ms} ms out of range"));
        let every = format!("{}s", window.step_ms / 1000);
        let mut script = format!(
            "data = from(bucket: {})\n  |> range(start: {}, stop: {})\n  |> filter(fn: (r) => r.node == {})\n",
            quote(&self.bucket),
            time(window.from_ms)?,
            time(window.to_ms + 1)?,
            quote(node)
        );
        for (i, query) in SERIES_QUERIES.iter().enumerate() {
            let field = |name: &str| format!("r._field == {}", quote(name));
            let of = |extra: Option<&str>| match extra {
                Some(peak) => format!("{} or {}", field(query.field), field(peak)),
                None => field(query.field),
            };
            for (stat, fields) in [
                ("mean", field(query.field)),
                ("min", of(query.min_field)),
                ("max", of(query.max_field)),
            ] {
                script.push_str(&format!(
                    "data\n  |> filter(fn: (r) => r._measurement == {} and ({fields}))\n  \
                     |> aggregateWindow(every: {every}, fn: {stat}, createEmpty: false, timeSrc: \"_start\")\n  \
                     |> yield(name: \"{i}:{stat}\")\n",
                    quote(query.measurement)
                ));
            }
        }
        Ok(script)
    }
}

/// A Flux string literal.
fn quote(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${")
    )
}

/// Reads the annotated CSV answer into the rows of each series.
pub(crate) fn parse_csv(body: &str) -> Result<Vec<SeriesRows>, String> {
    let mut out = vec![SeriesRows::new(); SERIES_QUERIES.len()];
    let mut defaults: Vec<String> = Vec::new();
    let mut header: Vec<String> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            header.clear();
            defaults.clear();
            continue;
        }
        let fields = split_csv(line);
        match fields.first().map(String::as_str) {
            Some("#default") => {
                defaults = fields;
                continue;
            }
            Some(annotation) if annotation.starts_with('#') => continue,
            _ => {}
        }
        if header.is_empty() {
            header = fields;
            continue;
        }
        let column = |name: &str| -> Option<&str> {
            let at = header.iter().position(|c| c == name)?;
            let value = fields.get(at).map(String::as_str).unwrap_or_default();
            if value.is_empty() {
                defaults.get(at).map(String::as_str)
            } else {
                Some(value)
            }
        };
        if let Some(error) = column("error").filter(|e| !e.is_empty()) {
            return Err(format!("Flux error: {error}"));
        }
        let Some((index, stat)) = column("result").and_then(|r| r.split_once(':')) else {
            continue;
        };
        let Some((query, rows)) = index
            .parse::<usize>()
            .ok()
            .and_then(|i| Some((SERIES_QUERIES.get(i)?, out.get_mut(i)?)))
        else {
            continue;
        };
        let ts_ms = column("_time")
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .ok_or_else(|| format!("a row without a readable _time: {line}"))?;
        let value = column("_value").and_then(|v| v.parse::<f64>().ok());
        let step = match stat {
            "mean" => TagStep {
                mean: value,
                ..Default::default()
            },
            "min" => TagStep {
                min: value,
                ..Default::default()
            },
            "max" => TagStep {
                max: value,
                ..Default::default()
            },
            _ => continue,
        };
        let tag = tag_of(query, &column);
        rows.entry((tag, ts_ms)).or_default().merge(step);
    }
    Ok(out)
}

fn tag_of<'a>(query: &SeriesQuery, column: &dyn Fn(&str) -> Option<&'a str>) -> String {
    query
        .tag
        .and_then(|(tag, _)| column(tag))
        .unwrap_or_default()
        .to_owned()
}

/// Splits one CSV line; a field in double quotes may hold commas and doubled quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_may_be_quoted() {
        assert_eq!(
            split_csv(r#",a,"b,c","say ""hi""",,"#),
            ["", "a", "b,c", "say \"hi\"", "", ""]
        );
    }

    #[test]
    fn annotated_csv_with_defaults_and_tags() {
        let body = "#group,false,false,true,true,false,false,true,true,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string\r\n\
#default,2:max,,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,node,sensor\r\n\
,,0,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,2026-11-01T00:05:00Z,80.5,celsius_max,temperature,pi,a\r\n\
,,1,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,2026-11-01T00:05:00Z,60,celsius,temperature,pi,\"b,c\"\r\n\
\r\n\
#group,false,false,true,true,false,false,true,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string\r\n\
#default,0:mean,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,node\r\n\
,,2,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,2026-11-01T00:05:00Z,12.25,usage_percent,cpu,pi\r\n";
        let rows = parse_csv(body).unwrap();
        let t = 1_790_000_000_000_i64;
        let _ = t;
        let five = humantime::parse_rfc3339("2026-11-01T00:05:00Z")
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(rows[0][&(String::new(), five)].mean, Some(12.25));
        assert_eq!(rows[2][&("a".to_string(), five)].max, Some(80.5));
        assert_eq!(rows[2][&("b,c".to_string(), five)].max, Some(60.0));
        assert!(rows[1].is_empty());
    }

    #[test]
    fn an_error_in_the_stream_is_an_error() {
        let body = "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,\"bucket not found\",\n";
        assert!(parse_csv(body).unwrap_err().contains("bucket not found"));
    }
}
