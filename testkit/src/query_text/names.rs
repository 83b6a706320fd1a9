//! The lexical pieces Flux and InfluxQL queries share: names and double-quoted strings.

pub fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The byte offsets where `needle` starts a name (not preceded by a name character or `.`).
pub fn name_starts<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(needle)
        .map(|(at, _)| at)
        .filter(move |&at| {
            text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !is_ident_char(c) && c != '.')
        })
}

/// A double-quoted string at the start of `text` (after spaces): its content and the rest.
pub fn quoted(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start().strip_prefix('"')?;
    let end = text.find('"')?;
    Some((&text[..end], &text[end + 1..]))
}

/// The identifier at the start of `text`.
pub fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !is_ident_char(c)).unwrap_or(text.len());
    &text[..end]
}
