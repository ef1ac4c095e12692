//! A batch on its way to one backend: the spans grouped by process, and one
//! attempt at sending what is left of it, a request per process with that
//! process's resource. Every [`GroupExporter`] (OTLP, Zipkin) is driven
//! the same way.
use std::{collections::HashMap, future::Future};

use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
};

use crate::spans::record::{ProcessKey, SpanRecord};

/// The spans of one process, which share a resource.
#[derive(Debug)]
struct ResourceGroup {
    resource: Resource,
    spans: Vec<SpanRecord>,
}

/// A batch on its way to the backend, split by process. Groups the backend
/// accepted are removed, so a retry only re-sends what failed.
#[derive(Debug)]
pub struct Batch {
    groups: Vec<ResourceGroup>,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Batch {
    pub fn new(records: Vec<SpanRecord>) -> Self {
        let mut index: HashMap<ProcessKey, usize> = HashMap::new();
        let mut groups: Vec<ResourceGroup> = Vec::new();
        let total = records.len();
        for record in records {
            let i = *index.entry(record.process).or_insert_with(|| {
                groups.push(ResourceGroup {
                    resource: record.resource.clone(),
                    // Most batches are one process's: its spans are laid
                    // out once rather than moved at every doubling.
                    spans: Vec::with_capacity(if groups.is_empty() { total } else { 0 }),
                });
                groups.len() - 1
            });
            groups[i].spans.push(record);
        }
        Self {
            groups,
            attempts: 0,
        }
    }

    /// Spans not yet accepted by the backend.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.spans.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// A backend's exporter: one process's spans per call, with the resource
/// set before. Like the SDK's `SpanExporter`, but it borrows the spans: the
/// SDK's takes them, so a batch kept for a retry had to be copied for
/// every attempt, a third of the agent's CPU under load.
pub trait GroupExporter: Send + Sync + 'static {
    fn set_resource(&mut self, resource: &Resource);
    fn export(&self, spans: &[SpanRecord]) -> impl Future<Output = OTelSdkResult> + Send;
    fn shutdown(&self) -> OTelSdkResult {
        Ok(())
    }
}

/// How one attempt went.
#[derive(Debug)]
pub struct Attempt {
    /// Spans the backend accepted during this attempt.
    pub exported: usize,
    pub error: Option<OTelSdkError>,
}

/// One attempt at sending what is left of `batch`: per process, set the
/// resource, then export; stops at the first failure (a backend that just
/// failed will most likely fail the next request too).
///
/// Setting the resource per request is what makes one exporter serve many
/// processes: the OTLP tonic and HTTP clients keep it in a field that the
/// next `export` turns into the request's ResourceSpans.resource, and the
/// Zipkin exporter takes each span's localEndpoint.serviceName from it.
pub async fn export_attempt<E: GroupExporter>(exporter: &mut E, batch: &mut Batch) -> Attempt {
    batch.attempts += 1;
    let mut exported = 0;
    while let Some(group) = batch.groups.first() {
        exporter.set_resource(&group.resource);
        match exporter.export(&group.spans).await {
            Ok(()) => {
                exported += group.spans.len();
                batch.groups.remove(0);
            }
            Err(error) => {
                return Attempt {
                    exported,
                    error: Some(error),
                };
            }
        }
    }
    Attempt {
        exported,
        error: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::{Key, Value};

    use super::*;
    use crate::export::convert::tests::record;

    /// service.name of the resource set, and span count, per export call.
    pub(crate) type Calls = Arc<Mutex<Vec<(Option<Value>, usize)>>>;

    /// Records what it was asked to export; fails the first `fail` calls.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct FakeExporter {
        resource: Option<Resource>,
        pub(crate) fail: Arc<Mutex<usize>>,
        pub(crate) calls: Calls,
    }

    impl GroupExporter for FakeExporter {
        async fn export(&self, batch: &[SpanRecord]) -> OTelSdkResult {
            let service = self
                .resource
                .as_ref()
                .and_then(|r| r.get(&Key::from_static_str("service.name")));
            self.calls.lock().unwrap().push((service, batch.len()));
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(OTelSdkError::InternalFailure("fake failure".into()));
            }
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            self.resource = Some(resource.clone());
        }
    }

    #[test]
    fn batch_groups_by_process_in_arrival_order() {
        let batch = Batch::new(vec![record(2), record(1), record(2), record(3)]);
        assert_eq!(batch.len(), 4);
        let sizes: Vec<_> = batch.groups.iter().map(|g| g.spans.len()).collect();
        assert_eq!(sizes, [2, 1, 1]);
        let names: Vec<_> = batch
            .groups
            .iter()
            .map(|g| g.resource.get(&Key::from_static_str("service.name")))
            .collect();
        assert_eq!(
            names,
            [
                Some(Value::from("svc-2")),
                Some(Value::from("svc-1")),
                Some(Value::from("svc-3"))
            ]
        );
    }

    #[test]
    fn same_pid_new_process_is_a_separate_group() {
        let mut restarted = record(2);
        restarted.process.start_ticks += 1;
        let batch = Batch::new(vec![record(2), restarted]);
        assert_eq!(batch.groups.len(), 2);
    }

    #[tokio::test]
    async fn each_group_is_exported_with_its_resource_and_failures_keep_the_rest() {
        let mut fake = FakeExporter::default();
        *fake.fail.lock().unwrap() = 1;
        let mut batch = Batch::new(vec![record(1), record(2), record(2)]);

        // The first request fails: nothing is removed.
        let a = export_attempt(&mut fake, &mut batch).await;
        assert_eq!((a.exported, a.error.is_some()), (0, true));
        assert_eq!(batch.len(), 3);

        let a = export_attempt(&mut fake, &mut batch).await;
        assert_eq!((a.exported, a.error.is_none()), (3, true));
        assert!(batch.is_empty());
        assert_eq!(batch.attempts, 2);
        assert_eq!(
            *fake.calls.lock().unwrap(),
            [
                (Some(Value::from("svc-1")), 1),
                (Some(Value::from("svc-1")), 1),
                (Some(Value::from("svc-2")), 2),
            ]
        );
    }
}
