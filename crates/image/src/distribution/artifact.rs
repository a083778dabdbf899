//! Requests for artifacts that are not images: signatures and other referrers.
//!
//! Small blobs and manifests held in memory (a signature payload, a Sigstore bundle, a
//! signature manifest) are pushed and fetched whole; the referrers API
//! (`GET /v2/<name>/referrers/<digest>`, OCI distribution 1.1) lists the manifests whose
//! `subject` is a digest. Everything fetched is checked against the digest asked for.

use std::io::Read;

use ureq::http::Method;

use super::challenge::Scope;
use super::client::{
    header, io_reason, percent_encode, read_small, RegistryClient, RegistryRequest, RequestBody,
};
use super::error::{registry_detail, DistributionError};
use crate::digest::{Digest, Hasher};
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::media_types::OCI_INDEX;

/// What a registry said to a manifest `PUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutManifest {
    /// The digest of the bytes sent.
    pub digest: Digest,
    /// Whether the registry answered with `OCI-Subject`: it indexes the manifest's `subject`
    /// for the referrers API, so no referrers tag is needed.
    pub subject_indexed: bool,
}

impl RegistryClient {
    /// Uploads `bytes` as a blob of `repository` (one `POST` and one `PUT`), unless the
    /// registry already has it. Returns its digest.
    pub fn push_blob_bytes(
        &self,
        repository: &str,
        bytes: &[u8],
    ) -> Result<Digest, DistributionError> {
        let digest = Digest::of(bytes);
        if self.blob_exists(repository, &digest)?.is_some() {
            return Ok(digest);
        }
        let base = self.base()?;
        let operation = format!("upload {digest} to {repository}");
        let scopes = [Scope::push(repository)];
        let response = self.send(RegistryRequest::new(
            Method::POST,
            format!("{base}/v2/{repository}/blobs/uploads/"),
            &scopes,
            &operation,
        ))?;
        if response.status().as_u16() != 202 {
            return Err(self.status_error(response, &operation));
        }
        let location = header(&response, "location")
            .map(str::trim)
            .unwrap_or_default();
        let url = if location.starts_with("https://") || location.starts_with("http://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            return Err(DistributionError::Protocol {
                host: self.registry().to_owned(),
                operation,
                reason: "no usable Location for the upload".to_owned(),
            });
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{url}{separator}digest={}",
            percent_encode(&digest.to_string())
        );
        let response = self.send(
            RegistryRequest::new(Method::PUT, url, &scopes, &operation)
                .header("Content-Type", "application/octet-stream")
                .body(RequestBody::Bytes(bytes)),
        )?;
        if response.status().as_u16() != 201 {
            return Err(self.status_error(response, &operation));
        }
        Ok(digest)
    }

    /// `PUT /v2/<repository>/manifests/<reference>` with `bytes` as they are (a tag, or the
    /// bytes' own digest).
    pub fn put_manifest_bytes(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<PutManifest, DistributionError> {
        let digest = Digest::of(bytes);
        let base = self.base()?;
        let separator = if reference.contains(':') { '@' } else { ':' };
        let operation = format!(
            "put manifest {}/{repository}{separator}{reference}",
            self.registry()
        );
        let scopes = [Scope::push(repository)];
        let response = self.send(
            RegistryRequest::new(
                Method::PUT,
                format!("{base}/v2/{repository}/manifests/{reference}"),
                &scopes,
                &operation,
            )
            .header("Content-Type", media_type.to_owned())
            .body(RequestBody::Bytes(bytes)),
        )?;
        if response.status().as_u16() != 201 {
            return Err(self.status_error(response, &operation));
        }
        let subject_indexed = header(&response, "oci-subject").is_some();
        Ok(PutManifest {
            digest,
            subject_indexed,
        })
    }

    /// `GET /v2/<repository>/blobs/<digest>` whole, at most `limit` bytes, checked against
    /// `digest`.
    pub fn fetch_blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, DistributionError> {
        let operation = format!("pull blob {digest} from {repository}");
        let mut response = self.blob_response(repository, digest, 0, &operation)?;
        if response.status().as_u16() != 200 {
            return Err(self.status_error(response, &operation));
        }
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DistributionError::Transfer {
                host: self.registry().to_owned(),
                operation: operation.clone(),
                reason: io_reason(&e),
            })?;
        if bytes.len() as u64 > limit {
            return Err(DistributionError::Protocol {
                host: self.registry().to_owned(),
                operation,
                reason: format!("the blob is larger than the {limit} bytes accepted here"),
            });
        }
        let mut hasher = Hasher::new(digest.algorithm());
        hasher.update(&bytes);
        let actual = hasher.finish();
        if actual != *digest {
            return Err(DistributionError::DigestMismatch {
                host: self.registry().to_owned(),
                what: "blob",
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// `GET /v2/<repository>/referrers/<digest>[?artifactType=...]`: the image index of
    /// manifests whose `subject` is `digest`, as sent. `None` when the registry has no
    /// referrers API (a `404`); then the referrers tag `sha256-<hex>` stands in for it.
    pub fn fetch_referrers(
        &self,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<u8>>, DistributionError> {
        let base = self.base()?;
        let operation = format!("list referrers of {repository}@{digest}");
        let scopes = [Scope::pull(repository)];
        let mut url = format!("{base}/v2/{repository}/referrers/{digest}");
        if let Some(kind) = artifact_type {
            url = format!("{url}?artifactType={}", percent_encode(kind));
        }
        let mut response = self.send(
            RegistryRequest::new(Method::GET, url, &scopes, &operation).header("Accept", OCI_INDEX),
        )?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                let body = read_small(&mut response);
                tracing::debug!(repository, detail = %registry_detail(&body, 404), "no referrers API");
                return Ok(None);
            }
            _ => return Err(self.status_error(response, &operation)),
        }
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DistributionError::Transfer {
                host: self.registry().to_owned(),
                operation: operation.clone(),
                reason: io_reason(&e),
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(DistributionError::Protocol {
                host: self.registry().to_owned(),
                operation,
                reason: "the referrers index is too large".to_owned(),
            });
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;
    use crate::distribution::{ClientOptions, CredentialStore};

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    /// One connection per response, in order; the first one is the client's TLS attempt.
    fn serve(responses: Vec<String>) -> RegistryClient {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for response in [OK.to_owned(), OK.to_owned()].into_iter().chain(responses) {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buffer = vec![0u8; 16 << 10];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        let host = format!("127.0.0.1:{port}");
        let options = ClientOptions {
            insecure_registries: vec![host.clone()],
            credentials: CredentialStore::none(),
            config_dir: None,
            ..ClientOptions::default()
        };
        RegistryClient::new(&host, &options).unwrap()
    }

    fn response(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn referrers_api_or_none() {
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        let digest = Digest::of(b"x");
        let client = serve(vec![response("200 OK", "", index)]);
        assert_eq!(
            client.fetch_referrers("a/b", &digest, None).unwrap(),
            Some(index.as_bytes().to_vec())
        );
        let client = serve(vec![response("404 Not Found", "", "")]);
        assert_eq!(client.fetch_referrers("a/b", &digest, None).unwrap(), None);
        let client = serve(vec![response("500 Oops", "", "")]);
        assert!(client.fetch_referrers("a/b", &digest, None).is_err());
    }

    #[test]
    fn manifest_put_reports_subject_indexing() {
        let client = serve(vec![
            response("201 Created", "OCI-Subject: sha256:00\r\n", ""),
            response("201 Created", "", ""),
            response(
                "400 Bad Request",
                "",
                r#"{"errors":[{"code":"MANIFEST_INVALID","message":"no"}]}"#,
            ),
        ]);
        let put = client
            .put_manifest_bytes("a", "sha256-00", "m", b"{}")
            .unwrap();
        assert!(put.subject_indexed);
        assert_eq!(put.digest, Digest::of(b"{}"));
        assert!(
            !client
                .put_manifest_bytes("a", "t", "m", b"{}")
                .unwrap()
                .subject_indexed
        );
        assert!(client.put_manifest_bytes("a", "t", "m", b"{}").is_err());
    }

    #[test]
    fn fetched_blobs_must_match_their_digest_and_limit() {
        let digest = Digest::of(b"payload");
        let client = serve(vec![
            response("200 OK", "", "payload"),
            response("200 OK", "", "payloaD"),
            response("200 OK", "", "payload"),
        ]);
        assert_eq!(
            client.fetch_blob_bytes("a", &digest, 100).unwrap(),
            b"payload"
        );
        assert!(matches!(
            client.fetch_blob_bytes("a", &digest, 100),
            Err(DistributionError::DigestMismatch { .. })
        ));
        assert!(matches!(
            client.fetch_blob_bytes("a", &digest, 3),
            Err(DistributionError::Protocol { .. })
        ));
    }
}
