//! The API: XML against the served XSD, JSON = XML, credentials, errors,
//! operations and jobs, listings, events, limits, shutdown.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use halyard_cluster_model::port::ModelError;
use halyard_cluster_model::value::ValueError;
use halyard_http::{ApiError, status_of};
use reqwest::StatusCode;
use reqwest::StatusCode as S;
use serde_json::Value as Json;

use crate::{ADMIN, CONFLICT_REASON, Harness, OPERATOR_TOKEN, VIEWER, client, config, temp_dir};

const XML: &str = "application/xml";
const JSON: &str = "application/json";

async fn get(h: &Harness, path: &str, accept: &str) -> (StatusCode, String, String) {
    let r = client()
        .get(h.url(path))
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status(), ct, r.text().await.unwrap())
}

fn xmllint(xsd: &std::path::Path, doc: &str, dir: &std::path::Path, n: usize) -> (bool, String) {
    let f = dir.join(format!("doc{n}.xml"));
    std::fs::write(&f, doc).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd)
        .arg(&f)
        .output()
        .expect("xmllint (Debian libxml2-utils) is installed");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_replies_validate_against_the_served_schema() {
    let h = Harness::start().await;
    h.model
        .raise_alarm("ne=1/shelf=1/fan=2", "critical", "fan stalled")
        .await;
    let dir = temp_dir("xsd");
    let (st, ct, xsd) = get(&h, "/api/v1/schema.xsd", "*/*").await;
    assert_eq!(st, StatusCode::OK);
    assert!(ct.starts_with("application/xml"), "{ct}");
    let xsd_path = dir.join("halyard.xsd");
    std::fs::write(&xsd_path, &xsd).unwrap();
    // A job to read back.
    let r = client()
        .post(h.url("/api/v1/objects/ne=1/shelf=1/fan=1/operations/Lock"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", XML)
        .body("<args><reason>maintenance</reason></args>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = r.headers()["location"].to_str().unwrap().to_string();
    let job_xml = r.text().await.unwrap();
    let paths = [
        "/api/v1/tree",
        "/api/v1/tree?root=ne=1/shelf=1",
        "/api/v1/objects",
        "/api/v1/objects/ne=1/shelf=1/fan=1",
        "/api/v1/objects/ne=1/sg=counter/si=1",
        "/api/v1/classes",
        "/api/v1/classes/Component?scope=subtree&base=ne=1/shelf=1",
        "/api/v1/alarms",
        "/api/v1/alarms/summary",
        "/api/v1/hardware",
        "/api/v1/notifications",
        &job,
        "/api/v1/objects/ne=1/shelf=9",
        "/api/v1/objects?class=NoSuchClass",
    ];
    let mut docs: Vec<(String, String)> = vec![("POST Lock".into(), job_xml)];
    for p in paths {
        let (_, ct, body) = get(&h, p, XML).await;
        assert!(ct.starts_with("application/xml"), "{p}: {ct}");
        docs.push((p.to_string(), body));
    }
    for (i, (what, doc)) in docs.iter().enumerate() {
        let (ok, msg) = xmllint(&xsd_path, doc, &dir, i);
        assert!(
            ok && msg.contains("validates"),
            "{what} does not validate:\n{msg}\n{doc}"
        );
    }
    // The schema rejects what it should: a wrong enumeration label.
    let bad = docs[4].1.replace(
        "<admin-state>locked</admin-state>",
        "<admin-state>sleepy</admin-state>",
    );
    assert_ne!(bad, docs[4].1, "fan=1 was locked by the job");
    let (ok, _) = xmllint(&xsd_path, &bad, &dir, 99);
    assert!(!ok, "an unknown label must not validate");
    // Default is XML; the alarm list has the alarm.
    let (_, ct, alarms) = get(&h, "/api/v1/alarms", "*/*").await;
    assert!(ct.starts_with("application/xml"));
    assert!(alarms.contains("<severity>critical</severity>"), "{alarms}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The physical view: every entity of the tree with ietf-hardware's
/// class, parent and states, its sensors with their readings, and the
/// alarm-state of an alarmed entity; JSON and XML alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hardware_view_has_every_entity_its_states_and_sensors() {
    let h = Harness::start().await;
    h.model
        .raise_alarm("ne=1/shelf=1/fan=2", "critical", "fan stalled")
        .await;
    let (st, _, body) = get(&h, "/api/v1/hardware", JSON).await;
    assert_eq!(st, StatusCode::OK);
    let j: Json = serde_json::from_str(&body).unwrap();
    let rows = j["components"].as_array().unwrap();
    let by_name = |n: &str| {
        rows.iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no {n}: {body}"))
    };
    let fan = by_name("ne=1/shelf=1/fan=2");
    assert_eq!(fan["class"], "fan");
    assert_eq!(fan["parent"], "ne=1/shelf=1");
    assert_eq!(fan["alarm-state"], serde_json::json!(["critical"]));
    assert_eq!(fan["oper-state"], "enabled");
    let shelf = by_name("ne=1/shelf=1");
    assert!(
        shelf["contains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "ne=1/shelf=1/fan=2")
    );
    // The fan's speed is a sensor, with the fan as its parent.
    let speed = rows
        .iter()
        .find(|c| c["class"] == "sensor" && c["parent"] == "ne=1/shelf=1/fan=2")
        .unwrap_or_else(|| panic!("no sensor of fan=2: {body}"));
    assert_eq!(speed["sensor"]["value-type"], "rpm");
    assert!(speed["sensor"]["value"].is_i64());
    // The entities are the tree's objects with a physical class.
    let (_, _, objs) = get(&h, "/api/v1/objects", JSON).await;
    let objs: Json = serde_json::from_str(&objs).unwrap();
    let entities = rows.iter().filter(|c| c["class"] != "sensor").count();
    assert!(entities >= 8 && entities < objs["objects"].as_array().unwrap().len());
    // XML carries the same rows.
    let (_, _, xml) = get(&h, "/api/v1/hardware", XML).await;
    assert_eq!(xml.matches("<component ").count(), rows.len(), "{xml}");
    assert!(xml.contains("name=\"ne=1/shelf=1/fan=2\""), "{xml}");
}

/// An operator creates and deletes objects the model lets operators make
/// (an alarm shelf here) with PUT and DELETE; a viewer may not; a class
/// that does not exist is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_creates_and_delete_removes_an_object() {
    let h = Harness::start().await;
    let c = client();
    let shelf = h.url("/api/v1/objects/ne=1/alarmshelf=fans");
    let body = r#"{"class":"AlarmShelf","resource":"ne=1/shelf=1/fan=1","alarm-type":"cooling-fan-failure","reason":"swap"}"#;
    let r = c
        .put(&shelf)
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .header("Content-Type", JSON)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .put(&shelf)
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", JSON)
        .header("Accept", JSON)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Json = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(created["attributes"]["reason"], "swap", "{created}");
    let (st, _, again) = get(&h, "/api/v1/objects/ne=1/alarmshelf=fans", JSON).await;
    assert_eq!(st, StatusCode::OK);
    assert!(again.contains("cooling-fan-failure"), "{again}");
    // Made twice: the model says it exists.
    let r = c
        .put(&shelf)
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", JSON)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = c
        .put(h.url("/api/v1/objects/ne=1/thing=1"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", JSON)
        .body(r#"{"class":"NoSuchClass"}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.text().await.unwrap().contains("no class NoSuchClass"));
    let r = c
        .delete(&shelf)
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (st, _, _) = get(&h, "/api/v1/objects/ne=1/alarmshelf=fans", JSON).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// The text of a JSON attribute value, as XML carries it.
fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_xml_carry_the_same_data() {
    let h = Harness::start().await;
    h.model
        .raise_alarm("ne=1/shelf=1/psu=2", "minor", "output low")
        .await;
    let (_, ct, json) = get(&h, "/api/v1/objects", JSON).await;
    assert_eq!(ct, "application/json");
    let (_, _, xml) = get(&h, "/api/v1/objects", XML).await;
    let json: Json = serde_json::from_str(&json).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let mut from_xml: BTreeMap<u64, (String, BTreeMap<String, String>)> = BTreeMap::new();
    for e in doc.root_element().children().filter(|n| n.is_element()) {
        let idx: u64 = e.attribute("index").unwrap().parse().unwrap();
        let attrs = e
            .children()
            .filter(|n| n.is_element())
            .map(|c| {
                (
                    c.tag_name().name().to_string(),
                    c.text().unwrap_or("").to_string(),
                )
            })
            .collect();
        from_xml.insert(idx, (e.attribute("class").unwrap().to_string(), attrs));
    }
    let objs = json["objects"].as_array().unwrap();
    assert_eq!(objs.len(), from_xml.len());
    assert!(
        objs.len() >= 18,
        "the demo element and the alarm: {}",
        objs.len()
    );
    for o in objs {
        let idx = o["index"].as_u64().unwrap();
        let (class, attrs) = &from_xml[&idx];
        assert_eq!(o["class"].as_str().unwrap(), class);
        let j: BTreeMap<String, String> = o["attributes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json_text(v)))
            .collect();
        assert_eq!(&j, attrs, "object #{idx}");
    }
    // One object, both ways.
    let (_, _, one_json) = get(&h, "/api/v1/objects/ne=1/shelf=1/fan=1", JSON).await;
    let one_json: Json = serde_json::from_str(&one_json).unwrap();
    assert_eq!(one_json["attributes"]["speed"], 4200);
    assert_eq!(one_json["attributes"]["admin-state"], "unlocked");
    let (_, _, one_xml) = get(&h, "/api/v1/objects/ne=1/shelf=1/fan=1?format=xml", JSON).await;
    assert!(one_xml.contains("<speed>4200</speed>"), "{one_xml}");
    // The tree, both ways.
    let (_, _, tj) = get(&h, "/api/v1/tree", JSON).await;
    let tj: Json = serde_json::from_str(&tj).unwrap();
    let (_, _, tx) = get(&h, "/api/v1/tree", XML).await;
    let td = roxmltree::Document::parse(&tx).unwrap();
    let xml_names: Vec<&str> = td
        .descendants()
        .filter(|n| n.has_tag_name("object"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    fn names(n: &Json, out: &mut Vec<String>) {
        out.push(n["name"].as_str().unwrap().to_string());
        for c in n["children"].as_array().unwrap() {
            names(c, out);
        }
    }
    let mut json_names = Vec::new();
    for r in tj["tree"].as_array().unwrap() {
        names(r, &mut json_names);
    }
    assert_eq!(json_names, xml_names);
    assert!(xml_names.contains(&"ne=1/shelf=1/node=a/comp=counterd-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_credentials_and_roles() {
    let h = Harness::start().await;
    let c = client();
    let fan = h.url("/api/v1/objects/ne=1/shelf=1/fan=1");
    let lock = h.url("/api/v1/objects/ne=1/shelf=1/fan=1/operations/Lock");
    // Anonymous writes: 401 with a challenge and a structured body.
    let r = c
        .patch(&fan)
        .header("Content-Type", JSON)
        .body(r#"{"label":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Basic first (a browser asks for a user and password), then Bearer.
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            "Basic realm=\"halyard\", charset=\"UTF-8\"",
            "Bearer realm=\"halyard\""
        ]
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("<code>unauthorized</code>"), "{body}");
    let r = c.post(&lock).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The console signs in with its own form: no Basic challenge for it,
    // so the browser shows no dialog over the page.
    let r = c
        .post(&lock)
        .header("X-Requested-With", "halyard-console")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(challenges, ["Bearer realm=\"halyard\""]);
    let r = c
        .post(h.url("/api/v1/alarms/ne=1/alarm=1/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        h.model.inner.invocations().is_empty(),
        "nothing was invoked"
    );
    // Wrong password, unknown token: 401 even for reads.
    let r = c
        .get(&fan)
        .basic_auth(ADMIN.0, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(&fan)
        .bearer_auth("not-a-token-of-anyone")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A viewer may read but not write: 403.
    let r = c
        .get(&fan)
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(&lock)
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // An operator sets attributes, as it may over SNMPv3 and NETCONF.
    let r = c
        .patch(&fan)
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", JSON)
        .body(r#"{"label":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The admin sets attributes, in XML or JSON, in one transaction.
    let r = c
        .patch(&fan)
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("Content-Type", XML)
        .body("<fan><label>left &amp; front</label><admin-state>shutting-down</admin-state></fan>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("<label>left &amp; front</label>"), "{body}");
    assert!(
        body.contains("<admin-state>shutting-down</admin-state>"),
        "{body}"
    );
    // Errors, each with its status and a structured body.
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        (
            r#"{"label": "y", "speed": 1}"#,
            JSON,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-writable",
        ),
        (
            r#"{"admin-state": "sleepy"}"#,
            JSON,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-value",
        ),
        (
            r#"{"colour": "red"}"#,
            JSON,
            StatusCode::BAD_REQUEST,
            "no-such-attribute",
        ),
        ("{not json", JSON, StatusCode::BAD_REQUEST, "bad-request"),
        (
            "<fan><label>x</fan>",
            XML,
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
    ];
    for (body, ct, status, code) in cases {
        let r = c
            .patch(&fan)
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("Content-Type", *ct)
            .header("Accept", JSON)
            .body(*body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), *status, "{body}");
        let e: Json = r.json_text().await;
        assert_eq!(e["error"]["code"], *code, "{body}: {e}");
        assert_eq!(e["error"]["status"], status.as_u16());
    }
    // The refused writes changed nothing (all or nothing).
    let o: Json =
        serde_json::from_str(&get(&h, "/api/v1/objects/ne=1/shelf=1/fan=1", JSON).await.2).unwrap();
    assert_eq!(o["attributes"]["label"], "left & front");
    // Unknown object 404, malformed name 400.
    let (st, _, _) = get(&h, "/api/v1/objects/ne=1/shelf=7", JSON).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, b) = get(&h, "/api/v1/objects/ne=1/shelf", JSON).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    // Too large a body: 413.
    let r = c
        .patch(&fan)
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("Content-Type", JSON)
        .body(format!(r#"{{"label":"{}"}}"#, "x".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

trait JsonText {
    async fn json_text(self) -> Json;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> Json {
        let t = self.text().await.unwrap();
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_only_when_configured() {
    let h = Harness::with_config(config(false)).await;
    let (st, _, body) = get(&h, "/api/v1/tree", XML).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (st, _, _) = get(&h, "/metrics", "*/*").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The schema stays public.
    let (st, _, _) = get(&h, "/api/v1/schema.xsd", "*/*").await;
    assert_eq!(st, StatusCode::OK);
    let r = client()
        .get(h.url("/api/v1/tree"))
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // EventSource cannot send headers: a token in the query works.
    let r = client()
        .get(h.url(&format!("/api/v1/tree?access_token={OPERATOR_TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_run_as_jobs_and_conflicts_get_409() {
    let h = Harness::start().await;
    let c = client();
    let r = c
        .post(h.url("/api/v1/objects/ne=1/shelf=1/node=a/comp=counterd-a/operations/lock"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", JSON)
        .header("Accept", JSON)
        .body(r#"{"reason": "planned maintenance"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let j = r.json_text().await;
    assert_eq!(j["operation"], "Lock");
    assert_eq!(j["target"], "ne=1/shelf=1/node=a/comp=counterd-a");
    assert_eq!(loc, format!("/api/v1/jobs/{}", j["job"].as_str().unwrap()));
    let polled: Json = serde_json::from_str(&get(&h, &loc, JSON).await.2).unwrap();
    assert_eq!(polled["state"], "succeeded");
    assert_eq!(polled["finished"], true);
    let inv = h.model.inner.invocations();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].operation, "Lock");
    assert_eq!(inv[0].principal.user, "operator");
    assert_eq!(
        inv[0].args,
        vec![(
            "Reason".to_string(),
            halyard_cluster_model::Value::Str("planned maintenance".into())
        )]
    );
    // A conflicting operation: 409 with COpCo's reason.
    let r = c
        .post(h.url("/api/v1/objects/ne=1/sg=counter/operations/SwitchOver"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Accept", JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let e = r.json_text().await;
    assert_eq!(e["error"]["code"], "conflict");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(CONFLICT_REASON),
        "{e}"
    );
    // In XML too.
    let r = c
        .post(h.url("/api/v1/objects/ne=1/sg=counter/operations/SwitchOver"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<status>409</status><code>conflict</code>")
            && body.contains(CONFLICT_REASON),
        "{body}"
    );
    // Unknown operation 404; unknown parameter 422; operation on a GET-only path 405.
    let r = c
        .post(h.url("/api/v1/objects/ne=1/shelf=1/fan=1/operations/Fly"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .post(h.url("/api/v1/objects/ne=1/shelf=1/fan=1/operations/Restart"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Content-Type", JSON)
        .body(r#"{"force": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = c
        .post(h.url("/api/v1/objects/ne=1/shelf=1/fan=1"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Alarms: acknowledge through the Alarm's Acknowledge operation.
    let alarm = h
        .model
        .raise_alarm("ne=1/shelf=1/fan=2", "major", "slow")
        .await;
    let sum: Json = serde_json::from_str(&get(&h, "/api/v1/alarms/summary", JSON).await.2).unwrap();
    assert_eq!(sum["total"], 1);
    assert_eq!(sum["unacknowledged"], 1);
    let major = sum["severities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["severity"] == "major")
        .unwrap();
    assert_eq!(major["active"], 1);
    let r = c
        .post(h.url(&format!("/api/v1/alarms/{alarm}/acknowledge")))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        h.model.inner.invocations().last().unwrap().operation,
        "Acknowledge"
    );
    let sum: Json = serde_json::from_str(&get(&h, "/api/v1/alarms/summary", JSON).await.2).unwrap();
    assert_eq!(sum["unacknowledged"], 0);
    let (_, _, unacked) = get(&h, "/api/v1/alarms?acknowledged=false", JSON).await;
    let unacked: Json = serde_json::from_str(&unacked).unwrap();
    assert_eq!(unacked["objects"].as_array().unwrap().len(), 0);
    let (_, _, acked) = get(&h, "/api/v1/alarms?acknowledged=true&severity=major", JSON).await;
    let acked: Json = serde_json::from_str(&acked).unwrap();
    assert_eq!(
        acked["objects"][0]["attributes"]["acknowledged-by"],
        "operator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_scope_and_filter() {
    let h = Harness::start().await;
    let names = |body: String| -> Vec<String> {
        let j: Json = serde_json::from_str(&body).unwrap();
        j["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["attributes"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (st, _, b) = get(&h, "/api/v1/classes/SoftwareComponent", JSON).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        names(b),
        [
            "ne=1/shelf=1/node=a/comp=counterd-a",
            "ne=1/shelf=1/node=b/comp=counterd-b"
        ]
    );
    // The abstract class lists its subclasses; scope narrows.
    let (_, _, b) = get(
        &h,
        "/api/v1/classes/Component?scope=subtree&base=ne=1/shelf=1/node=b",
        JSON,
    )
    .await;
    assert_eq!(
        names(b),
        ["ne=1/shelf=1/node=b", "ne=1/shelf=1/node=b/comp=counterd-b"]
    );
    let (_, _, b) = get(
        &h,
        "/api/v1/objects?scope=children&base=ne=1/shelf=1/node=a",
        JSON,
    )
    .await;
    assert_eq!(names(b), ["ne=1/shelf=1/node=a/comp=counterd-a"]);
    // Attribute filters, by YANG or schema spelling and either label form.
    let (_, _, b) = get(&h, "/api/v1/classes/Fan?speed=4150", JSON).await;
    assert_eq!(names(b), ["ne=1/shelf=1/fan=2"]);
    let (_, _, b) = get(
        &h,
        "/api/v1/objects?class=Component&AvailabilityState=secondary",
        JSON,
    )
    .await;
    assert_eq!(names(b), ["ne=1/shelf=1/node=b/comp=counterd-b"]);
    let (_, _, b) = get(
        &h,
        "/api/v1/objects?class=SoftwareComponent&availability-state=primary",
        JSON,
    )
    .await;
    assert_eq!(names(b), ["ne=1/shelf=1/node=a/comp=counterd-a"]);
    // The same attribute name with different types in different classes.
    let (st, _, b) = get(&h, "/api/v1/objects?state=running", JSON).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(names(b).is_empty());
    // Bad listings.
    for (p, s) in [
        ("/api/v1/classes/Fan?colour=red", StatusCode::BAD_REQUEST),
        (
            "/api/v1/classes/Fan?speed=fast",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/classes/Unicorn", StatusCode::NOT_FOUND),
        ("/api/v1/objects?scope=children", StatusCode::BAD_REQUEST),
        (
            "/api/v1/objects?scope=sideways&base=ne=1",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/objects?scope=subtree&base=ne=1/shelf=5",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/nothing-here", StatusCode::NOT_FOUND),
    ] {
        let (st, ct, body) = get(&h, p, JSON).await;
        assert_eq!(st, s, "{p}: {body}");
        assert_eq!(ct, "application/json", "{p}");
        let e: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(e["error"]["status"], s.as_u16(), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_and_end_at_shutdown() {
    let h = Harness::start().await;
    let mut r = client()
        .get(h.url("/api/v1/alarms/events"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut seen = String::new();
    async fn until(r: &mut reqwest::Response, seen: &mut String, needle: &str) {
        tokio::time::timeout(Duration::from_secs(20), async {
            while !seen.contains(needle) {
                let chunk = r.chunk().await.unwrap().expect("stream open");
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle} in {seen}"));
    }
    until(&mut r, &mut seen, "event: hello").await;
    // A state change is not an alarm event; the alarm is.
    let alarm = h
        .model
        .raise_alarm("ne=1/shelf=1/psu=1", "critical", "no output")
        .await;
    until(&mut r, &mut seen, "event: alarm-raised").await;
    until(&mut r, &mut seen, &format!("\"alarm\":\"{alarm}\"")).await;
    assert!(seen.contains("\"severity\":\"critical\""), "{seen}");
    // Shutdown ends the stream and run() returns promptly.
    let t = std::time::Instant::now();
    h.stop().await.expect("clean shutdown");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match r.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream ended with the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429() {
    let mut cfg = config(true);
    cfg.limits.requests_per_second = 1;
    cfg.limits.burst = 5;
    let h = Harness::with_config(cfg).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(get(&h, "/api/v1/objects/ne=1", JSON).await.0);
    }
    // The burst passes; then the bucket refills at one per second, so at
    // most one more (on a slow machine) gets through.
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 6, "{statuses:?}");
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(limited + ok, 12, "{statuses:?}");
}

#[test]
fn model_errors_map_to_statuses_in_one_table() {
    let v = ValueError::WrongValue { reason: "x".into() };
    let s = |x: &str| x.to_string();
    let table: Vec<(ModelError, S, &str)> = vec![
        (
            ModelError::NoSuchObject { name: s("a") },
            S::NOT_FOUND,
            "no-such-object",
        ),
        (
            ModelError::NoSuchClass { class: s("C") },
            S::NOT_FOUND,
            "no-such-class",
        ),
        (
            ModelError::NoSuchOperation {
                class: s("C"),
                operation: s("o"),
            },
            S::NOT_FOUND,
            "no-such-operation",
        ),
        (
            ModelError::NoSuchAttribute {
                class: s("C"),
                attribute: s("a"),
            },
            S::BAD_REQUEST,
            "no-such-attribute",
        ),
        (
            ModelError::NotWritable { attribute: s("a") },
            S::UNPROCESSABLE_ENTITY,
            "not-writable",
        ),
        (
            ModelError::InvalidValue {
                attribute: s("a"),
                error: v,
            },
            S::UNPROCESSABLE_ENTITY,
            "invalid-value",
        ),
        (
            ModelError::Inconsistent { reason: s("r") },
            S::UNPROCESSABLE_ENTITY,
            "inconsistent",
        ),
        (
            ModelError::NoCreation {
                name: s("n"),
                reason: s("r"),
            },
            S::UNPROCESSABLE_ENTITY,
            "no-creation",
        ),
        (
            ModelError::AlreadyExists { name: s("n") },
            S::CONFLICT,
            "already-exists",
        ),
        (
            ModelError::AccessDenied { reason: s("r") },
            S::FORBIDDEN,
            "access-denied",
        ),
        (
            ModelError::Conflict { reason: s("busy") },
            S::CONFLICT,
            "conflict",
        ),
        (
            ModelError::CommitFailed { reason: s("r") },
            S::INTERNAL_SERVER_ERROR,
            "commit-failed",
        ),
        (
            ModelError::Unavailable { reason: s("r") },
            S::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (ModelError::Timeout, S::SERVICE_UNAVAILABLE, "timeout"),
    ];
    for (e, status, code) in table {
        let (st, c) = status_of(&e);
        assert_eq!((st.as_u16(), c), (status.as_u16(), code), "{e:?}");
        let a = ApiError::from(e.clone());
        assert_eq!(a.status.as_u16(), status.as_u16());
        assert_eq!(a.message, e.to_string());
    }
    // A refused transaction names the change.
    let a = ApiError::from(halyard_cluster_model::port::TxError {
        index: 2,
        error: ModelError::Conflict { reason: s("busy") },
    });
    assert_eq!((a.status.as_u16(), a.change), (409, Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_when_a_certificate_is_configured() {
    let dir = temp_dir("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A missing key is refused at bind, with the path.
    let mut bad = config(true);
    bad.tls = Some(halyard_http::TlsConfig {
        cert_path: cert.clone(),
        key_path: dir.join("missing.pem"),
    });
    let model: std::sync::Arc<dyn halyard_cluster_model::port::InformationModel> =
        std::sync::Arc::new(crate::TestModel::new());
    let err = halyard_http::HttpServer::bind(bad, model).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let mut cfg = config(true);
    cfg.tls = Some(halyard_http::TlsConfig {
        cert_path: cert.clone(),
        key_path: key,
    });
    let h = Harness::with_config(cfg).await;
    let url = format!("https://{}/api/v1/objects/ne=1/shelf=1/fan=1", h.addr);
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-H",
            "Accept: application/json",
            "--cacert",
        ])
        .arg(&cert)
        .arg(&url)
        .output()
        .await
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("\"speed\":4200"), "{body}");
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = client()
        .get(format!("http://{}/api/v1/tree", h.addr))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    h.stop().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_event_stream_gets_what_it_missed() {
    let h = Harness::start().await;
    let first = h
        .model
        .raise_alarm("ne=1/shelf=1/fan=1", "minor", "first")
        .await;
    let second = h
        .model
        .raise_alarm("ne=1/shelf=1/fan=2", "major", "second")
        .await;
    let history: Json =
        serde_json::from_str(&get(&h, "/api/v1/notifications", JSON).await.2).unwrap();
    let seqs: Vec<u64> = history["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 2, "{history}");
    // Reconnect as an EventSource would, having seen the first one.
    let mut r = client()
        .get(h.url("/api/v1/events"))
        .header("Last-Event-ID", seqs[0].to_string())
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(&second) {
            let chunk = r.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no replay of {second}: {seen}"));
    assert!(seen.contains(&format!("id: {}", seqs[1])), "{seen}");
    assert!(
        !seen.contains(&format!("\"alarm\":\"{first}\"")),
        "already seen: {seen}"
    );
    // Then live ones follow, once each.
    let third = h
        .model
        .raise_alarm("ne=1/shelf=1/psu=1", "critical", "third")
        .await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(&third) {
            let chunk = r.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no live {third}: {seen}"));
    assert_eq!(
        seen.matches(&format!("\"alarm\":\"{second}\"")).count(),
        1,
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_step_job_can_be_followed() {
    let h = Harness::start().await;
    let r = client()
        .post(h.url("/api/v1/objects/ne=1/shelf=1/board=1/operations/RunDiagnostics"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("Accept", JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let j = r.json_text().await;
    assert_eq!(
        (j["state"].as_str(), j["finished"].as_bool()),
        (Some("running"), Some(false))
    );
    assert_eq!(
        (j["steps-done"].as_u64(), j["steps-total"].as_u64()),
        (Some(0), Some(2))
    );
    // A long poll returns when the job moves on, not before.
    let poll = {
        let url = h.url(&format!("{loc}?wait=20000"));
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = client()
                .get(url)
                .header("Accept", JSON)
                .send()
                .await
                .unwrap();
            (t.elapsed(), r.json_text().await)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "the long poll waits for a change");
    let tx = h.model.diagnostics.lock().unwrap()[0].clone();
    tx.send_modify(|s| {
        s.steps_done = 1;
        s.detail = "running the self-test".into();
    });
    let (took, j) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(j["steps-done"], 1);
    assert_eq!(j["detail"], "running the self-test");
    tx.send_modify(|s| {
        s.steps_done = 2;
        s.state = halyard_cluster_model::model::JobState::Succeeded;
        s.detail = "passed".into();
        s.result = Some(0);
    });
    let (_, _, body) = get(&h, &format!("{loc}?wait=20000"), XML).await;
    assert!(
        body.contains("<state>succeeded</state>") && body.contains("<result>0</result>"),
        "{body}"
    );
    let (st, _, _) = get(&h, &format!("{loc}?wait=soon"), JSON).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited() {
    let mut cfg = config(true);
    cfg.limits.max_event_streams = 2;
    let h = Harness::with_config(cfg).await;
    let open = |h: &Harness| client().get(h.url("/api/v1/events")).send();
    let a = open(&h).await.unwrap();
    let b = open(&h).await.unwrap();
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let c = open(&h).await.unwrap();
    assert_eq!(c.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(a);
    // The closed stream's slot comes back.
    crate::eventually(
        "a free event stream slot",
        Duration::from_secs(20),
        || async {
            let r = open(&h).await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    drop(b);
}

#[test]
fn limits_in_a_config_file_default_field_by_field() {
    let c: halyard_http::HttpConfig = serde_json::from_str(
        r#"{"listen": ["127.0.0.1:8443"], "allow_anonymous_read": true,
            "users": [{"name": "ops", "tokens": ["0123456789abcdef0123"], "role": "operator"}],
            "limits": {"requests_per_second": 5}}"#,
    )
    .unwrap();
    assert_eq!(c.limits.requests_per_second, 5);
    assert_eq!(
        c.limits.max_event_streams,
        halyard_http::Limits::default().max_event_streams
    );
    assert_eq!(c.users[0].role, halyard_http::Role::Operator);
}

/// Reads until the server closes the connection (or errors), within `limit`.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_and_idle_ones_closed() {
    use tokio::io::AsyncWriteExt;
    let mut cfg = config(true);
    cfg.limits.max_connections = 2;
    cfg.limits.idle_timeout = Duration::from_millis(1500);
    let h = Harness::with_config(cfg).await;
    let connect = || tokio::net::TcpStream::connect(h.addr);
    let mut a = connect().await.unwrap();
    let _b = connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third is closed at once.
    let mut c = connect().await.unwrap();
    assert!(
        closed_within(&mut c, Duration::from_secs(1)).await,
        "a third connection was kept"
    );
    // A silent connection is closed after the idle time, not before.
    let t = std::time::Instant::now();
    assert!(
        closed_within(&mut a, Duration::from_secs(10)).await,
        "idle connection kept"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    // Their slots come back: a request is served.
    let mut d = crate::eventually(
        "a free connection slot",
        Duration::from_secs(10),
        || async {
            let mut s = connect().await.ok()?;
            s.write_all(
                b"GET /api/v1/objects/ne=1 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
            )
            .await
            .ok()?;
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::io::AsyncReadExt::read(&mut s, &mut buf),
            )
            .await
            .ok()?
            .ok()?;
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            head.starts_with("HTTP/1.1 200").then_some(s)
        },
    )
    .await;
    d.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_idle_bound() {
    let mut cfg = config(true);
    cfg.limits.idle_timeout = Duration::from_millis(1200);
    let h = Harness::with_config(cfg).await;
    let mut r = client().get(h.url("/api/v1/events")).send().await.unwrap();
    let mut seen = String::new();
    // Keep-alive comments every 600 ms keep the silent stream open.
    tokio::time::timeout(Duration::from_secs(20), async {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let chunk = r.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
    assert!(seen.contains("event: hello"), "{seen}");
    assert!(
        seen.matches("\n:").count() + seen.matches(":\n").count() >= 2,
        "keep-alives: {seen:?}"
    );
    let alarm = h
        .model
        .raise_alarm("ne=1/shelf=1/fan=1", "minor", "late")
        .await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(&alarm) {
            let chunk = r.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
}
