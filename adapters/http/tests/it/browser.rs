//! The console in headless Debian Chromium, driven through chromedriver
//! with fantoccini: tree, lock, live alarms, acknowledge, screenshot.

use std::process::Stdio;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::json;
use tokio::process::Command;

use crate::{Harness, OPERATOR_TOKEN, artifact_dir, client, eventually, free_port, temp_dir};

const WAIT: Duration = Duration::from_secs(30);

async fn start_browser(profile: &std::path::Path) -> (tokio::process::Child, Client) {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver (Debian package chromium-driver) is installed");
    let status = format!("http://127.0.0.1:{port}/status");
    eventually("chromedriver to start", WAIT, || {
        let status = status.clone();
        async move {
            let r = client().get(&status).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1600,1000",
            ],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session through chromedriver");
    (driver, c)
}

/// The visible text of the first element matching `css`, if any.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn wait_text(c: &Client, css: &str, want: &str) {
    eventually(&format!("'{want}' in {css}"), WAIT, || async move {
        text_of(c, css)
            .await
            .filter(|t| t.contains(want))
            .map(|_| ())
    })
    .await;
}

/// Clicks the element once it is there (again if a live update replaced it
/// between finding and clicking).
async fn click(c: &Client, css: &str) {
    eventually(&format!("a click on {css}"), WAIT, || async move {
        c.find(Locator::Css(css)).await.ok()?.click().await.ok()
    })
    .await;
}

async fn confirm_op(c: &Client, op: &str, param: Option<(&str, &str)>) {
    click(c, &format!("#ops button[data-op=\"{op}\"]")).await;
    eventually("the confirmation dialog", WAIT, || async move {
        let m = c.find(Locator::Css("#modal")).await.ok()?;
        m.is_displayed().await.ok()?.then_some(())
    })
    .await;
    let title = text_of(c, "#modal-title").await.unwrap();
    assert!(title.starts_with(op), "{title}");
    if let Some((name, value)) = param {
        let input = c
            .find(Locator::Css(&format!("#param-{name}")))
            .await
            .unwrap();
        input.send_keys(value).await.unwrap();
    }
    click(c, "#confirm-ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let h = Harness::start().await;
    let profile = temp_dir("chromium");
    let (mut driver, c) = start_browser(&profile).await;
    // Whatever happens, the browser is closed: a panic must not orphan it.
    let outcome = AssertUnwindSafe(async {
        c.goto(&h.url("/")).await.unwrap();
        assert_eq!(c.title().await.unwrap(), "Halyard console");
        // The tree: the shelf and the demo's components, with their states.
        let comp = "ne=1/shelf=1/node=a/comp=counterd-a";
        for name in [
            "ne=1/shelf=1",
            "ne=1/shelf=1/fan=1",
            "ne=1/shelf=1/psu=2",
            comp,
            "ne=1/shelf=1/node=b/comp=counterd-b",
        ] {
            let c = &c;
            eventually(&format!("{name} in the tree"), WAIT, || async move {
                c.find(Locator::Css(&format!(".row[data-name=\"{name}\"]")))
                    .await
                    .ok()
            })
            .await;
        }
        let row = format!(".row[data-name=\"{comp}\"]");
        wait_text(
            &c,
            &format!("{row} .pill[data-attr=\"availability-state\"]"),
            "primary",
        )
        .await;
        wait_text(&c, ".group .asg", "active").await;
        wait_text(&c, "#live", "live").await;
        // Nothing below reloads the page: this marker would be lost.
        c.execute("window.__noReload = 42; return 0;", vec![])
            .await
            .unwrap();

        // Signed out, the console offers no operation (the access rules
        // give an anonymous reader none).
        click(&c, &row).await;
        wait_text(&c, "#detail-name", comp).await;
        wait_text(&c, "#charts", "restarts").await;
        assert!(
            c.find(Locator::Css("#ops button")).await.is_err(),
            "an operation offered to nobody signed in"
        );

        // Sign in with the operator's token, select the component, lock it.
        c.find(Locator::Css("#login-pass"))
            .await
            .unwrap()
            .send_keys(OPERATOR_TOKEN)
            .await
            .unwrap();
        click(&c, "#login button[type=submit]").await;
        wait_text(&c, "#whoami-name", "token").await;
        click(&c, &row).await;
        wait_text(&c, "#detail-name", comp).await;
        wait_text(&c, "#charts", "restarts").await;
        confirm_op(&c, "Lock", Some(("reason", "maintenance"))).await;
        wait_text(
            &c,
            &format!("{row} .pill[data-attr=\"admin-state\"]"),
            "locked",
        )
        .await;
        wait_text(&c, "#detail-states", "locked").await;
        wait_text(&c, ".job.succeeded", "Lock").await;
        let o = h
            .model
            .inner
            .invocations()
            .into_iter()
            .find(|i| i.operation == "Lock")
            .expect("the console invoked Lock");
        assert_eq!(o.target.as_str(), comp);
        assert_eq!(o.principal.user, "operator");

        // Inject a fault from the console: the alarm appears without a reload.
        confirm_op(&c, "InjectFault", Some(("fault", "crash"))).await;
        wait_text(&c, "#alarms tbody", "injected fault: crash").await;
        // An alarm published by the agent shows up live, with the summary.
        let alarm = h
            .model
            .raise_alarm("ne=1/shelf=1/psu=2", "critical", "output lost")
            .await;
        let arow = format!("#alarms tr[data-alarm=\"{alarm}\"]");
        wait_text(&c, &arow, "output lost").await;
        wait_text(&c, &format!("{arow} .sev"), "critical").await;
        wait_text(&c, "#summary [data-severity=\"critical\"]", "critical 1").await;
        wait_text(&c, "#events", "alarm-raised").await;
        // Acknowledge it.
        click(&c, &format!("{arow} button.ack")).await;
        wait_text(&c, &format!("{arow} .ack-by"), "operator").await;
        let class = c
            .find(Locator::Css(&arow))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(class.contains("acked"), "{class}");
        wait_text(&c, "#summary [data-severity=\"critical\"]", "critical 1").await;
        let unacked = text_of(&c, "#summary [data-severity=\"critical\"]")
            .await
            .unwrap();
        assert!(
            !unacked.contains('('),
            "acknowledged: no unacknowledged count: {unacked}"
        );
        // The hardware panel: the physical view, with the fans' speeds.
        wait_text(
            &c,
            "#hardware tr[data-component=\"ne=1/shelf=1/fan=1\"]",
            "fan",
        )
        .await;
        wait_text(&c, "#hardware tbody", "rpm").await;
        // ietf-alarms' operator state from the alarm panel: closed, with a note.
        let dialog = |c: &Client, state: &'static str, note: &'static str| {
            let c = c.clone();
            let arow = arow.clone();
            async move {
                click(&c, &format!("{arow} button.more")).await;
                eventually("the alarm dialog", WAIT, || async {
                    let m = c.find(Locator::Css("#modal")).await.ok()?;
                    m.is_displayed().await.ok()?.then_some(())
                })
                .await;
                c.find(Locator::Css("#param-state"))
                    .await
                    .unwrap()
                    .select_by_value(state)
                    .await
                    .unwrap();
                c.find(Locator::Css("#param-text"))
                    .await
                    .unwrap()
                    .send_keys(note)
                    .await
                    .unwrap();
                click(&c, "#confirm-ok").await;
            }
        };
        dialog(&c, "closed", "PSU replaced").await;
        let inv = eventually("SetOperatorState", WAIT, || async {
            h.model
                .inner
                .invocations()
                .into_iter()
                .find(|i| i.operation == "SetOperatorState")
        })
        .await;
        assert_eq!(inv.target.as_str(), alarm.as_str());
        let args: Vec<String> = inv.args.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        assert!(
            args.contains(&"State=Str(\"closed\")".to_string())
                && args.contains(&"Text=Str(\"PSU replaced\")".to_string()),
            "{args:?}"
        );
        // Shelving from the panel makes an AlarmShelf for the alarm's
        // resource and type.
        dialog(&c, "shelve on a new shelf", "swap").await;
        let shelf = eventually("the shelf", WAIT, || async {
            use halyard_cluster_model::port::{InformationModel, Query};
            h.model
                .inner
                .query(&Query {
                    classes: vec!["AlarmShelf".into()],
                    ..Query::default()
                })
                .await
                .ok()?
                .into_iter()
                .next()
        })
        .await;
        assert_eq!(
            shelf.get("Resource").and_then(|v| v.as_str()),
            Some("ne=1/shelf=1/psu=2")
        );
        assert_eq!(shelf.get("Reason").and_then(|v| v.as_str()), Some("swap"));
        let marker = c
            .execute("return window.__noReload;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, json!(42), "the page was reloaded");

        // The screenshot, as an artifact.
        let png = c.screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{} bytes",
            png.len()
        );
        let path = artifact_dir().join("halyard-http-console.png");
        std::fs::write(&path, &png).unwrap();
        eprintln!("console screenshot: {}", path.display());
    })
    .catch_unwind()
    .await;
    let _ = c.close().await;
    let _ = driver.kill().await;
    let _ = driver.wait().await;
    let _ = std::fs::remove_dir_all(profile);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// With anonymous reads off, the console signs in with HTTP basic
/// credentials and its event stream carries them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_signed_in_with_basic_auth() {
    let h = Harness::with_config(crate::config(false)).await;
    let profile = temp_dir("chromium");
    let (mut driver, c) = start_browser(&profile).await;
    // Whatever happens, the browser is closed: a panic must not orphan it.
    let outcome = AssertUnwindSafe(async {
        c.goto(&h.url("/")).await.unwrap();
        wait_text(&c, "#toast", "Sign in").await;
        assert!(
            c.find(Locator::Css(".row[data-name=\"ne=1\"]"))
                .await
                .is_err()
        );
        let user = c.find(Locator::Css("#login-user")).await.unwrap();
        user.send_keys(crate::ADMIN.0).await.unwrap();
        let pass = c.find(Locator::Css("#login-pass")).await.unwrap();
        pass.send_keys(crate::ADMIN.1).await.unwrap();
        click(&c, "#login button[type=submit]").await;
        wait_text(&c, "#whoami-name", crate::ADMIN.0).await;
        wait_text(&c, ".row[data-name=\"ne=1/shelf=1/fan=2\"]", "fan=2").await;
        wait_text(&c, "#live", "live").await;
        let alarm = h
            .model
            .raise_alarm("ne=1/shelf=1/fan=2", "warning", "bearing noise")
            .await;
        wait_text(
            &c,
            &format!("#alarms tr[data-alarm=\"{alarm}\"]"),
            "bearing noise",
        )
        .await;
        wait_text(&c, "#summary [data-severity=\"warning\"]", "warning 1 (1)").await;
    })
    .catch_unwind()
    .await;
    let _ = c.close().await;
    let _ = driver.kill().await;
    let _ = driver.wait().await;
    let _ = std::fs::remove_dir_all(profile);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
