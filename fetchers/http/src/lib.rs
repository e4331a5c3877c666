#![doc = include_str!("../README.md")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use ostree_core::fetcher::{
    FetchRequest, FetchResponse, FetchStatus, Fetcher, FetcherConfig, transport_error,
};
use ostree_core::registry::{FetcherPlugin, Registry};
use ostree_core::{Error, Result};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

/// The plain HTTP scheme.
pub const SCHEME_HTTP: &str = "http";
/// The TLS scheme.
pub const SCHEME_HTTPS: &str = "https";

const PLUGIN_NAME: &str = "http";

/// Fetches paths below an `http(s)://` base URL.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    base: Url,
    client: reqwest::Client,
    cookies: Vec<ostree_core::fetcher::Cookie>,
}

fn cfg_err(msg: impl std::fmt::Display) -> Error {
    Error::Backend {
        plugin: PLUGIN_NAME,
        source: msg.to_string().into(),
    }
}

fn read_file(p: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::io_path("Reading", p, e))
}

impl HttpFetcher {
    /// A fetcher for `base` with transport settings from `cfg`.
    pub fn new(base: &Url, cfg: &FetcherConfig) -> Result<Self> {
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::invalid(format!("Invalid HTTP header name '{k}': {e}")))?;
            let val = HeaderValue::from_str(v)
                .map_err(|e| Error::invalid(format!("Invalid HTTP header value for '{k}': {e}")))?;
            headers.append(name, val);
        }
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(
                cfg.user_agent
                    .clone()
                    .unwrap_or_else(|| ostree_core::pull::USER_AGENT.to_string()),
            )
            .connect_timeout(cfg.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 10 {
                    attempt.error("too many redirects")
                } else if !matches!(attempt.url().scheme(), "http" | "https") {
                    attempt.error("redirect to a scheme other than http(s)")
                } else {
                    attempt.follow()
                }
            }));
        if cfg.tls_permissive {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &cfg.tls_ca_path {
            let certs = reqwest::Certificate::from_pem_bundle(&read_file(ca)?)
                .map_err(|e| cfg_err(format!("{}: {e}", ca.display())))?;
            b = b.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&cfg.tls_client_cert_path, &cfg.tls_client_key_path) {
            let mut pem = read_file(cert)?;
            pem.push(b'\n');
            pem.extend(read_file(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| cfg_err(format!("{}: {e}", cert.display())))?;
            b = b.identity(id);
        }
        match &cfg.proxy {
            Some(p) => {
                let proxy = reqwest::Proxy::all(p.as_str())
                    .map_err(|e| Error::invalid(format!("Invalid proxy '{p}': {e}")))?;
                b = b.proxy(proxy);
            }
            None => b = b.no_proxy(),
        }
        if cfg.http2 == Some(false) {
            b = b.http1_only();
        }
        let client = b.build().map_err(cfg_err)?;
        Ok(HttpFetcher {
            base: base.clone(),
            client,
            cookies: cfg.cookies.clone(),
        })
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?;
        let path = url.path();
        let v: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| {
                let d = c.domain.trim_start_matches('.');
                (host == d || host.ends_with(&format!(".{d}"))) && path.starts_with(&c.path)
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    }
}

fn classify(url: &str, e: reqwest::Error) -> Error {
    let retryable =
        e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() || e.is_decode();
    transport_error(PLUGIN_NAME, url, e, retryable)
}

#[async_trait]
impl Fetcher for HttpFetcher {
    fn base_url(&self) -> &Url {
        &self.base
    }

    async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse> {
        let url = if req.path.is_empty() {
            self.base.clone()
        } else {
            self.base
                .join(&req.path)
                .map_err(|e| Error::invalid(format!("Invalid path '{}': {e}", req.path)))?
        };
        let shown = {
            let mut u = url.clone();
            let _ = u.set_password(None);
            u.to_string()
        };
        let mut rb = self.client.get(url.clone());
        if let Some(c) = self.cookie_header(&url) {
            rb = rb.header(header::COOKIE, c);
        }
        if let Some(s) = req.range_start.filter(|s| *s > 0) {
            rb = rb.header(header::RANGE, format!("bytes={s}-"));
        }
        if let Some(e) = &req.if_none_match {
            rb = rb.header(header::IF_NONE_MATCH, e.as_str());
        }
        if let Some(d) = &req.if_modified_since {
            rb = rb.header(header::IF_MODIFIED_SINCE, d.as_str());
        }
        let resp = rb.send().await.map_err(|e| classify(&shown, e))?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let last_modified = resp
            .headers()
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchResponse::not_modified(etag));
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(Error::not_found(format!(
                "Server returned HTTP {} for {shown}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            let retryable = status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS;
            return Err(transport_error(
                PLUGIN_NAME,
                &shown,
                format!("Server returned HTTP {}", status.as_u16()),
                retryable,
            ));
        }
        let range_start = if status == StatusCode::PARTIAL_CONTENT {
            req.range_start
        } else {
            None
        };
        let content_length = resp.content_length();
        let shown2 = shown.clone();
        let body = resp
            .bytes_stream()
            .map(move |r| r.map_err(|e| classify(&shown2, e)))
            .boxed();
        Ok(FetchResponse {
            status: FetchStatus::Ok,
            etag,
            last_modified,
            range_start,
            content_length,
            body,
            local_path: None,
        })
    }
}

fn build(url: &Url, cfg: &FetcherConfig) -> Result<Arc<dyn Fetcher>> {
    Ok(Arc::new(HttpFetcher::new(url, cfg)?))
}

const DESCRIPTION_HTTP: &str = "HTTP/1.1 and HTTP/2 over TCP (reqwest)";
const DESCRIPTION_HTTPS: &str = "HTTP/2 and HTTP/1.1 over TLS (reqwest + rustls)";

static PLUGIN_HTTP: FetcherPlugin = FetcherPlugin {
    scheme: SCHEME_HTTP,
    description: DESCRIPTION_HTTP,
    build,
};
static PLUGIN_HTTPS: FetcherPlugin = FetcherPlugin {
    scheme: SCHEME_HTTPS,
    description: DESCRIPTION_HTTPS,
    build,
};

ostree_core::inventory::submit! {
    FetcherPlugin { scheme: SCHEME_HTTP, description: DESCRIPTION_HTTP, build }
}
ostree_core::inventory::submit! {
    FetcherPlugin { scheme: SCHEME_HTTPS, description: DESCRIPTION_HTTPS, build }
}

/// Register `http` and `https` in a registry built by hand (the inventory records already put
/// them in [`Registry::global`]).
pub fn register(registry: &mut Registry) {
    registry.register_fetcher(&PLUGIN_HTTP);
    registry.register_fetcher(&PLUGIN_HTTPS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP/1.1 server on 127.0.0.1 answering each connection with `reply`.
    fn serve(replies: Vec<&'static str>) -> (Url, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (
            Url::parse(&format!("http://u:p@127.0.0.1:{port}/repo/")).unwrap(),
            h,
        )
    }

    #[tokio::test]
    async fn statuses_headers_auth() {
        let (url, h) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"e1\"\r\nConnection: close\r\n\r\nhello",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"e1\"\r\nConnection: close\r\n\r\n",
        ]);
        let cfg = FetcherConfig {
            headers: vec![("X-Test".into(), "yes".into())],
            cookies: vec![ostree_core::fetcher::Cookie {
                domain: "127.0.0.1".into(),
                path: "/".into(),
                name: "foo".into(),
                value: "bar".into(),
            }],
            ..Default::default()
        };
        let f = Registry::global().build_fetcher(&url, &cfg).unwrap();
        let r = f.fetch(FetchRequest::new("summary")).await.unwrap();
        assert_eq!(r.etag.as_deref(), Some("\"e1\""));
        assert_eq!(&r.collect(100, None, "t").await.unwrap()[..], b"hello");
        assert!(
            f.fetch(FetchRequest::new("config"))
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            f.fetch(FetchRequest::new("x"))
                .await
                .unwrap_err()
                .is_retryable()
        );
        let r = f
            .fetch(FetchRequest {
                path: "summary".into(),
                if_none_match: Some("\"e1\"".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(r.status, FetchStatus::NotModified);
        let seen = h.join().unwrap();
        let first = seen[0].to_ascii_lowercase();
        assert!(first.starts_with("get /repo/summary http/1.1"), "{first}");
        assert!(first.contains("authorization: basic dtpw"), "{first}");
        assert!(first.contains("x-test: yes"), "{first}");
        assert!(first.contains("cookie: foo=bar"), "{first}");
        assert!(first.contains("user-agent: libostree/2022.7"), "{first}");
        assert!(
            seen[3]
                .to_ascii_lowercase()
                .contains("if-none-match: \"e1\"")
        );
    }

    #[test]
    fn registered() {
        let s = Registry::global().fetcher_schemes();
        assert!(s.contains(&"http") && s.contains(&"https"));
    }
}
