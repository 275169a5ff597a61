//! `page`/`page_size` parameters and `count/next/previous/results` responses with
//! absolute links.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::app::AppState;

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    pub page: Option<u64>,
    /// Items per page (default 20, at most 100).
    pub page_size: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub number: u64,
    pub size: u64,
}

impl PageParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        let number = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if number == 0 {
            return Err(ApiError::validation("page", "must be 1 or more"));
        }
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ApiError::validation("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}")));
        }
        Ok(Page { number, size })
    }
}

impl Page {
    pub fn limit(&self) -> u64 {
        self.size
    }

    pub fn offset(&self) -> u64 {
        (self.number - 1).saturating_mul(self.size)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// The absolute URL of the current request: `public_url` if configured, else the
/// request's `Host` over http.
pub struct RequestUrl(url::Url);

impl FromRequestParts<AppState> for RequestUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let base = match &state.config.public_url {
            Some(public) => public.trim_end_matches('/').to_owned(),
            None => {
                let host =
                    parts.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        // Inside a nested router `parts.uri` has lost its prefix; the original has not.
        let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |original| &original.0);
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        url::Url::parse(&format!("{base}{path_and_query}"))
            .map(RequestUrl)
            .map_err(|_| ApiError::BadRequest("the Host header is not valid".into()))
    }
}

impl RequestUrl {
    fn with_page(&self, page: u64) -> String {
        self.with_only("page", &page.to_string(), &[])
    }

    /// This URL with `key=value` in place of any earlier `key`, and without `dropped`.
    fn with_only(&self, key: &str, value: &str, dropped: &[&str]) -> String {
        let mut url = self.0.clone();
        let pairs: Vec<(String, String)> = self
            .0
            .query_pairs()
            .filter(|(k, _)| k != key && !dropped.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut query = url.query_pairs_mut();
            query.clear();
            for (key, value) in &pairs {
                query.append_pair(key, value);
            }
            query.append_pair(key, value);
        }
        url.to_string()
    }
}

impl<T> Paginated<T> {
    pub fn new(results: Vec<T>, count: i64, page: Page, url: &RequestUrl) -> Self {
        let count_u = count.max(0) as u64;
        let next = (page.number.saturating_mul(page.size) < count_u).then(|| url.with_page(page.number + 1));
        let last_page = count_u.div_ceil(page.size).max(1);
        let previous = (page.number > 1).then(|| url.with_page((page.number - 1).min(last_page)));
        Self { count, next, previous, results }
    }

    /// A page of keyset paging: `next` continues after the item `last_id` names (with
    /// `before=`), when there are more; no `previous`.
    pub fn after(results: Vec<T>, count: i64, last_id: Option<i64>, url: &RequestUrl) -> Self {
        let next = last_id.map(|id| url.with_only("before", &id.to_string(), &["page"]));
        Self { count, next, previous: None, results }
    }
}
