//! InfluxQL: a tokenizer and the clauses the queries use.

use super::names::is_ident_char;
use super::refs::Refs;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare or double-quoted identifier; `quoted` ones are never keywords.
    Ident {
        name: String,
        quoted: bool,
    },
    Str,
    Number,
    /// A Chronograf template variable, `:name:`.
    Var(String),
    /// A regular expression literal after `=~` or `!~`, `/.../`: its text, never names.
    Regex(String),
    Punct(char),
}

pub fn tokens(statement: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = statement.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let take_until = |i: usize, end: char| -> Result<(String, usize), String> {
            let start = i + 1;
            let len = chars[start..]
                .iter()
                .position(|&c| c == end)
                .ok_or_else(|| format!("unterminated {end} in {statement}"))?;
            Ok((chars[start..start + len].iter().collect(), start + len + 1))
        };
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let (name, next) = take_until(i, '"')?;
            tokens.push(Tok::Ident { name, quoted: true });
            i = next;
        } else if c == '\'' {
            i = take_until(i, '\'')?.1;
            tokens.push(Tok::Str);
        } else if c == '/' && tokens.last() == Some(&Tok::Punct('~')) {
            // `/` also divides, so a regex is only read where a match operator wants one.
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && chars[end] != '/' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            if end >= chars.len() {
                return Err(format!("unterminated regex in {statement}"));
            }
            tokens.push(Tok::Regex(chars[start..end].iter().collect()));
            i = end + 1;
        } else if c == ':' && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
            let (name, next) = take_until(i, ':')?;
            tokens.push(Tok::Var(name));
            i = next;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Tok::Number);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let name = chars[start..i].iter().collect();
            tokens.push(Tok::Ident {
                name,
                quoted: false,
            });
        } else {
            tokens.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(tokens)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Clause {
    None,
    Select,
    From,
    Where,
    GroupBy,
    /// `SHOW TAG VALUES ... WITH KEY = "tag"`.
    WithKey,
}

/// The names an InfluxQL statement refers to.
pub fn refs(statement: &str) -> Result<Refs, String> {
    const KEYWORDS: &[&str] = &[
        "and", "as", "asc", "by", "desc", "from", "group", "key", "limit", "not", "offset", "or",
        "order", "select", "show", "slimit", "soffset", "tag", "tz", "values", "where", "with",
    ];
    let tokens = tokens(statement)?;
    let mut refs = Refs::default();
    let mut clause = Clause::None;
    let mut i = 0;
    while i < tokens.len() {
        let Tok::Ident { name, quoted } = &tokens[i] else {
            i += 1;
            continue;
        };
        let lower = name.to_ascii_lowercase();
        let keyword = !quoted && KEYWORDS.contains(&lower.as_str());
        let next = tokens.get(i + 1);
        if keyword {
            clause = match lower.as_str() {
                "select" => Clause::Select,
                "from" => Clause::From,
                "where" => Clause::Where,
                "group" => Clause::GroupBy,
                "with" => Clause::WithKey,
                "order" | "limit" | "offset" | "slimit" | "soffset" | "tz" | "show" => Clause::None,
                _ => clause,
            };
            i += 1;
            continue;
        }
        if next == Some(&Tok::Punct('(')) {
            // A function call; fill(), time() and now() take no names.
            if !quoted && matches!(lower.as_str(), "fill" | "time" | "now") {
                let mut depth = 0;
                i += 1;
                while i < tokens.len() {
                    match tokens[i] {
                        Tok::Punct('(') => depth += 1,
                        Tok::Punct(')') => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
            } else {
                i += 1;
            }
            continue;
        }
        let after_as = i > 0
            && matches!(&tokens[i - 1], Tok::Ident { name, quoted: false } if name.eq_ignore_ascii_case("as"));
        if after_as {
            refs.aliases.insert(name.clone());
        } else if !quoted && lower == "time" {
            // WHERE time > …
        } else {
            match clause {
                Clause::Select => {
                    refs.fields.insert(name.clone());
                }
                Clause::From if next != Some(&Tok::Punct('.')) => {
                    refs.measurements.insert(name.clone());
                }
                Clause::Where => {
                    refs.columns.insert(name.clone());
                }
                Clause::GroupBy | Clause::WithKey => {
                    refs.tags.insert(name.clone());
                }
                Clause::From | Clause::None => {}
            }
        }
        i += 1;
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clauses_and_keeps_variables_apart() {
        let statement = r#"SELECT mean("used_percent") AS "used" FROM "disk" WHERE "node" = :node: AND time > :dashboardTime: GROUP BY time(:interval:), "mount""#;
        let refs = refs(statement).unwrap();
        assert!(refs.measurements.contains("disk"));
        assert!(refs.fields.contains("used_percent"));
        assert!(refs.aliases.contains("used"));
        assert!(refs.columns.contains("node"));
        assert!(refs.tags.contains("mount"));
        let variables: Vec<_> = tokens(statement)
            .unwrap()
            .into_iter()
            .filter_map(|t| match t {
                Tok::Var(name) => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(variables, ["node", "dashboardTime", "interval"]);
        assert!(tokens("SELECT \"open").is_err());
    }

    #[test]
    fn reads_regex_literals_and_show_tag_values() {
        let statement = r#"SELECT last("up") / 2 FROM "node_status" WHERE "node" =~ /^(a\/b|c-d)$/ AND "stack" !~ /^x$/ GROUP BY "node""#;
        let found = refs(statement).unwrap();
        assert_eq!(found.columns, ["node", "stack"].map(String::from).into());
        assert_eq!(found.tags, ["node"].map(String::from).into());
        assert!(
            tokens(statement)
                .unwrap()
                .contains(&Tok::Regex(r"^(a\/b|c-d)$".to_owned()))
        );
        assert!(tokens(r#"SELECT "a" FROM "b" WHERE "c" =~ /open"#).is_err());

        let show = r#"SHOW TAG VALUES FROM "cpu" WITH KEY = "node" WHERE "stack" =~ /^1$/"#;
        let found = refs(show).unwrap();
        assert_eq!(found.measurements, ["cpu"].map(String::from).into());
        assert_eq!(found.tags, ["node"].map(String::from).into());
        assert_eq!(found.columns, ["stack"].map(String::from).into());
        assert!(found.fields.is_empty());
    }
}
