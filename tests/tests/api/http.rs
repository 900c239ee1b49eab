//! GraphQL over HTTP as clients speak it: GET for queries (urql, Apollo's
//! GET for hashed queries), content negotiation, and a JSON error body —
//! with a code and the request id — for every request that cannot be read.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};

/// Status, content type, `x-request-id` and JSON body of a response.
async fn answer(resp: reqwest::Response) -> (u16, String, Option<String>, Value) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, content_type, id, body)
}

/// A refusal: JSON, with a code, the reason and the request id.
fn assert_refusal(body: &Value, id: Option<&str>, reason: &str, what: &str) {
    let err = &body["errors"][0]["extensions"];
    assert_eq!(err["code"], "BAD_USER_INPUT", "{what}: {body}");
    assert_eq!(err["reason"], reason, "{what}: {body}");
    assert!(id.is_some(), "{what}: no x-request-id");
    assert_eq!(err["requestId"].as_str(), id, "{what}: {body}");
}

fn get(app: &TestApp, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut url = url::Url::parse(&app.url("/graphql")).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    app.client.get(url)
}

#[tokio::test]
async fn queries_run_over_get_and_mutations_are_refused_with_allow_post() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let resp = get(&app, &[("query", "{ me { role } }")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, ct, _, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(body["data"]["me"]["role"], "ADMIN");

    let resp = get(
        &app,
        &[
            (
                "query",
                "query($f: Int) { patients(first: $f) { totalCount } }",
            ),
            ("variables", "{\"f\": 1}"),
        ],
    )
    .bearer_auth(&token)
    .send()
    .await
    .unwrap();
    let (status, _, _, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["patients"]["totalCount"].is_number(), "{body}");

    let resp = get(&app, &[("query", "mutation { logout }")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, id, body) = answer(resp).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(allow.as_deref(), Some("POST"));
    assert_refusal(
        &body,
        id.as_deref(),
        "MUTATION_OVER_GET",
        "mutation over GET",
    );
    // The token still works: nothing ran.
    let res = app
        .graphql(Some(&token), "{ me { role } }", json!({}))
        .await;
    assert_eq!(res["data"]["me"]["role"], "ADMIN", "{res}");
}

#[tokio::test]
async fn automatic_persisted_queries_work_over_get() {
    let app = spawn_app().await;
    let query = "{ __typename }";
    let hash = caregate::graphql::persisted::sha256_hex(query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string();
    let (status, _, _, body) =
        answer(get(&app, &[("extensions", &ext)]).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{body}"
    );
    let (_, _, _, body) = answer(
        get(&app, &[("query", query), ("extensions", &ext)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let (_, _, _, body) = answer(get(&app, &[("extensions", &ext)]).send().await.unwrap()).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[tokio::test]
async fn the_answer_comes_in_the_media_type_the_client_accepts() {
    let app = spawn_app().await;
    let post = |accept: Option<&str>, query: &str| {
        let mut req = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": query }));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send()
    };
    for accept in [None, Some("*/*"), Some("application/json")] {
        let (status, ct, _, _) = answer(post(accept, "{ __typename }").await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(ct.starts_with("application/json"), "{accept:?}: {ct}");
    }
    let gql = Some("application/graphql-response+json");
    let (status, ct, _, _) = answer(post(gql, "{ __typename }").await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/graphql-response+json"), "{ct}");
    // A request error in that media type: 4xx, and no data entry at all.
    let (status, _, _, body) = answer(post(gql, "{ __typename ").await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    // The same as application/json: 200 with data null (what older clients expect).
    let (status, _, _, body) = answer(post(None, "{ __typename ").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn requests_that_cannot_be_read_get_json_errors_with_a_code_and_the_request_id() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let raw = |content_type: Option<&str>, body: Vec<u8>| {
        let mut req = app.client.post(app.url("/graphql")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    /// What is sent (content type, body) and the status and reason expected.
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"query\": ".to_vec(),
            400,
            "INVALID_JSON",
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            b"{\"query\": \"\xff\xfe\"}".to_vec(),
            400,
            "INVALID_JSON",
        ),
        (
            "empty body",
            Some("application/json"),
            Vec::new(),
            400,
            "INVALID_JSON",
        ),
        (
            "no document",
            Some("application/json"),
            b"{\"qeury\": \"{ a }\"}".to_vec(),
            400,
            "MISSING_QUERY",
        ),
        (
            "plain text",
            Some("text/plain"),
            b"{\"query\": \"{ __typename }\"}".to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "no content type",
            None,
            b"{\"query\": \"{ __typename }\"}".to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            b"query=%7B__typename%7D".to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "oversized",
            Some("application/json"),
            format!("{{\"query\": \"{}\"}}", "a".repeat(4096)).into_bytes(),
            413,
            "BODY_TOO_LARGE",
        ),
    ];
    for (what, ct, body, status, reason) in cases {
        let (got, content_type, id, body) = answer(raw(ct, body).await.unwrap()).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        assert_refusal(&body, id.as_deref(), reason, what);
    }

    // A chunked body over the limit is refused like a sized one.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(
                b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                  transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 512, "a".repeat(512));
        for _ in 0..8 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("BODY_TOO_LARGE"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("x-request-id"),
            "{answer}"
        );
    }

    // Other methods and other paths: JSON too.
    let resp = app.client.put(app.url("/graphql")).send().await.unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, id, body) = answer(resp).await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, POST")));
    assert_refusal(&body, id.as_deref(), "METHOD_NOT_ALLOWED", "PUT");
    let resp = app
        .client
        .get(app.url("/nothing-here"))
        .send()
        .await
        .unwrap();
    let (status, _, _, body) = answer(resp).await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn browsers_may_send_apollo_client_awareness_and_idempotency_headers() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let resp = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization,apollographql-client-name,apollographql-client-version,idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "apollographql-client-name",
        "apollographql-client-version",
        "idempotency-key",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
}

#[tokio::test]
async fn persisted_documents_are_named_by_doc_id_document_id_or_id() {
    let query = "query Role { me { role } }";
    let md5 = {
        use md5::{Digest, Md5};
        Md5::digest(query.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let sha = caregate::graphql::persisted::sha256_hex(query);
    let dir = std::env::temp_dir().join(format!("caregate-manifest-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let relay = dir.join("relay.json");
    std::fs::write(&relay, json!({ md5.clone(): query }).to_string()).unwrap();
    let apollo = dir.join("apollo.json");
    std::fs::write(
        &apollo,
        json!({ "format": "apollo-persisted-query-manifest", "version": 1,
                "operations": [{ "id": sha, "name": "Role", "type": "query", "body": query }] })
        .to_string(),
    )
    .unwrap();
    for (manifest, ids) in [
        (
            relay,
            vec![
                ("doc_id", md5.clone()),
                ("documentId", format!("md5:{md5}")),
            ],
        ),
        (
            apollo,
            vec![("id", sha.clone()), ("documentId", format!("sha256:{sha}"))],
        ),
    ] {
        let app = spawn_app_with(|c| {
            c.persisted_queries_file = Some(manifest.clone());
            c.persisted_queries_only = true;
        })
        .await;
        // Logging in is not in the manifest: a token minted as `caregate token` does.
        let owner = caregate::db::connect_owner(&app.db.owner_url)
            .await
            .unwrap();
        let s =
            service::demo::dev_session(&owner, "admin@northside.example", Some("northside"), 60)
                .await
                .unwrap();
        let token = app
            .state
            .tokens
            .issue(s.user, s.organization, s.session, s.expires_at)
            .unwrap();
        for (param, id) in ids {
            let (status, body) = app.post(Some(&token), &json!({ param: id })).await;
            assert_eq!(status, 200, "{param}: {body}");
            assert_eq!(body["data"]["me"]["role"], "ADMIN", "{param}: {body}");
        }
        let (_, body) = app
            .post(
                Some(&token),
                &json!({ "query": "{ me { role user { email } } }" }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["reason"], "PERSISTED_QUERY_REQUIRED",
            "{body}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn answers_keep_the_order_of_the_selection() {
    // (The root's order is async-graphql's: it answers the parts of a merged
    // root object one after another.)
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    for accept in ["application/json", "application/graphql-response+json"] {
        let text = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("accept", accept)
            .json(
                &json!({ "query": "{ organization { timezone name id } me { role } __typename }" }),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = |k: &str| text.find(k).unwrap_or_else(|| panic!("{k} in {text}"));
        assert!(
            at("\"timezone\"") < at("\"name\"") && at("\"name\"") < at("\"id\""),
            "{text}"
        );
    }
}
