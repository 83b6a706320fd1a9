//! The web dashboard: an HTML page, one stylesheet, one script and an icon, embedded in the
//! binary so the primary serves them on a LAN with no Internet (no CDN, no web fonts, no
//! external scripts, no build step).
//!
//! The page reads the JSON API (`/api/v1/nodes` every second, `/api/v1/nodes/{name}/history`
//! every five seconds for the cards' sparklines, `/api/v1/dashboard` once) and draws its
//! sparklines and charts as inline SVG itself. A node's page is the client-side route
//! `/#/nodes/{name}`: its nine charts read `/api/v1/nodes/{name}/history?range=R` (`1h`, `6h`,
//! `24h`, `7d`, `30d`; again once a step) and draw each step's mean as a line over a band from
//! its lowest to its highest value, so a one-second peak stays visible at 30 days. `/#stacks`
//! is the stack view (racks side by side by the label `stack`, boards in the order of the label
//! `position`).
//!
//! The view is kept in the URL's fragment, so it can be bookmarked and the back button steps
//! through it: `#/?sort=cpu&status=down&label=stack%3D2&q=10.0` on the grid (sort by name, CPU,
//! temperature, disk or last seen; filter by status and label; search names, addresses, MACs
//! and labels), `#/nodes/{name}?range=7d` on a node's page. Colours follow
//! `prefers-color-scheme`; below 30 rem the cards stack one per row.
//!
//! Signed in (`/api/v1/session`, see [`crate::web::session`]), the page shows action buttons
//! on every card, node page and stack, posts to `/api/v1/actions` with `"by": "dashboard"` and
//! the header `X-Pivitals-Session: 1`, and polls `/api/v1/actions/{id}` until every target is
//! final. The admin token is sent once, to sign in, and not kept by the page. Signed in, the
//! grid also offers "Add a board": the one-line install command from
//! `/api/v1/admin/install-command` (nothing when the primary answers 404), shown only in the
//! page, never put in the URL or the browser's storage.
//!
//! **Architecture Invariant:** this module knows nothing about HTTP: it is a table of files
//! with their media types; `routes/` serves them.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Every file of the dashboard. `index.html` refers to the others by these paths.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        path: "/assets/icon.png",
        content_type: "image/png",
        body: include_bytes!("assets/icon.png"),
    },
];

/// How often the page polls the node list, in seconds (it reads this from
/// `/api/v1/dashboard`): often enough that a one-second agent's `late`, which lasts two
/// seconds, is always shown before its `down`. The answer is a few kilobytes per node.
pub const REFRESH_SECONDS: u64 = 1;

/// The content security policy the page is served with: nothing may come from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The embedded file served at `path`.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(asset: &Asset) -> &'static str {
        std::str::from_utf8(asset.body).expect("text assets are UTF-8")
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        for asset in ASSETS {
            let body = asset.body.to_ascii_lowercase();
            for needle in [
                "http://",
                "https://",
                "//cdn",
                "@import",
                "@font-face",
                "url(",
            ] {
                assert!(
                    !body.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{} contains {needle:?}",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_page_refers_only_to_embedded_files() {
        let page = text(find("/").unwrap());
        let mut refs = 0;
        for attr in ["src=\"", "href=\""] {
            for part in page.split(attr).skip(1) {
                let target = &part[..part.find('"').unwrap()];
                if target.starts_with('#') {
                    continue;
                }
                assert!(find(target).is_some(), "{target} is not embedded");
                refs += 1;
            }
        }
        assert!(refs >= 3, "the page loads its script, stylesheet and icon");
    }

    /// The bound grew from 64 to 96 KiB with the ranged charts (nine series, peak bands, range
    /// links), the node page's panels and the grid's sort, filter and search: still far below
    /// a vendored chart library plus the glue it would need, and the page has no dependency.
    #[test]
    fn the_script_is_small_and_a_module() {
        let script = find("/assets/app.js").unwrap();
        assert!(script.body.len() < 96 * 1024, "{} bytes", script.body.len());
        assert!(text(find("/").unwrap()).contains("type=\"module\""));
    }
}
