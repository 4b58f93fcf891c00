//! Generates Rust code for Headlight's gRPC services without a system `protoc`: `protox` parses
//! the `.proto` files in pure Rust and `tonic-prost-build` emits messages and service stubs.
//!
//! Both services decode requests with [`StrictProstCodec`](crate::codec::StrictProstCodec), so
//! a malformed message is answered with `INVALID_ARGUMENT` (tonic's stock codec says `INTERNAL`).
//! The OTLP messages themselves are not generated: they come from `opentelemetry-proto`
//! (`extern_path`), and only the `TraceService` server stub is built from the vendored copy of
//! the OTLP `.proto` files in `opentelemetry/` (same version as the crate).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "headlight/v1/deploy.proto",
        "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    ];
    println!("cargo:rerun-if-changed=headlight");
    println!("cargo:rerun-if-changed=opentelemetry");
    let descriptors = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::StrictProstCodec")
        .extern_path(
            ".opentelemetry.proto.trace",
            "::opentelemetry_proto::tonic::trace",
        )
        .extern_path(
            ".opentelemetry.proto.common",
            "::opentelemetry_proto::tonic::common",
        )
        .extern_path(
            ".opentelemetry.proto.resource",
            "::opentelemetry_proto::tonic::resource",
        )
        .extern_path(
            ".opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
            "::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest",
        )
        .extern_path(
            ".opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse",
            "::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse",
        )
        .extern_path(
            ".opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess",
            "::opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
