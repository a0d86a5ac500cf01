//! Running llama-server under the supervisor: spawn, wait until `/health` answers 200 (it
//! answers 503 while loading and the port accepts connections long before), raced against the
//! exit so a failed load is reported at once with llama-server's own error lines, then read the
//! effective context from `/props`. Stopping follows llama-server's signal handling: handlers are
//! installed only after loading (a SIGTERM while loading kills it at once); when ready, SIGTERM
//! exits in a few ms, except during a streamed response, where it holds the connection for up to
//! 30 s; a second SIGTERM ends it immediately.

use crate::error::{Error, Result};
use crate::supervisor::logs::{LogFile, LogLevel};
use crate::supervisor::process::{Child, Command, ExitInfo, Sig, StopStep, Stream};
use crate::supervisor::readiness::{wait_ready, Probe, Readiness};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TERM, then a second TERM (llama-server's "terminating immediately") once the first has had
/// time for a clean exit, then KILL.
pub const STOP_PLAN: &[StopStep] = &[
    StopStep {
        signal: Sig::Term,
        wait: Duration::from_millis(2000),
    },
    StopStep {
        signal: Sig::Term,
        wait: Duration::from_millis(3000),
    },
];

/// The log file name under `<userData>/logs/` (0.26's).
pub const LOG_FILE: &str = "llama-server.log";

#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub binary: PathBuf,
    pub args: Vec<String>,
    /// The address `/health` is asked at (`127.0.0.1` for unset or `0.0.0.0`, `::1` for `::`).
    pub health_host: String,
    pub port: u16,
    pub startup_timeout: Duration,
    pub model_path: String,
}

#[derive(Debug, Clone)]
pub struct Launched {
    pub pid: u32,
    pub load_time_ms: u64,
    /// `/props` `default_generation_settings.n_ctx` (per slot).
    pub effective_context_size: Option<u64>,
    /// `/props` `total_slots`.
    pub total_slots: Option<u64>,
}

/// `127.0.0.1` stays as is, `::1` becomes `[::1]` for a URL.
pub fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// 0.26's `normalizeHealthHost`.
pub fn health_host(host: Option<&str>) -> String {
    match host.map(str::trim) {
        None | Some("") | Some("0.0.0.0") => "127.0.0.1".to_string(),
        Some("::") => "::1".to_string(),
        Some(h) => h.to_string(),
    }
}

/// Splits `0.00.003.776 E gguf_init_from_file: ...` into its level and text. Lines without the
/// prefix (argument errors, `warning: ...`) are judged by their words.
pub fn classify(line: &str) -> (LogLevel, String) {
    let mut parts = line.splitn(3, ' ');
    let (ts, lvl, rest) = (parts.next(), parts.next(), parts.next());
    if let (Some(ts), Some(lvl), Some(rest)) = (ts, lvl, rest) {
        let ts_ok =
            ts.split('.').count() == 4 && ts.chars().all(|c| c.is_ascii_digit() || c == '.');
        if ts_ok && lvl.len() == 1 {
            let text = rest.to_string();
            let level = match lvl {
                "E" => LogLevel::Error,
                "W" => LogLevel::Warn,
                "D" => LogLevel::Debug,
                _ if text.starts_with("slot ") => LogLevel::Debug,
                _ => LogLevel::Info,
            };
            return (level, text);
        }
    }
    let lower = line.to_ascii_lowercase();
    let level =
        if lower.starts_with("error") || lower.contains("exception") || lower.contains("fatal") {
            LogLevel::Error
        } else if lower.starts_with("warn") {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
    (level, line.to_string())
}

/// The error for a llama-server that exited before it was ready, quoting its own lines.
pub fn startup_failure(info: &ExitInfo, spec: &LaunchSpec) -> Error {
    let tail = &info.stderr_tail;
    if tail
        .iter()
        .any(|l| l.contains("couldn't bind HTTP server socket"))
    {
        return Error::PortInUse { port: spec.port };
    }
    let first = tail.first().map(String::as_str).unwrap_or("");
    let (code, quoted): (&str, Vec<String>) = if first.starts_with("error: invalid argument")
        || first.starts_with("error while handling argument")
    {
        ("INVALID_ARGUMENT", vec![first.to_string()])
    } else {
        let mut seen: Vec<String> = Vec::new();
        for l in tail {
            let (level, text) = classify(l);
            if level == LogLevel::Error && !seen.contains(&text) {
                seen.push(text);
            }
        }
        let load = tail.iter().any(|l| {
            l.contains("exiting due to model loading error") || l.contains("failed to load model")
        });
        let code = if load {
            "MODEL_LOAD_FAILED"
        } else if info.signal.is_some() {
            "CRASHED_DURING_STARTUP"
        } else {
            "EXITED_DURING_STARTUP"
        };
        // The generic closing lines say less than the first ones.
        seen.retain(|t| !t.contains("exiting due to model loading error"));
        seen.truncate(4);
        (code, seen)
    };
    let what = if code == "MODEL_LOAD_FAILED" {
        "failed to load the model"
    } else if code == "INVALID_ARGUMENT" {
        "refused its arguments"
    } else {
        "exited during startup"
    };
    let mut message = format!("llama-server {what} ({})", info.describe());
    if !quoted.is_empty() {
        message.push_str(": ");
        message.push_str(&quoted.join("; "));
    }
    let suggestion = match code {
        "MODEL_LOAD_FAILED" => "Check that the model file exists and is a complete GGUF file (verify or download it again), and that there is enough memory for it.",
        "INVALID_ARGUMENT" => "This llama-server build does not accept an argument the configuration produced; use a current llama.cpp release or remove the field.",
        _ => "See the llama-server log (getLogs()) for the lines before the exit.",
    };
    Error::server(
        message,
        json!({
            "code": code,
            "exitCode": info.exit_code(),
            "signal": info.signal_name(),
            "stderr": tail.join("\n"),
            "modelPath": spec.model_path,
            "suggestion": suggestion,
        }),
    )
}

/// `GET http://host:port<path>`: the status and the JSON body (null when it is not JSON).
async fn get_json(
    client: &reqwest::Client,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> reqwest::Result<(u16, Value)> {
    let url = format!("http://{}:{port}{path}", url_host(host));
    let r = client.get(url).timeout(timeout).send().await?;
    let status = r.status().as_u16();
    let body = r
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    Ok((status, body))
}

/// One `GET /health`: 200 is ready; anything else says what the server is doing.
pub async fn probe_health(client: &reqwest::Client, host: &str, port: u16) -> Probe {
    match get_json(client, host, port, "/health", Duration::from_secs(2)).await {
        Ok((200, _)) => Probe::Ready,
        Ok((status, body)) => {
            let msg = body["error"]["message"].as_str().unwrap_or("");
            Probe::NotReady(format!("{status} {msg}").trim().to_string())
        }
        Err(e) if e.is_connect() => Probe::NotReady("connection refused".into()),
        Err(e) => Probe::NotReady(e.to_string()),
    }
}

async fn read_props(client: &reqwest::Client, host: &str, port: u16) -> (Option<u64>, Option<u64>) {
    let Ok((_, body)) = get_json(client, host, port, "/props", Duration::from_secs(5)).await else {
        return (None, None);
    };
    (
        body["default_generation_settings"]["n_ctx"].as_u64(),
        body["total_slots"].as_u64(),
    )
}

/// Spawns llama-server and resolves once it serves; on any failure nothing is left running.
/// Every output line goes to `log`; `on_spawn` gets the child as soon as it runs (so a stop
/// during loading can reach it).
pub async fn launch(
    spec: &LaunchSpec,
    log: Arc<LogFile>,
    on_spawn: impl FnOnce(Arc<Child>),
) -> Result<(Arc<Child>, Launched)> {
    let command = Command {
        env_remove_prefixes: vec!["LLAMA_ARG_".to_string()],
        ..Command::new(spec.binary.clone(), spec.args.clone())
    };
    let log2 = log.clone();
    let started = Instant::now();
    let child = Child::spawn(
        &command,
        Arc::new(move |_stream: Stream, line: &str| {
            let (level, text) = classify(line);
            log2.write(level, &text);
        }),
    )
    .map_err(|e| {
        Error::server(
            format!("Failed to spawn llama-server ({}): {e}", spec.binary.display()),
            json!({ "binary": spec.binary.display().to_string(), "error": e.to_string(), "code": "SPAWN_FAILED" }),
        )
    })?;
    let child = Arc::new(child);
    on_spawn(child.clone());
    let client = crate::http::loopback_client();
    let outcome = wait_ready(
        &child,
        spec.startup_timeout,
        Duration::from_millis(20),
        Duration::from_millis(250),
        None,
        || probe_health(&client, &spec.health_host, spec.port),
    )
    .await;
    match outcome {
        Readiness::Ready => {}
        Readiness::Exited(info) => return Err(startup_failure(&info, spec)),
        Readiness::TimedOut { last } => {
            child.stop(STOP_PLAN).await;
            return Err(Error::server(
                format!(
                    "llama-server did not become ready within {} ms (last /health answer: {last})",
                    spec.startup_timeout.as_millis()
                ),
                json!({
                    "code": "STARTUP_TIMEOUT",
                    "lastHealth": last,
                    "suggestion": "Large models on slow disks load slowly: raise startupTimeout, or check the llama-server log.",
                }),
            ));
        }
    }
    let load_time_ms = started.elapsed().as_millis() as u64;
    let (n_ctx, slots) = read_props(&client, &spec.health_host, spec.port).await;
    if let Some(info) = child.exited() {
        return Err(startup_failure(&info, spec));
    }
    let pid = child.pid();
    Ok((
        child,
        Launched {
            pid,
            load_time_ms,
            effective_context_size: n_ctx,
            total_slots: slots,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            binary: "/bin/llama-server".into(),
            args: vec![],
            health_host: "127.0.0.1".into(),
            port: 18091,
            startup_timeout: Duration::from_secs(1),
            model_path: "/models/missing.gguf".into(),
        }
    }

    fn exit(code: Option<i32>, signal: Option<i32>, lines: &str) -> ExitInfo {
        ExitInfo {
            code,
            signal,
            stderr_tail: lines.lines().map(str::to_string).collect(),
        }
    }

    #[test]
    fn classify_current_and_plain_lines() {
        let (l, t) = classify("0.00.003.776 E gguf_init_from_file: failed to open GGUF file 'x'");
        assert_eq!(l, LogLevel::Error);
        assert_eq!(t, "gguf_init_from_file: failed to open GGUF file 'x'");
        assert_eq!(
            classify("1.04.394.618 W llama_context: n_ctx_seq").0,
            LogLevel::Warn
        );
        assert_eq!(
            classify("0.00.024.343 I srv  llama_server: model loaded").0,
            LogLevel::Info
        );
        assert_eq!(
            classify("0.01.000.000 I slot print_timing: id  3 | task 1 |").0,
            LogLevel::Debug
        );
        assert_eq!(
            classify("error: invalid argument: --bogus-flag").0,
            LogLevel::Error
        );
        assert_eq!(classify("warning: no usable GPU found").0, LogLevel::Warn);
        assert_eq!(
            classify("Received second interrupt, terminating immediately.").0,
            LogLevel::Info
        );
    }

    #[test]
    fn missing_model_quotes_the_real_lines_once() {
        let e = startup_failure(
            &exit(Some(1), None, "0.00.002.302 I cmn  common_param: verbosity = 3\n0.00.003.709 I srv    load_model: loading model '/models/missing.gguf'\n0.00.003.776 E gguf_init_from_file: failed to open GGUF file '/models/missing.gguf' (No such file or directory)\n0.00.003.868 E llama_model_load: error loading model: llama_model_loader: failed to load model from /models/missing.gguf\n0.00.003.915 E gguf_init_from_file: failed to open GGUF file '/models/missing.gguf' (No such file or directory)\n0.00.004.454 E srv  llama_server: exiting due to model loading error"),
            &spec(),
        );
        let m = e.to_string();
        assert_eq!(m, "Server error: llama-server failed to load the model (code 1): gguf_init_from_file: failed to open GGUF file '/models/missing.gguf' (No such file or directory); llama_model_load: error loading model: llama_model_loader: failed to load model from /models/missing.gguf");
        match e {
            Error::Server { details, .. } => {
                assert_eq!(details["code"], "MODEL_LOAD_FAILED");
                assert_eq!(details["exitCode"], 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn argument_errors_port_in_use_and_crashes() {
        let m = startup_failure(
            &exit(
                Some(1),
                None,
                "error while handling argument \"-c\": stoi\nusage:\n-c,    --ctx-size N",
            ),
            &spec(),
        )
        .to_string();
        assert_eq!(m, "Server error: llama-server refused its arguments (code 1): error while handling argument \"-c\": stoi");
        let e = startup_failure(&exit(Some(1), None, "0.00.002.743 E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 18091\n0.00.002.884 E srv  llama_server: exiting due to HTTP server error"), &spec());
        assert!(matches!(e, Error::PortInUse { port: 18091 }));
        let e = startup_failure(&exit(None, Some(11), "0.00.005.833 E llama_init_from_model: V cache quantization requires flash_attn\n0.00.006.858 E cmn  common_init_: failed to create context with model '/models/tiny.gguf'"), &spec());
        let m = e.to_string();
        assert!(m.starts_with("Server error: llama-server exited during startup (signal 11 (SIGSEGV)): llama_init_from_model: V cache quantization requires flash_attn"), "{m}");
    }

    #[test]
    fn health_hosts() {
        assert_eq!(health_host(None), "127.0.0.1");
        assert_eq!(health_host(Some("0.0.0.0")), "127.0.0.1");
        assert_eq!(health_host(Some("::")), "::1");
        assert_eq!(url_host("::1"), "[::1]");
    }
}
