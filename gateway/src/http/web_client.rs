//! The web client, compiled into the binary: no build step and nothing to deploy.

use poem::http::StatusCode;
use poem::web::Path;
use poem::{IntoResponse, Response, handler};

const INDEX: &str = include_str!("../../static/index.html");
const APP: &str = include_str!("../../static/app.js");
const CLIENT: &str = include_str!("../../static/resilient-client.js");
const STYLE: &str = include_str!("../../static/style.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    body.with_content_type(content_type)
        .with_header("cache-control", "no-cache")
        .with_header("x-content-type-options", "nosniff")
        .into_response()
}

#[handler]
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

#[handler]
pub async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => asset(APP, "text/javascript; charset=utf-8"),
        "resilient-client.js" => asset(CLIENT, "text/javascript; charset=utf-8"),
        "style.css" => asset(STYLE, "text/css; charset=utf-8"),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
