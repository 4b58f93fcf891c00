//! The resource attributes the agent sends: service, deployment, host, process, SDK.

/// Returns `unknown_service:<executable>`, the OpenTelemetry default service name.
pub(crate) fn unknown_service() -> String {
    format!("unknown_service:{}", executable_name().unwrap_or_default())
}

fn executable_name() -> Option<String> {
    std::env::current_exe()
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
}

/// Builds the resource: the given service attributes, then host and process attributes, a
/// fresh `service.instance.id`, and `extra` (which may override any of them).
pub(crate) fn detect(
    service_name: &str,
    service_version: Option<&str>,
    environment: Option<&str>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut resource: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: String| {
        if let Some(existing) = resource.iter_mut().find(|(k, _)| k == key) {
            existing.1 = value;
        } else {
            resource.push((key.to_owned(), value));
        }
    };
    set("service.name", service_name.to_owned());
    if let Some(version) = service_version {
        set("service.version", version.to_owned());
    }
    if let Some(environment) = environment {
        set("deployment.environment.name", environment.to_owned());
    }
    let instance = crate::ids::trace_id();
    set(
        "service.instance.id",
        instance.iter().map(|b| format!("{b:02x}")).collect(),
    );
    if let Some(host) = host_name() {
        set("host.name", host);
    }
    set("host.arch", std::env::consts::ARCH.to_owned());
    set("os.type", std::env::consts::OS.to_owned());
    set("process.pid", std::process::id().to_string());
    if let Some(exe) = executable_name() {
        set("process.executable.name", exe);
    }
    set("process.runtime.name", "rust".to_owned());
    set("telemetry.sdk.name", "headlight-agent".to_owned());
    set("telemetry.sdk.language", "rust".to_owned());
    set(
        "telemetry.sdk.version",
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    for (key, value) in extra {
        if !matches!(
            key.as_str(),
            "service.name" | "service.version" | "deployment.environment.name"
        ) {
            set(key, value.clone());
        }
    }
    resource
}
