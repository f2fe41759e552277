//! Static authentication over real HTTP.

mod common;

use common::{TestServer, expect_error, parts};
use reqwest::{Method, RequestBuilder, StatusCode};
use rucat_server::auth::{AuthProviderConfig, StaticAuth};

const USER: &str = "rucat-user-x1";
const PASSWORD: &str = "s3cret-pa55word-y2";
const TOKEN: &str = "t0ken-value-z3";

fn auth(with_token: bool) -> StaticAuth {
    let token = if with_token {
        format!(r#", "bearer_token": "{TOKEN}""#)
    } else {
        String::new()
    };
    let json = format!(
        r#"{{"StaticAuthProviderConfig": {{"username": "{USER}", "password": "{PASSWORD}"{token}}}}}"#
    );
    let config: AuthProviderConfig = serde_json::from_str(&json).unwrap();
    StaticAuth::from(config)
}

fn assert_no_secret(text: &str) {
    for secret in [USER, PASSWORD, TOKEN] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// Sends and asserts a 401 with the JSON error shape and the challenges.
async fn expect_unauthorized(request: RequestBuilder, bearer_offered: bool) {
    let response = request.send().await.unwrap();
    let challenges: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic realm=")),
        "{challenges:?}"
    );
    assert_eq!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        bearer_offered,
        "{challenges:?}"
    );
    let body = expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_no_secret(&body.to_string());
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let server = TestServer::start(Some(auth(true))).await;
    let engines = || server.request(Method::GET, "/engines");
    expect_unauthorized(engines(), true).await;
    expect_unauthorized(engines().basic_auth(USER, Some("wrong")), true).await;
    expect_unauthorized(engines().basic_auth("wrong", Some(PASSWORD)), true).await;
    expect_unauthorized(engines().basic_auth(USER, None::<&str>), true).await;
    expect_unauthorized(engines().basic_auth(PASSWORD, Some(USER)), true).await;
    expect_unauthorized(engines().bearer_auth("wrong"), true).await;
    expect_unauthorized(engines().bearer_auth(PASSWORD), true).await;
    expect_unauthorized(
        engines().header("authorization", format!("Token {TOKEN}")),
        true,
    )
    .await;
    expect_unauthorized(engines().header("authorization", TOKEN), true).await;
    expect_unauthorized(engines().header("authorization", "Basic %%%"), true).await;
}

#[tokio::test]
async fn every_route_requires_authentication() {
    let server = TestServer::start(Some(auth(true))).await;
    let id = rucat_core::EngineId::generate();
    for (method, path) in [
        (Method::POST, "/engine".to_owned()),
        (Method::GET, format!("/engine/{id}")),
        (Method::POST, format!("/engine/{id}/stop")),
        (Method::POST, format!("/engine/{id}/restart")),
        (Method::DELETE, format!("/engine/{id}")),
        (Method::GET, "/engines".to_owned()),
        // Unknown paths and methods too, so nothing can be probed.
        (Method::GET, "/nope".to_owned()),
        (Method::PUT, "/engines".to_owned()),
        (Method::GET, "/engine/not-an-id".to_owned()),
    ] {
        expect_unauthorized(server.request(method, &path), true).await;
    }
}

#[tokio::test]
async fn right_basic_credentials_and_bearer_token_are_accepted() {
    let server = TestServer::start(Some(auth(true))).await;
    let create = server
        .request(Method::POST, "/engine")
        .basic_auth(USER, Some(PASSWORD))
        .json(&common::create_body("a"))
        .send()
        .await
        .unwrap();
    let (status, _, body) = parts(create).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();

    let get = server
        .request(Method::GET, &format!("/engine/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let (status, _, body) = parts(get).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "a");

    let stop = server
        .request(Method::POST, &format!("/engine/{id}/stop"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), StatusCode::OK);

    // Errors after authentication are the usual ones.
    let response = server
        .request(Method::GET, "/nope")
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn without_a_configured_token_bearer_is_refused() {
    let server = TestServer::start(Some(auth(false))).await;
    let engines = || server.request(Method::GET, "/engines");
    expect_unauthorized(engines().bearer_auth(TOKEN), false).await;
    expect_unauthorized(engines().bearer_auth(""), false).await;
    expect_unauthorized(engines(), false).await;
    let response = engines()
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_auth_provider_the_api_is_open() {
    let server = TestServer::start(None).await;
    let response = server
        .request(Method::GET, "/engines")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("www-authenticate").is_none());
    // Credentials sent anyway are ignored.
    let response = server
        .request(Method::GET, "/engines")
        .bearer_auth("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn secrets_never_appear_in_responses_or_debug_output() {
    let server = TestServer::start(Some(auth(true))).await;
    let mut bodies = Vec::new();
    for request in [
        server.request(Method::GET, "/engines"),
        server
            .request(Method::GET, "/engines")
            .basic_auth(USER, Some("x")),
        server.request(Method::GET, "/engines").bearer_auth("x"),
        server.request(Method::GET, "/engines").bearer_auth(TOKEN),
        server
            .request(Method::POST, "/engine")
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": PASSWORD})),
        server
            .request(Method::POST, "/engine")
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{"),
    ] {
        let response = request.send().await.unwrap();
        let headers = format!("{:?}", response.headers());
        bodies.push(headers + &response.text().await.unwrap());
    }
    for body in &bodies {
        // The one echo of user input is the unknown/missing field name, never a value.
        assert_no_secret(body);
    }
    assert_no_secret(&format!("{:?}", auth(true)));
    let config: AuthProviderConfig = serde_json::from_str(&format!(
        r#"{{"StaticAuthProviderConfig": {{"username": "{USER}", "password": "{PASSWORD}", "bearer_token": "{TOKEN}"}}}}"#
    ))
    .unwrap();
    assert_no_secret(&format!("{config:?}"));
    assert_no_secret(&format!("{config:#?}"));
}
