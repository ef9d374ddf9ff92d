//! Logging for `flowbot run`: to standard error, filtered by `RUST_LOG` (default `info`), as text
//! for people or, with `FLOWBOT_LOG_FORMAT=json`, one JSON object a line for log collectors.

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (colours on a terminal).
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (with `message`), and
    /// the spans.
    Json,
}

impl Format {
    /// `FLOWBOT_LOG_FORMAT`: `text` (the default) or `json`.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("FLOWBOT_LOG_FORMAT") {
            Err(std::env::VarError::NotPresent) => Ok(Format::Text),
            Ok(v) => v.parse(),
            Err(std::env::VarError::NotUnicode(_)) => {
                anyhow::bail!("FLOWBOT_LOG_FORMAT is not `text` or `json`")
            }
        }
    }
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim() {
            "" | "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => anyhow::bail!("FLOWBOT_LOG_FORMAT `{other}` is not `text` or `json`"),
        }
    }
}

/// Installs the subscriber (once per process).
pub fn init(format: Format) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A closed stderr must not panic the task that logs (the shutdown task among them).
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => {
            builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
        }
        Format::Json => builder.json().with_ansi(false).with_current_span(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
        assert_eq!("text".parse::<Format>().unwrap(), Format::Text);
        let err = "xml".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("`xml`"), "{err}");
    }
}
