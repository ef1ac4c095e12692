//! The series of every traced process: one duration histogram (and, for
//! HTTP, two body-size histograms) per instrument and attribute set.
//! Finding an existing series hashes the borrowed attributes and allocates
//! nothing; only a new series is copied in. Each process may hold at most
//! `limit` series; beyond that an instrument's new attribute sets fold into
//! its one overflow series (attribute `otel.metric.overflow`, as the
//! OpenTelemetry SDKs' cardinality limit does), and every fold is counted.
use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

// hashbrown's maps hash with foldhash: std's SipHash cost more than the
// rest of recording.
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::{
    attributes::{Attrs, Instrument, OwnedAttrs},
    histogram::{DURATION_BOUNDS, Histogram, SIZE_BOUNDS},
    observe::Observation,
};
use crate::{process::ProcessInfo, spans::record::ProcessKey, stats::Stats};

/// Distinct attribute sets per process before new ones fold.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 1000;

/// How long the series of an exited process stay (so a last scrape or
/// export still has them).
const KEEP_EXITED: Duration = Duration::from_secs(300);

/// One series' aggregations.
#[derive(Clone, Debug)]
pub struct Series {
    pub instrument: Instrument,
    /// None for the overflow series.
    pub attrs: Option<OwnedAttrs>,
    pub start: SystemTime,
    pub duration: Histogram,
    pub request_size: Histogram,
    pub response_size: Histogram,
    /// What the OTLP exporter sent last, for delta temporality:
    /// (duration, request size, response size).
    pub exported: Option<Box<[Histogram; 3]>>,
}

impl Series {
    fn new(instrument: Instrument, attrs: Option<OwnedAttrs>) -> Self {
        Self {
            instrument,
            attrs,
            start: SystemTime::now(),
            duration: Histogram::new(DURATION_BOUNDS),
            request_size: Histogram::new(SIZE_BOUNDS),
            response_size: Histogram::new(SIZE_BOUNDS),
            exported: None,
        }
    }

    fn record(&mut self, obs: &Observation<'_>) {
        self.duration.record(obs.duration);
        if obs.instrument.size_names().is_some() {
            self.request_size.record(obs.request_bytes as f64);
            self.response_size.record(obs.response_bytes as f64);
        }
    }
}

/// The series of one process.
#[derive(Debug)]
pub struct ProcessSeries {
    pub process: Arc<ProcessInfo>,
    table: HashTable<Series>,
    overflow: [Option<Series>; 4],
    exited: Option<SystemTime>,
    /// The service's name as the service graph interned it, kept here so
    /// that recording finds it with the series.
    pub graph_name: Option<Arc<str>>,
}

impl ProcessSeries {
    /// Every series, the overflow ones last.
    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.table.iter().chain(self.overflow.iter().flatten())
    }

    pub fn series_mut(&mut self) -> impl Iterator<Item = &mut Series> {
        self.table
            .iter_mut()
            .chain(self.overflow.iter_mut().flatten())
    }

    /// Series held, the overflow ones not counted.
    pub fn series_count(&self) -> usize {
        self.table.len()
    }
}

#[derive(Debug)]
pub struct Store {
    limit: usize,
    hasher: DefaultHashBuilder,
    processes: HashMap<ProcessKey, ProcessSeries>,
    /// Series of processes that exited or exec'd another program, kept
    /// for [`KEEP_EXITED`].
    retired: Vec<ProcessSeries>,
    stats: Arc<Stats>,
}

impl Store {
    pub fn new(limit: usize, stats: Arc<Stats>) -> Self {
        Self {
            limit: limit.max(1),
            hasher: DefaultHashBuilder::default(),
            processes: HashMap::new(),
            retired: Vec::new(),
            stats,
        }
    }

    /// Records `obs` into its series; gives the process's slot for its
    /// service-graph name.
    pub fn record(
        &mut self,
        process: &Arc<ProcessInfo>,
        obs: &Observation<'_>,
    ) -> &mut Option<Arc<str>> {
        let entry = self
            .processes
            .entry(process.key)
            .or_insert_with(|| ProcessSeries {
                process: Arc::clone(process),
                table: HashTable::new(),
                overflow: Default::default(),
                exited: None,
                graph_name: None,
            });
        let hasher = &self.hasher;
        let hash = obs.attrs.hash_with(obs.instrument, hasher);
        let matches = |s: &Series| {
            s.instrument == obs.instrument
                && s.attrs.as_ref().map(OwnedAttrs::view) == Some(obs.attrs)
        };
        if let Some(series) = entry.table.find_mut(hash, matches) {
            series.record(obs);
        } else if entry.table.len() < self.limit {
            let mut series = Series::new(obs.instrument, Some(obs.attrs.to_owned()));
            series.record(obs);
            entry
                .table
                .insert_unique(hash, series, |s| rehash(s, hasher));
            Stats::inc(&self.stats.metrics_series_created);
        } else {
            Stats::inc(&self.stats.metrics_series_folded);
            entry.overflow[obs.instrument.index()]
                .get_or_insert_with(|| Series::new(obs.instrument, None))
                .record(obs);
        }
        &mut entry.graph_name
    }

    /// The process is gone, or is another program now (exec): its series
    /// stay a while for the last scrape and export.
    pub fn retire(&mut self, key: ProcessKey) {
        if let Some(mut p) = self.processes.remove(&key) {
            p.exited = Some(SystemTime::now());
            self.retired.push(p);
        }
    }

    /// Forgets processes retired long enough ago.
    pub fn prune(&mut self, now: SystemTime) {
        self.retired.retain(|p| {
            p.exited
                .is_none_or(|at| now.duration_since(at).unwrap_or_default() < KEEP_EXITED)
        });
    }

    pub fn processes(&self) -> impl Iterator<Item = &ProcessSeries> {
        self.processes.values().chain(self.retired.iter())
    }

    pub fn processes_mut(&mut self) -> impl Iterator<Item = &mut ProcessSeries> {
        self.processes.values_mut().chain(self.retired.iter_mut())
    }
}

fn rehash(series: &Series, hasher: &DefaultHashBuilder) -> u64 {
    let attrs = series.attrs.as_ref().map(OwnedAttrs::view);
    attrs.map_or(0, |a: Attrs<'_>| a.hash_with(series.instrument, hasher))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{metrics::attributes::ErrorType, process::info::ProcDetails};

    fn obs(route: &str, status: u16) -> Observation<'_> {
        Observation {
            instrument: Instrument::HttpServer,
            attrs: Attrs {
                method: "GET",
                status: Some(status),
                route,
                server: None,
                error: ErrorType::None,
                protocol_version: "1.1",
                scheme: "http",
                rpc_service: "",
                rpc_method: "",
                grpc_code: None,
            },
            duration: 0.02,
            request_bytes: 0,
            response_bytes: 10,
            failed: false,
        }
    }

    fn process(pid: u32) -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo::new(pid, ProcDetails::default(), "h"))
    }

    #[test]
    fn same_attributes_share_a_series() {
        let stats = Arc::new(Stats::default());
        let mut store = Store::new(10, stats.clone());
        let p = process(1);
        for _ in 0..3 {
            store.record(&p, &obs("/a", 200));
        }
        store.record(&p, &obs("/a", 404));
        store.record(&process(2), &obs("/a", 200));
        let counts: Vec<u64> = store
            .processes()
            .flat_map(|p| p.series().map(|s| s.duration.count()))
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 5);
        assert_eq!(counts.len(), 3);
        assert_eq!(
            stats
                .metrics_series_created
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn series_beyond_the_limit_fold_and_are_counted() {
        let stats = Arc::new(Stats::default());
        let mut store = Store::new(3, stats.clone());
        let p = process(1);
        let routes: Vec<String> = (0..10).map(|i| format!("/r{i}")).collect();
        for r in &routes {
            store.record(&p, &obs(r, 200));
        }
        // Known series still count after the limit is reached.
        store.record(&p, &obs("/r0", 200));
        let ps = store.processes().next().unwrap();
        assert_eq!(ps.series_count(), 3);
        let overflow: Vec<&Series> = ps.series().filter(|s| s.attrs.is_none()).collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].duration.count(), 7);
        assert_eq!(
            stats
                .metrics_series_folded
                .load(std::sync::atomic::Ordering::Relaxed),
            7
        );
        let r0 = ps
            .series()
            .find(|s| s.attrs.as_ref().is_some_and(|a| a.view().route == "/r0"))
            .unwrap();
        assert_eq!(r0.duration.count(), 2);
    }

    #[test]
    fn exited_processes_are_forgotten_later() {
        let stats = Arc::new(Stats::default());
        let mut store = Store::new(10, stats);
        let p = process(1);
        store.record(&p, &obs("/a", 200));
        store.retire(p.key);
        store.prune(SystemTime::now());
        assert_eq!(store.processes().count(), 1);
        // The same key again (an exec): a new set of series.
        store.record(&p, &obs("/a", 200));
        assert_eq!(store.processes().count(), 2);
        store.retire(p.key);
        store.prune(SystemTime::now() + KEEP_EXITED * 2);
        assert_eq!(store.processes().count(), 0);
    }
}
