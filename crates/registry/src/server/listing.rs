//! Tags list, catalog and referrers, with `n`/`last` pagination and `Link`.

use http::header::{CONTENT_TYPE, LINK};
use http::StatusCode;
use palisade_image::media_types as mt;

use super::access::{Access, Op};
use super::blobs::parse_digest;
use super::response::{Reply, Response};
use super::route::query_get;
use super::Registry;
use crate::auth::Principal;
use crate::error::{internal, ApiError, ErrorCode};
use crate::name::RepositoryName;
use crate::storage::Storage;

/// `n` and `last` of a paginated request.
fn page(
    query: &[(String, String)],
    max: usize,
) -> Result<(Option<usize>, Option<String>), ApiError> {
    let n = match query_get(query, "n") {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<usize>()
                .map_err(|_| {
                    ApiError::new(ErrorCode::Unsupported, format!("n={s:?} is not a count"))
                        .with(StatusCode::BAD_REQUEST)
                })?
                .min(max),
        ),
    };
    Ok((
        n,
        query_get(query, "last")
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    ))
}

/// Applies `last` and `n` to a sorted list; returns the page and whether more follow.
fn paginate(
    all: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    max: usize,
) -> (Vec<String>, bool) {
    let mut it: Vec<String> = match last {
        Some(l) => all.into_iter().filter(|t| t.as_str() > l).collect(),
        None => all,
    };
    let limit = n.unwrap_or(max);
    let more = it.len() > limit;
    it.truncate(limit);
    (it, more)
}

fn link(path: &str, page: &[String], n: Option<usize>) -> Option<String> {
    let last = page.last()?;
    let enc = percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC);
    Some(match n {
        Some(n) => format!("<{path}?n={n}&last={enc}>; rel=\"next\""),
        None => format!("<{path}?last={enc}>; rel=\"next\""),
    })
}

impl<S: Storage> Registry<S> {
    pub(super) async fn tags_list(
        &self,
        repo: &RepositoryName,
        query: &[(String, String)],
    ) -> Result<Response, ApiError> {
        if !self
            .storage
            .repository_exists(repo)
            .await
            .map_err(internal)?
        {
            return Err(ApiError::new(
                ErrorCode::NameUnknown,
                format!("repository {repo} is not known"),
            ));
        }
        let (n, last) = page(query, self.limits.max_page)?;
        let all = self
            .storage
            .tags(repo)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let (tags, more) = paginate(all, n, last.as_deref(), self.limits.max_page);
        let mut reply = Reply::new(StatusCode::OK);
        if more {
            if let Some(l) = link(&format!("/v2/{repo}/tags/list"), &tags, n) {
                reply = reply.header(LINK, l);
            }
        }
        Ok(reply.json(&serde_json::json!({ "name": repo.as_str(), "tags": tags })))
    }

    pub(super) async fn catalog(
        &self,
        query: &[(String, String)],
        access: &dyn Access,
        who: &Principal,
    ) -> Result<Response, ApiError> {
        let (n, last) = page(query, self.limits.max_page)?;
        let all = self
            .storage
            .repositories()
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|r| RepositoryName::parse(r).is_ok_and(|r| access.allowed(who, &r, Op::Pull)))
            .collect();
        let (repos, more) = paginate(all, n, last.as_deref(), self.limits.max_page);
        let mut reply = Reply::new(StatusCode::OK);
        if more {
            if let Some(l) = link("/v2/_catalog", &repos, n) {
                reply = reply.header(LINK, l);
            }
        }
        Ok(reply.json(&serde_json::json!({ "repositories": repos })))
    }

    pub(super) async fn referrers(
        &self,
        repo: &RepositoryName,
        digest: &str,
        query: &[(String, String)],
    ) -> Result<Response, ApiError> {
        let subject = parse_digest(digest)?;
        let filter = query_get(query, "artifactType").filter(|a| !a.is_empty());
        let mut manifests = Vec::new();
        for d in self
            .storage
            .referrers(repo, &subject)
            .await
            .map_err(internal)?
        {
            let Some(m) = self.load_manifest(&d).await? else {
                continue;
            };
            manifests.extend(m.parsed.referrer_entry(&d, m.bytes.len(), filter));
        }
        let mut reply = Reply::new(StatusCode::OK).header(CONTENT_TYPE, mt::OCI_INDEX);
        if filter.is_some() {
            reply = reply.header("oci-filters-applied", "artifactType");
        }
        let body = serde_json::json!({ "schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": manifests });
        Ok(reply.body(serde_json::to_vec(&body).unwrap_or_default().into()))
    }
}
