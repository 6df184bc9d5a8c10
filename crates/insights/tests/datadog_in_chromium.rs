//! The panel's Datadog card in a real browser (headless Chromium over WebDriver), against the
//! real server and a local stand-in of the intake (`datadog_stand_in`: no real Datadog is
//! reachable from here): a refused key and a valid one through **Test**, the API's field errors
//! under their inputs, Save, the key never in the page, and the counts once a payload is
//! delivered.

mod common;
mod datadog_stand_in;

use common::TestServer;
use common::browser::Browser;
use datadog_stand_in::Intake;
use reqwest::Method;

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread")]
async fn the_datadog_card_tests_saves_and_shows_delivery() {
    let intake = Intake::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let b = Browser::open(&t.url, "datadog-card").await;
    b.sign_in("/admin/insights").await;
    b.wait_text("#datadog-state-label", |s| s == "Not configured")
        .await;
    assert!(b.text("#datadog-window-note").await.contains("one hour"));

    b.click("#open-datadog").await;
    b.select("#dd-site", "datadoghq.eu").await;
    b.fill("#dd-api-key", "wrongkey").await;
    b.fill("#dd-url", &intake.url()).await;
    b.fill("#dd-tags", "env:prod, bad tag").await;
    b.click("#test-datadog").await;
    let e = b.wait_text("#error-tags", |s| s.contains("Tag 2")).await;
    assert!(e.contains("bad tag"), "{e}");
    b.fill("#dd-tags", "env:prod").await;
    b.click("#test-datadog").await;
    b.wait_text("#datadog-verdict", |s| {
        s.contains("The API key was refused")
    })
    .await;
    b.fill("#dd-api-key", KEY).await;
    b.click("#test-datadog").await;
    b.wait_text("#datadog-verdict", |s| s.contains("accepts the API key"))
        .await;
    b.screenshot("tested").await;
    b.click("#save-datadog").await;
    b.wait_text("#open-datadog", |s| s == "Edit Datadog").await;
    let summary = b.text("#datadog-summary").await;
    assert!(
        summary.contains("datadoghq.eu") && summary.contains("set"),
        "{summary}"
    );
    let html = b.c.source().await.unwrap();
    assert!(!html.contains(KEY), "the key is in the page");
    assert!(b.unlabelled_controls().await.is_empty());

    // A payload, delivered: the counts follow without a reload.
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    let (s, _, body) = t
        .call(&key, "acme/scorer", serde_json::json!({"echo": 1}))
        .await;
    assert_eq!(s, 200, "{body}");
    intake.wait_accepted_series(1, 30).await;
    b.wait_text("#datadog-delivered", |s| s == "1").await;
    b.wait_text("#datadog-state-label", |s| s == "Delivering")
        .await;
    b.screenshot("delivering").await;
    let (_, got) = t
        .admin(Method::GET, "/v1/admin/insights/datadog", None)
        .await;
    assert_eq!(got["settings"]["tags"], serde_json::json!(["env:prod"]));
    b.close().await;
    t.stop().await;
    intake.stop();
}
