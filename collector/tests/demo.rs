//! `headlight demo --exit`, run as a newcomer runs it (the binary, a fresh output folder), and
//! what it found read back from its summary, its webhook log and its charts.
//!
//! The story takes about two minutes of real time; `.config/nextest.toml` runs this test alone,
//! so other tests' load does not shift the demo's before and after windows.

use std::process::Command;

use serde_json::Value;

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn transaction<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["transaction"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

#[test]
fn demo_tells_the_story_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_headlight"))
        .args(["demo", "--exit", "--out"])
        .arg(out.path())
        .env_remove("HEADLIGHT_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    // The deploy of shop-checkout 2.0.0 regressed on POST /orders, inside SELECT inventory.
    let summary = read_json(&out.path().join("summary.json"));
    let deploy = &summary["deploy"];
    assert_eq!(deploy["deploy"]["service"], "shop-checkout", "{deploy:#}");
    assert_eq!(deploy["deploy"]["version"], "2.0.0");
    assert_eq!(deploy["status"], "ready");
    assert_eq!(deploy["verdict"], "regression", "{stdout}");
    let orders = transaction(deploy, "POST /orders");
    assert_eq!(orders["verdict"], "regression", "{orders:#}");
    let top = &orders["suspects"][0];
    assert_eq!(top["operation"], "SELECT inventory", "{orders:#}");
    // The service adds 22 ms to the operation's median (log-normal, sigma 0.3: ~23 ms mean).
    let added = top["added_ms"].as_f64().unwrap();
    assert!((15.0..35.0).contains(&added), "added {added} ms");
    assert_ne!(
        transaction(deploy, "GET /orders/{id}")["verdict"],
        "regression",
        "the route that did not change must not be blamed: {deploy:#}"
    );

    // The canary of shop-frontend is fine, against the baseline over the same 20 s.
    let canary = &summary["canary"];
    assert_eq!(canary["kind"], "canary");
    assert_eq!(canary["window"]["service"], "shop-frontend");
    assert_eq!(canary["verdict"], "no_change", "{stdout}");
    assert!(
        transaction(canary, "GET /products/{id}")["after"]["count"]
            .as_u64()
            .unwrap()
            >= 100
    );

    // The alert reached the webhook receiver, once per delivery id, naming the route.
    let received: Vec<Value> = std::fs::read_to_string(out.path().join("webhook.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deploy_id = deploy["deploy"]["id"].as_str().unwrap();
    let alert = received
        .iter()
        .find(|r| r["body"]["alert"]["deploy_id"] == deploy_id)
        .unwrap_or_else(|| panic!("no alert for deploy {deploy_id}: {received:#?}"));
    assert_eq!(alert["body"]["event"], "firing");
    assert_eq!(alert["body"]["alert"]["kind"], "deploy_regression");
    assert_eq!(alert["body"]["alert"]["service"], "shop-checkout");
    let summary_text = alert["body"]["alert"]["summary"].as_str().unwrap();
    assert!(summary_text.contains("POST /orders"), "{summary_text}");
    assert!(
        alert["body"]["alert"]["link"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://")),
        "{alert:#}"
    );
    assert!(
        received
            .iter()
            .all(|r| r["body"]["alert"]["service"] == "shop-checkout"),
        "only the regressing deploy alerts: {received:#?}"
    );
    assert_eq!(summary["alerts"].as_array().unwrap().len(), received.len());

    // The terminal showed the story.
    for line in [
        "deploy ",
        "of shop-checkout 2.0.0 (demo)",
        ": REGRESSION",
        "suspects for POST /orders: SELECT inventory",
        "alert delivered to the webhook receiver",
        "canary comparison of shop-frontend: NO_CHANGE",
        "req/s",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }

    // The charts: PNGs that decode to a full image, SVGs that are SVG.
    let charts = summary["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 6, "{charts:?}");
    for chart in charts {
        let path = std::path::Path::new(chart.as_str().unwrap());
        assert!(
            path.starts_with(out.path().canonicalize().unwrap()),
            "{path:?}"
        );
        let bytes = std::fs::read(path).unwrap();
        if path.extension().unwrap() == "png" {
            let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert!(
                info.width >= 600 && info.height >= 200,
                "{path:?}: {info:?}"
            );
            // Not blank: more than a few distinct colours.
            let mut colours: Vec<&[u8]> = buf.chunks(3).collect();
            colours.sort_unstable();
            colours.dedup();
            assert!(colours.len() > 10, "{path:?} looks blank");
        } else {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("<svg"), "{path:?}");
        }
    }
    // The configuration it ran with is kept, and is a valid collector configuration.
    let config = std::fs::read_to_string(out.path().join("headlight.toml")).unwrap();
    headlight_collector::config::Config::from_toml(&config).unwrap();
}
