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

/// The page up to the JS string literal holding the endpoint.
const PAGE_HEAD: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>caregate — GraphiQL</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="/graphiql/graphiql.min.css">
    <style>
      html, body { height: 100%; margin: 0; overflow: hidden; }
      #graphiql { height: 100vh; }
    </style>
    <script src="/graphiql/react.production.min.js"></script>
    <script src="/graphiql/react-dom.production.min.js"></script>
    <script src="/graphiql/graphiql.min.js"></script>
  </head>
  <body>
    <div id="graphiql">Loading…</div>
    <script>
      const endpoint = "#;

/// The rest of the page after the endpoint literal.
const PAGE_TAIL: &str = r#";
      const fetcher = GraphiQL.createFetcher({ url: endpoint });
      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(
        React.createElement(GraphiQL, {
          fetcher,
          isHeadersEditorEnabled: true,
          defaultHeaders: '{}',
          defaultEditorToolsVisibility: "headers",
        }),
      );
    </script>
  </body>
</html>
"#;

/// The GraphiQL page, sending its requests to `endpoint` (e.g. `"/graphql"`).
///
/// Everything it loads comes from [`routes`]; it references no external URL.
pub fn page(endpoint: &str) -> Html<String> {
    // A JSON string is a valid JS string literal. Serializing a `&str` cannot
    // fail; the fallback only keeps this function panic-free.
    let literal = serde_json::to_string(endpoint).unwrap_or_else(|_| String::from("\"\""));
    // `<`, `>` and `&` only occur literally inside the JSON string, so escaping
    // them keeps e.g. `</script>` in the endpoint from ending the script.
    let literal = literal
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mut html = String::with_capacity(PAGE_HEAD.len() + literal.len() + PAGE_TAIL.len());
    html.push_str(PAGE_HEAD);
    html.push_str(&literal);
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
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        Bytes::from_static(body),
    )
        .into_response()
}

/// The asset routes: `GET /graphiql/{name}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/graphiql/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    const ASSETS: [(&str, &str); 4] = [
        ("react.production.min.js", JS),
        ("react-dom.production.min.js", JS),
        ("graphiql.min.js", JS),
        ("graphiql.min.css", CSS),
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
        assert!(html.contains(r#"const endpoint = "/graphql";"#));
        assert!(html.contains("isHeadersEditorEnabled: true"));
        assert!(html.contains("<title>caregate — GraphiQL</title>"));
    }

    #[test]
    fn page_escapes_the_endpoint() {
        let Html(html) = page("/x\"</script><script>alert(1)</script>");
        assert!(!html.contains("</script><script>alert"));
        assert!(
            html.contains(
                r#""/x\"\u003c/script\u003e\u003cscript\u003ealert(1)\u003c/script\u003e""#
            )
        );
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
