//! The `tracing_subscriber::Layer` that records spans for export.
//!
//! Per span it keeps a boxed [`SpanRecord`](crate::record::SpanRecord), taken from the
//! recycling [`Pool`](crate::pool::Pool), in the registry's extensions. The spans of one
//! transaction share a list: children that end are parked in it, and when the transaction span ends the
//! whole local subtree goes to the export queue as one item, so the export thread can make the
//! tail decision with everything in view. The application thread never does more than that.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Sampler;
use crate::ids;
use crate::pool::BoxedRecord;
use crate::propagation::TraceContext;
use crate::queue::{Item, Queue};
use crate::record::{EventRecord, EventVisitor, MAX_EVENTS, SpanVisitor, Status};

thread_local! {
    /// Set on the export thread: nothing happening there is recorded (the transport's own
    /// spans and events would otherwise feed back into the queue).
    static SUPPRESSED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as the exporter's: the layer ignores its spans and events.
pub(crate) fn suppress_current_thread() {
    SUPPRESSED.with(|s| s.set(true));
}

fn suppressed() -> bool {
    SUPPRESSED.with(Cell::get)
}

/// The child spans of one transaction that ended before it.
#[derive(Debug, Default)]
struct Children {
    spans: Vec<BoxedRecord>,
    /// The transaction span has ended: later children are sent on their own.
    closed: bool,
}

type SharedChildren = Arc<Mutex<Children>>;

/// What the layer keeps in a span's extensions.
#[derive(Debug)]
pub(crate) struct SpanState {
    record: BoxedRecord,
    sampled: bool,
    transaction: bool,
    /// Where the transaction's children go; a transaction creates it when its first child
    /// starts, so a transaction without children allocates nothing for it.
    children: Option<SharedChildren>,
}

impl SpanState {
    pub(crate) fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.record.trace_id,
            span_id: self.record.span_id,
            sampled: self.sampled,
            trace_state: self.record.trace_state.as_deref().map(str::to_owned),
        }
    }
}

/// What a new span takes from its nearest recorded ancestor.
struct Inherited {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
    trace_state: Option<Arc<str>>,
    children: SharedChildren,
}

/// Records `tracing` spans as OTLP spans and queues them for the export thread.
///
/// - Fields become attributes; `otel.name` renames the span, `otel.kind` sets its kind
///   (`server`, `client`, `producer`, `consumer`, `internal`), `otel.status_code` /
///   `otel.status_message` and any field named `error` (or recorded as an error) set the error
///   status; `traceparent` / `tracestate` fields make the span continue a remote trace.
/// - Events inside a span become span events (`message` is the event name); an `ERROR`-level
///   event or an `error` field marks the span as failed.
/// - A span of kind server or consumer, or a span without a recorded parent, is a
///   transaction: it is always sent (unless the head sampler said no); its children are kept or
///   summarized by the local tail decision.
/// - Spans and events more verbose than the builder's `max_level` (default INFO) are not
///   recorded, so `debug`/`trace` spans of libraries (hyper, h2, tonic) do not become
///   transactions; a recorded span inside a skipped one attaches to the nearest recorded
///   ancestor.
/// - Events with a `headlight_agent` target and everything on the export thread are ignored.
///
/// Build it with [`crate::builder`]; it composes with any other layer (`fmt`, `EnvFilter`…).
#[derive(Debug)]
pub struct HeadlightLayer {
    queue: Arc<Queue>,
    sampler: Sampler,
    max_children: usize,
    max_level: Level,
}

impl HeadlightLayer {
    pub(crate) fn new(
        queue: Arc<Queue>,
        sampler: Sampler,
        max_children: usize,
        max_level: Level,
    ) -> Self {
        Self {
            queue,
            sampler,
            max_children,
            max_level,
        }
    }

    fn finish(&self, state: SpanState) {
        let SpanState {
            mut record,
            sampled,
            transaction,
            children,
        } = state;
        if !sampled {
            return;
        }
        record.end = SystemTime::now().max(record.start);
        if transaction {
            let spans = children.map_or_else(Vec::new, |children| {
                let mut children = children.lock().unwrap_or_else(PoisonError::into_inner);
                children.closed = true;
                std::mem::take(&mut children.spans)
            });
            self.queue.push(Item::Transaction {
                span: record,
                children: spans,
            });
            return;
        }
        let Some(children) = children else {
            debug_assert!(false, "a child span always has its transaction's children");
            return;
        };
        let mut children = children.lock().unwrap_or_else(PoisonError::into_inner);
        if children.closed || children.spans.len() >= self.max_children {
            drop(children);
            self.queue.push(Item::Loose(record));
        } else {
            if children.spans.capacity() == 0 {
                children.spans = self.queue.pool.take_list();
            }
            children.spans.push(record);
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for HeadlightLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if suppressed() || *attrs.metadata().level() > self.max_level {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        // The nearest recorded ancestor: spans below `max_level` are skipped, not cut out.
        // (From `span.parent()` rather than `span.scope().skip(1)`, which looks the span itself
        // up again.)
        let mut next = span.parent();
        let mut parent = None;
        while let Some(ancestor) = next {
            let mut extensions = ancestor.extensions_mut();
            if let Some(state) = extensions.get_mut::<SpanState>() {
                let children = state.children.get_or_insert_with(SharedChildren::default);
                parent = Some(Inherited {
                    trace_id: state.record.trace_id,
                    span_id: state.record.span_id,
                    sampled: state.sampled,
                    trace_state: state.record.trace_state.clone(),
                    children: Arc::clone(children),
                });
                break;
            }
            drop(extensions);
            next = ancestor.parent();
        }
        let mut record = self
            .queue
            .pool
            .take(attrs.metadata().name(), SystemTime::now());
        let mut visitor = SpanVisitor {
            record: &mut record,
            fresh: true,
            traceparent: None,
            tracestate: None,
        };
        attrs.record(&mut visitor);
        let SpanVisitor {
            traceparent,
            tracestate,
            ..
        } = visitor;
        let (sampled, transaction, children) = match parent {
            Some(parent) => {
                record.parent_span_id = Some(parent.span_id);
                record.trace_id = parent.trace_id;
                record.trace_state = parent.trace_state;
                if record.kind.starts_transaction() {
                    (parent.sampled, true, None)
                } else {
                    (parent.sampled, false, Some(parent.children))
                }
            }
            None => {
                let remote = traceparent
                    .as_deref()
                    .and_then(|tp| TraceContext::parse(tp, tracestate.as_deref()));
                let trace_id = remote.as_ref().map_or_else(ids::trace_id, |r| r.trace_id);
                let sampled = self
                    .sampler
                    .sample(&trace_id, remote.as_ref().map(|r| r.sampled));
                record.parent_span_id = remote.as_ref().map(|r| r.span_id);
                record.remote_parent = remote.is_some();
                record.trace_id = trace_id;
                record.trace_state = remote.and_then(|r| r.trace_state).map(Arc::from);
                (sampled, true, None)
            }
        };
        record.span_id = ids::span_id();
        span.extensions_mut().insert(SpanState {
            record,
            sampled,
            transaction,
            children,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(state) = extensions.get_mut::<SpanState>() else {
            return;
        };
        if !state.sampled {
            return;
        }
        values.record(&mut SpanVisitor {
            record: &mut state.record,
            fresh: false,
            traceparent: None,
            tracestate: None,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if suppressed()
            || *event.metadata().level() > self.max_level
            || event.metadata().target().starts_with("headlight_agent")
        {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(state) = extensions.get_mut::<SpanState>() else {
            return;
        };
        if !state.sampled {
            return;
        }
        let record = &mut state.record;
        let mut recorded = EventRecord {
            time: SystemTime::now(),
            name: std::borrow::Cow::Borrowed(event.metadata().name()),
            attributes: smallvec::SmallVec::new(),
        };
        let mut visitor = EventVisitor {
            event: &mut recorded,
            dropped_attributes: 0,
            error: None,
        };
        event.record(&mut visitor);
        let error = visitor.error.take();
        if let Some(message) = error {
            record.status = Status::Error(Some(message));
        } else if *event.metadata().level() == Level::ERROR
            && !matches!(record.status, Status::Error(_))
        {
            record.status = Status::Error(Some(recorded.name.to_string()));
        }
        if record.events.len() < MAX_EVENTS {
            record.events.push(recorded);
        } else {
            record.dropped_events = record.dropped_events.saturating_add(1);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(state) = span.extensions_mut().remove::<SpanState>() else {
            return;
        };
        self.finish(state);
    }
}
