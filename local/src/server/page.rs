//! The upload page (web/dist) served beside the API, so `scripts/dev.sh` needs no second server.
//!
//! Only GET and HEAD requests that no API route claims reach it, so the API
//! answers exactly as on AWS. Files are read from one directory and never from
//! outside it: the request path is split into plain segments (no `.`, `..`,
//! backslashes or NULs), then the file's canonical path must still lie under
//! the directory's (a symlink out of it is refused too).

use super::response::HttpResponse;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use std::path::{Path, PathBuf};

/// A directory of static files; `/` is its `index.html`.
#[derive(Debug, Clone)]
pub struct Page {
    root: PathBuf,
}

impl Page {
    /// The page in `dir`, which must exist and hold an `index.html`.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = dir.as_ref().canonicalize()?;
        if !root.join("index.html").is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{} has no index.html (build the page: scripts/build-web.sh)",
                    root.display()
                ),
            ));
        }
        Ok(Page { root })
    }

    /// The file for a request path, or `None` when there is none (the caller answers 404).
    pub(crate) async fn serve(&self, path: &str, head: bool) -> Option<HttpResponse> {
        let file = self.resolve(path)?;
        let body = tokio::fs::read(&file).await.ok()?;
        let mime = mime_guess::from_path(&file).first_or_octet_stream();
        let mut r = Response::new(Full::new(if head {
            Bytes::new()
        } else {
            Bytes::from(body)
        }));
        *r.status_mut() = StatusCode::OK;
        if let Ok(v) = HeaderValue::from_str(mime.essence_str()) {
            r.headers_mut().insert(CONTENT_TYPE, v);
        }
        // A page rebuilt while the server runs must show on reload.
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(r)
    }

    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let mut file = self.root.clone();
        let mut segments = 0;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let plain = !matches!(segment, "." | "..")
                && !segment.contains(['\\', '\0', '%'])
                && !segment.starts_with('.');
            if !plain {
                return None;
            }
            file.push(segment);
            segments += 1;
        }
        if segments == 0 {
            file.push("index.html");
        }
        let file = file.canonicalize().ok()?;
        (file.starts_with(&self.root) && file.is_file()).then_some(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> (tempdir::Dir, Page) {
        let dir = tempdir::Dir::new();
        std::fs::write(dir.0.join("index.html"), "<h1>page</h1>").unwrap();
        std::fs::write(dir.0.join("main.js"), "1").unwrap();
        std::fs::create_dir(dir.0.join("sub")).unwrap();
        std::fs::write(dir.0.join("sub/a.css"), "a{}").unwrap();
        std::fs::write(dir.0.join(".env"), "secret").unwrap();
        let page = Page::new(&dir.0).unwrap();
        (dir, page)
    }

    /// A throwaway directory, removed on drop (no crate needed for this much).
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p =
                    std::env::temp_dir().join(format!("partwise-page-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn files_under_the_root_are_found_and_the_root_is_the_index() {
        let (dir, page) = page();
        let root = dir.0.canonicalize().unwrap();
        assert_eq!(page.resolve("/"), Some(root.join("index.html")));
        assert_eq!(page.resolve(""), Some(root.join("index.html")));
        assert_eq!(page.resolve("/main.js"), Some(root.join("main.js")));
        assert_eq!(page.resolve("/sub/a.css"), Some(root.join("sub/a.css")));
    }

    #[test]
    fn nothing_outside_the_root_or_hidden_is_served() {
        let (dir, page) = page();
        std::os::unix::fs::symlink("/etc/hostname", dir.0.join("link")).unwrap();
        for path in [
            "/../etc/passwd",
            "/sub/../../x",
            "/./index.html",
            "/%2e%2e/x",
            "/sub\\..\\..\\x",
            "/.env",
            "/link",
            "/sub",
            "/missing.js",
        ] {
            assert_eq!(page.resolve(path), None, "{path}");
        }
    }

    #[test]
    fn a_directory_without_an_index_is_refused() {
        let dir = tempdir::Dir::new();
        assert!(Page::new(&dir.0).is_err());
        assert!(Page::new(dir.0.join("absent")).is_err());
    }

    #[tokio::test]
    async fn answers_carry_the_type_and_head_has_no_body() {
        use http_body_util::BodyExt;
        let (_dir, page) = page();
        let r = page.serve("/", false).await.unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"<h1>page</h1>");
        let r = page.serve("/sub/a.css", true).await.unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/css");
        assert!(r.into_body().collect().await.unwrap().to_bytes().is_empty());
    }
}
