//! Server-side charts: the hitmap, latency trends and a comparison's overlay, as SVG and PNG,
//! with the deploy drawn; PNG text needs no system font library.

mod common;

use headlight_collector::server::Server;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::trace::Span;
use serde_json::Value;

use common::otlp::{attr, request_with_resource};

const MIN: i64 = 60_000;
/// The deploy marker colour (plotters writes it upper-case in SVG).
const MARKER_SVG: &str = "#D62728";
const MARKER_RGB: [u8; 3] = [214, 39, 40];

async fn send(server: &Server, version: &str, from_ms: i64, n: u64, slow: u64, first_id: u64) {
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let spans: Vec<Span> = (0..n)
        .map(|i| {
            let end_ns = (from_ms as u64 + i * 1500) * 1_000_000;
            let duration_us = 10_000 + (i * 7919) % 20_000 + slow;
            let id = first_id + i;
            let mut trace_id = vec![0; 16];
            trace_id[..8].copy_from_slice(&id.to_be_bytes());
            Span {
                trace_id,
                span_id: vec![1; 8],
                name: "GET /charts".into(),
                kind: 2,
                start_time_unix_nano: end_ns - duration_us * 1000,
                end_time_unix_nano: end_ns,
                ..Default::default()
            }
        })
        .collect();
    let request = request_with_resource(
        vec![
            attr("service.name", "plots"),
            attr("service.version", version),
        ],
        spans,
    );
    let response = client.export(request).await.unwrap().into_inner();
    assert!(response.partial_success.is_none(), "{response:?}");
}

async fn fetch(server: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let response = reqwest::get(format!("http://{}{path}", server.http))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Keeps a rendered chart under `target/chart-artifacts/` for a person to look at.
fn keep(name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/chart-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Decodes a PNG: (width, height, RGB pixels).
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let pixels = buf[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_render_the_data_and_the_deploy_in_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let t = (common::now_ms() - 20 * MIN) / MIN * MIN;
    // 600 requests before the deploy, 600 slower ones after its warm-up.
    send(&server, "1.0", t - 15 * MIN, 600, 0, 1).await;
    send(&server, "2.0", t + 2 * MIN, 600, 15_000, 10_000).await;
    server.flush().await.unwrap();
    let client = reqwest::Client::new();
    let deploy: Value = client
        .post(format!("http://{}/api/v1/deploys", server.http))
        .json(&serde_json::json!({"service": "plots", "version": "2.0", "time_ms": t}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = deploy["id"].as_str().unwrap();
    let range = format!("service=plots&from={}&to={}", t - 16 * MIN, t + 18 * MIN);

    // The hitmap: one rectangle per non-empty cell, the deploy line and its label.
    let cells = common::get_ok(&server, &format!("/api/v1/heatmap?{range}&x_step_s=60")).await;
    let non_empty = cells["counts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c.as_array().unwrap())
        .filter(|c| c.as_u64().unwrap() > 0)
        .count();
    assert!(non_empty > 50, "{cells}");
    let (status, content_type, body) =
        fetch(&server, &format!("/api/v1/heatmap.svg?{range}&x_step_s=60")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "image/svg+xml"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let svg = String::from_utf8(body).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    let filled_rects = svg.matches("<rect").count();
    assert!(
        filled_rects > non_empty,
        "{filled_rects} rects for {non_empty} cells"
    );
    assert!(
        svg.contains(MARKER_SVG) && svg.contains("\n2.0\n"),
        "deploy marker missing"
    );
    assert!(svg.contains("hitmap: plots"));

    let (status, content_type, body) = fetch(
        &server,
        &format!("/api/v1/heatmap.png?{range}&x_step_s=60&width=640&height=300"),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    keep("hitmap.png", &body);
    let (w, h, pixels) = decode_png(&body);
    assert_eq!((w, h), (640, 300));
    let red = pixels.iter().filter(|p| **p == MARKER_RGB).count();
    assert!(red > 100, "the deploy line is drawn: {red} marker pixels");
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 60)).count();
    assert!(
        dark > 200,
        "axis labels are drawn with the embedded font: {dark} dark pixels"
    );

    // Latency trends: three panels, the percentiles' legend, the deploy.
    let (status, content_type, body) =
        fetch(&server, &format!("/api/v1/latency.svg?{range}&step=60")).await;
    assert_eq!((status, content_type.as_str()), (200, "image/svg+xml"));
    let svg = String::from_utf8(body).unwrap();
    for text in [
        "\np50\n", "\np95\n", "\np99\n", "req/s", "errors %", MARKER_SVG,
    ] {
        assert!(svg.contains(text), "{text} in the latency chart");
    }
    let (status, _, body) = fetch(&server, &format!("/api/v1/latency.png?{range}")).await;
    assert_eq!(status, 200);
    keep("latency.png", &body);
    let (status, _, body) = fetch(&server, &format!("/api/v1/deploys/{id}/comparison.png")).await;
    assert_eq!(status, 200);
    keep("comparison.png", &body);
    assert_eq!(decode_png(&body).0, 900);

    // The comparison's overlay names both sides with their counts.
    let (status, content_type, body) =
        fetch(&server, &format!("/api/v1/deploys/{id}/comparison.svg")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "image/svg+xml"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let svg = String::from_utf8(body).unwrap();
    assert!(
        svg.contains("before: 600 requests") && svg.contains("after: 600 requests"),
        "legend"
    );
    assert!(svg.contains("GET /charts: before vs after"));
    let (status, _, _) = fetch(
        &server,
        &format!("/api/v1/deploys/{id}/comparison.png?transaction=GET%20%2Fnope"),
    )
    .await;
    assert_eq!(status, 404);

    for query in [
        format!("/api/v1/heatmap.png?{range}&width=99999"),
        format!("/api/v1/latency.svg?{range}&colour=red"),
    ] {
        let (status, _, body) = fetch(&server, &query).await;
        assert_eq!(status, 400, "{query}: {}", String::from_utf8_lossy(&body));
    }
    server.shutdown().await.unwrap();
}

#[test]
fn no_system_font_library_is_linked() {
    // plotters' `ttf` feature would pull font-kit and fontconfig; PNG text uses ab_glyph and
    // the embedded DejaVu Sans instead.
    let lock = include_str!("../../Cargo.lock");
    for crate_name in ["font-kit", "yeslogic-fontconfig-sys", "servo-fontconfig"] {
        assert!(
            !lock.contains(&format!("name = \"{crate_name}\"")),
            "{crate_name} is in Cargo.lock"
        );
    }
}
