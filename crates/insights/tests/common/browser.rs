//! A real headless Chromium (Debian's `chromium`, driven over WebDriver by `chromedriver` in its
//! own process group, so the browser dies with it) for the panel's browser tests, with the
//! waits they share: every wait is for something on the page, bounded by [`PATIENCE`] so that a
//! broken page fails the test instead of hanging it.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use insights_testkit::{Driver, chromedriver};
use serde_json::{Value, json};

use super::ADMIN;

/// How long a page may take to show what a test waits for (the server and browser share two
/// cores with the brokers and workers).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Browser {
    pub c: Client,
    base: String,
    test: &'static str,
    _driver: Driver,
}

impl Browser {
    pub async fn open(base: &str, test: &'static str) -> Browser {
        let (driver, url) = chromedriver();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                ],
            }),
        );
        let c = ClientBuilder::native()
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session starts");
        Browser {
            c,
            base: base.to_string(),
            test,
            _driver: driver,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// The current path.
    pub async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    /// The current path and query.
    pub async fn at(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: no {css}: {e}", self.test))
    }

    /// Runs `op` on the element `css` names. The page re-renders its tables when a fetch or the
    /// status poll answers, so an element found a moment ago may have been replaced: then it is
    /// found again, as a user would see the new one (a stale element took no input).
    pub async fn on<T>(&self, css: &str, op: impl AsyncFn(&Element) -> Result<T, CmdError>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match op(&self.find(css).await).await {
                Ok(v) => return v,
                Err(e)
                    if e.is_stale_element_reference() && tokio::time::Instant::now() < deadline => {
                }
                Err(e) => panic!("{}: {css}: {e}", self.test),
            }
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.on(css, async |e| e.text().await).await
    }

    pub async fn displayed(&self, css: &str) -> bool {
        self.on(css, async |e| e.is_displayed().await).await
    }

    pub async fn fill(&self, css: &str, value: &str) {
        self.on(css, async |e| {
            e.clear().await?;
            e.send_keys(value).await
        })
        .await
    }

    pub async fn click(&self, css: &str) {
        self.on(css, async |e| e.click().await).await
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.on(css, async |e| e.select_by_value(value).await).await
    }

    /// Waits until the text of `css` satisfies `ok` (the page changes asynchronously: a reload,
    /// a fetch, the status poll).
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = match self.c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if ok(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {css} still shows {text:?}",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` until it answers something other than `null`/`false`.
    pub async fn wait_js(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.c.execute(script, vec![]).await.unwrap();
            if !(v.is_null() || v == false) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: still waiting for {what} ({v})",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_at(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.at().await != path {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: at {} instead of {path}",
                self.test,
                self.at().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs in with the admin token from `page` (sent to the sign-in form and back).
    pub async fn sign_in(&self, page: &str) {
        self.goto(page).await;
        self.fill("#token", ADMIN).await;
        self.click("form button[type=submit]").await;
        self.wait_at(page).await;
    }

    /// Saves a screenshot as `target/screenshots/<test>-<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.c.screenshot().await.unwrap();
        let path = dir.join(format!("{}-{name}.png", self.test));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Form controls without a label, and descriptions pointing nowhere, on the current page
    /// (keyboard and screen-reader use).
    pub async fn unlabelled_controls(&self) -> Vec<Value> {
        let v = self
            .c
            .execute(
                "const controls = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')];
                 const unlabelled = controls
                   .filter(e => e.tagName === 'BUTTON' ? !e.textContent.trim() : !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                   .map(e => 'no label: ' + (e.id || e.name || e.outerHTML));
                 const dangling = [...document.querySelectorAll('[aria-describedby]')]
                   .flatMap(e => e.getAttribute('aria-describedby').split(' ')
                     .filter(id => !document.getElementById(id))
                     .map(id => 'no #' + id + ' for ' + (e.id || e.name)));
                 return unlabelled.concat(dangling);",
                vec![],
            )
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    pub async fn close(self) {
        self.c.close().await.unwrap();
    }
}
