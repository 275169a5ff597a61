//! The OpenAPI document and the interactive docs (Swagger UI from the npm package
//! `swagger-ui-dist`, fetched by `make web` and embedded in release builds).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../web/node_modules/swagger-ui-dist/"]
#[include = "swagger-ui.css"]
#[include = "swagger-ui-bundle.js"]
#[include = "swagger-ui-standalone-preset.js"]
#[include = "favicon-32x32.png"]
#[allow_missing = true]
struct SwaggerUi;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Rollcall API</title>
  <link rel="stylesheet" href="/api/docs/swagger-ui.css">
  <link rel="icon" href="/api/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/swagger-ui-bundle.js"></script>
  <script src="/api/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/api/docs/init.js"></script>
</body>
</html>"#;

const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
  persistAuthorization: true
});"##;

pub async fn docs_page() -> Response {
    if SwaggerUi::get("swagger-ui-bundle.js").is_none() {
        return ApiError::Unavailable("the interactive docs were not built: run `make web` and rebuild".into(), None)
            .into_response();
    }
    Html(PAGE).into_response()
}

pub async fn docs_asset(Path(file): Path<String>) -> Response {
    if file == "init.js" {
        return ([(header::CONTENT_TYPE, "text/javascript")], INIT).into_response();
    }
    match SwaggerUi::get(&file) {
        Some(asset) => {
            let mime = mime_guess::from_path(&file).first_or_octet_stream();
            ([(header::CONTENT_TYPE, mime.as_ref().to_owned())], asset.data.into_owned()).into_response()
        }
        None => (StatusCode::NOT_FOUND, ApiError::NotFound(format!("no docs asset {file}"))).into_response(),
    }
}
