//! GraphiQL served entirely by caregate. Clinics run on locked-down networks
//! with no access to public CDNs, so the GraphiQL and React builds are
//! embedded in the binary (vendored in `api/assets/graphiql/`, see the README
//! there) and served at `/graphiql/{name}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

const REACT_JS: &[u8] = include_bytes!("../assets/graphiql/react.production.min.js");
const REACT_DOM_JS: &[u8] = include_bytes!("../assets/graphiql/react-dom.production.min.js");
const GRAPHIQL_JS: &[u8] = include_bytes!("../assets/graphiql/graphiql.min.js");
const GRAPHIQL_CSS: &[u8] = include_bytes!("../assets/graphiql/graphiql.min.css");

const JS: &str = "application/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const CACHE_CONTROL: &str = "public, max-age=86400";

/// What the page may load and do: only caregate's own scripts (no inline
/// script at all), its own styles, requests to its own origin, and it may
/// not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The headers every GraphiQL response carries: the policy, and no framing
/// for browsers that predate `frame-ancestors`.
pub fn security_headers() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
    ]
}

/// The page up to the endpoint (an HTML attribute value).
const PAGE_HEAD: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>caregate — GraphiQL</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="/graphiql/graphiql.min.css">
    <link rel="stylesheet" href="/graphiql/start.css">
    <script src="/graphiql/react.production.min.js"></script>
    <script src="/graphiql/react-dom.production.min.js"></script>
    <script src="/graphiql/graphiql.min.js"></script>
  </head>
  <body>
    <div id="graphiql" data-endpoint=""#;

/// The rest of the page after the endpoint.
const PAGE_TAIL: &str = r#"">Loading…</div>
    <script src="/graphiql/start.js"></script>
  </body>
</html>
"#;

/// Starts GraphiQL on the endpoint the page names (a file of its own, so
/// the page needs no inline script and the policy can forbid them).
const START_JS: &str = r#"const mount = document.getElementById("graphiql");
// Subscriptions go over WebSocket to the endpoint's /ws (graphql-transport-ws);
// the headers editor's Authorization travels in connection_init.
const socket = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
  mount.dataset.endpoint + "/ws";
const fetcher = GraphiQL.createFetcher({ url: mount.dataset.endpoint, subscriptionUrl: socket });
ReactDOM.createRoot(mount).render(
  React.createElement(GraphiQL, {
    fetcher,
    isHeadersEditorEnabled: true,
    defaultHeaders: "{}",
    defaultEditorToolsVisibility: "headers",
  }),
);
"#;

const START_CSS: &str = "html, body { height: 100%; margin: 0; overflow: hidden; }\n\
                         #graphiql { height: 100vh; }\n";

/// The GraphiQL page, sending its requests to `endpoint` (e.g. `"/graphql"`).
///
/// Everything it loads comes from [`routes`]; it references no external URL.
pub fn page(endpoint: &str) -> Html<String> {
    // The endpoint is an attribute value: escaped, it cannot end the
    // attribute or the element.
    let attribute = endpoint
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let mut html = String::with_capacity(PAGE_HEAD.len() + attribute.len() + PAGE_TAIL.len());
    html.push_str(PAGE_HEAD);
    html.push_str(&attribute);
    html.push_str(PAGE_TAIL);
    Html(html)
}

/// `GET /graphiql/{name}`: one of the embedded assets, or 404.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "react.production.min.js" => (REACT_JS, JS),
        "react-dom.production.min.js" => (REACT_DOM_JS, JS),
        "graphiql.min.js" => (GRAPHIQL_JS, JS),
        "graphiql.min.css" => (GRAPHIQL_CSS, CSS),
        "start.js" => (START_JS.as_bytes(), JS),
        "start.css" => (START_CSS.as_bytes(), CSS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        security_headers(),
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        Bytes::from_static(body),
    )
        .into_response()
}

/// The asset routes: `GET /graphiql/{name}`.
/// The GraphiQL page, for `/graphql`, with its security headers.
pub fn response() -> axum::response::Response {
    (security_headers(), page("/graphql")).into_response()
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/graphiql/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    const ASSETS: [(&str, &str); 6] = [
        ("react.production.min.js", JS),
        ("react-dom.production.min.js", JS),
        ("graphiql.min.js", JS),
        ("graphiql.min.css", CSS),
        ("start.js", JS),
        ("start.css", CSS),
    ];

    async fn get_path(path: &str) -> Response {
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("valid request");
        routes::<()>()
            .oneshot(request)
            .await
            .expect("infallible router")
    }

    #[test]
    fn page_has_no_external_url() {
        let Html(html) = page("/graphql");
        assert!(!html.contains("http://"), "page contains http://");
        assert!(!html.contains("https://"), "page contains https://");
    }

    #[test]
    fn page_loads_the_local_assets_and_endpoint() {
        let Html(html) = page("/graphql");
        for (name, _) in ASSETS {
            assert!(
                html.contains(&format!("/graphiql/{name}")),
                "{name} missing"
            );
        }
        assert!(html.contains(r#"data-endpoint="/graphql""#));
        assert!(START_JS.contains("isHeadersEditorEnabled: true"));
        assert!(html.contains("<title>caregate — GraphiQL</title>"));
        assert!(!html.contains("<script>"), "no inline script");
    }

    #[test]
    fn page_escapes_the_endpoint() {
        let Html(html) = page("/x\"></div><script>alert(1)</script>");
        assert!(!html.contains("<script>alert"));
        assert!(html.contains(
            r#"data-endpoint="/x&quot;&gt;&lt;/div&gt;&lt;script&gt;alert(1)&lt;/script&gt;""#
        ));
    }

    #[tokio::test]
    async fn assets_are_served() {
        for (name, content_type) in ASSETS {
            let response = get_path(&format!("/graphiql/{name}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{name}");
            assert_eq!(headers[header::CACHE_CONTROL], CACHE_CONTROL, "{name}");
            let body = to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            assert!(!body.is_empty(), "{name} is empty");
        }
    }

    #[tokio::test]
    async fn unknown_asset_is_not_found() {
        for path in [
            "/graphiql/nope.js",
            "/graphiql/graphiql.min.js.map",
            "/graphiql/..%2FCargo.toml",
        ] {
            let response = get_path(path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
