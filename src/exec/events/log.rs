//! Log records (`tracing`) as events, so that with `--progress json` a warning from the S3
//! client or an `--log info` line is a JSON line like the rest (`warning`, `error` or `log`).

use super::{Event, emit};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// A `tracing` layer writing every record it sees as an event.
pub struct JsonLog;

impl<S: Subscriber> Layer<S> for JsonLog {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        let mut record = Record::default();
        event.record(&mut record);
        let meta = event.metadata();
        let target = meta.target();
        let text = record.message.as_str();
        let fields = (!record.fields.is_empty()).then_some(&record.fields);
        let level = *meta.level();
        emit(&if level == Level::ERROR {
            Event::Error {
                text,
                address: None,
                target: Some(target),
                fields,
                exit_code: None,
            }
        } else if level == Level::WARN {
            Event::Warning {
                text,
                address: None,
                target: Some(target),
                fields,
            }
        } else {
            Event::Log {
                level: level_name(level),
                target,
                text,
                fields,
            }
        });
    }
}

fn level_name(level: Level) -> &'static str {
    if level == Level::INFO {
        "info"
    } else if level == Level::DEBUG {
        "debug"
    } else {
        "trace"
    }
}

/// The message and the other fields of one record.
#[derive(Default)]
struct Record {
    message: String,
    fields: Map<String, Value>,
}

impl Record {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}
