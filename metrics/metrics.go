// Package metrics exports what ckpt jobs and asset runs do as Prometheus
// metrics, named after Flink's checkpoint metrics:
//
//	ckpt_checkpoints_completed_total{job}        checkpoints committed
//	ckpt_checkpoints_failed_total{job}           checkpoints that failed to commit
//	ckpt_checkpoint_duration_seconds{job}        histogram: from capture to commit
//	ckpt_last_checkpoint_size_bytes{job}         bytes the newest checkpoint wrote
//	ckpt_last_checkpoint_full_size_bytes{job}    stored size of its whole state
//	ckpt_last_checkpoint_timestamp_seconds{job}  when it was committed (Unix time)
//	ckpt_last_checkpoint_records{job}            records read when it was taken
//	ckpt_restore_duration_seconds{job}           histogram: reading and verifying the checkpoint resumed from
//	ckpt_records_processed_total{job}            records read by this process
//	ckpt_bytes_processed_total{job}              input bytes read by this process
//	ckpt_source_lag_records{job}                 records of a stream the job has not read yet
//	ckpt_asset_materializations_total{asset,outcome}  steps of asset runs, by outcome
//	ckpt_asset_step_duration_seconds{asset}      histogram: duration of computed steps
//
// Jobs is a ckpt.Observer: set it as a job's Config.Observer and register
// it with a prometheus.Registerer. Assets is told each step of an asset
// run (MaterializeOptions.Progress). StoreJobs reads the same "last
// checkpoint" gauges from a store at every scrape, for a process (the web
// UI) that watches jobs it does not run.
//
// The root package ckpt does not import this one: only programs that
// import metrics link Prometheus's client.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ckptdev/ckpt"
)

// DurationBuckets are the buckets of the duration histograms, in seconds:
// from a millisecond (a small checkpoint on a local disk) to ten minutes
// (a large state on remote storage).
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Jobs collects the metrics of the jobs this process runs. It implements
// ckpt.Observer and prometheus.Collector; its methods are safe for
// concurrent use.
type Jobs struct {
	completed    *prometheus.CounterVec
	failed       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	lastSize     *prometheus.GaugeVec
	lastFullSize *prometheus.GaugeVec
	lastTime     *prometheus.GaugeVec
	lastRecords  *prometheus.GaugeVec
	restore      *prometheus.HistogramVec
	records      *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	lag          *prometheus.GaugeVec

	mu   sync.Mutex
	seen map[string]*jobSeen
}

// jobSeen is what Jobs remembers of a job between events: the counters
// already reported, and the chunks of its newest checkpoint (to tell what
// the next one wrote from what it reused).
type jobSeen struct {
	records, bytes int64
	chunks         map[string]bool
}

var _ ckpt.Observer = (*Jobs)(nil)

// NewJobs returns a collector with no jobs yet.
func NewJobs() *Jobs {
	job := []string{"job"}
	return &Jobs{
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ckpt_checkpoints_completed_total",
			Help: "Checkpoints committed."}, job),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ckpt_checkpoints_failed_total",
			Help: "Checkpoints that failed to commit (the previous one stays valid)."}, job),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ckpt_checkpoint_duration_seconds",
			Help: "Time from taking a checkpoint (capturing its state) to its commit.", Buckets: DurationBuckets}, job),
		lastSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ckpt_last_checkpoint_size_bytes",
			Help: "Bytes of state the newest checkpoint wrote (chunks that earlier checkpoints had stored are not written again)."}, job),
		lastFullSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ckpt_last_checkpoint_full_size_bytes",
			Help: "Stored size of the newest checkpoint's whole state."}, job),
		lastTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ckpt_last_checkpoint_timestamp_seconds",
			Help: "When the newest checkpoint was committed, in seconds since the Unix epoch."}, job),
		lastRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ckpt_last_checkpoint_records",
			Help: "Records the job had read when its newest checkpoint was taken."}, job),
		restore: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ckpt_restore_duration_seconds",
			Help: "Time to read and verify the checkpoint a job resumed from.", Buckets: DurationBuckets}, job),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ckpt_records_processed_total",
			Help: "Records read by the jobs of this process (work redone after a resume counts again)."}, job),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ckpt_bytes_processed_total",
			Help: "Input bytes read by the jobs of this process."}, job),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ckpt_source_lag_records",
			Help: "Records of the stream a job reads that it has not read yet, as the server last said."}, job),
		seen: map[string]*jobSeen{},
	}
}

func (m *Jobs) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.completed, m.failed, m.duration, m.lastSize, m.lastFullSize, m.lastTime, m.lastRecords, m.restore, m.records, m.bytes, m.lag}
}

// Describe implements prometheus.Collector.
func (m *Jobs) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Jobs) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *Jobs) job(name string) *jobSeen {
	s := m.seen[name]
	if s == nil {
		s = &jobSeen{}
		m.seen[name] = s
		// Every series of the job exists from its first event, at zero,
		// so that rate() and alerts on failures see the job at once.
		m.completed.WithLabelValues(name)
		m.failed.WithLabelValues(name)
		m.records.WithLabelValues(name)
		m.bytes.WithLabelValues(name)
	}
	return s
}

// CheckpointCommitted implements ckpt.Observer.
func (m *Jobs) CheckpointCommitted(job string, cp *ckpt.Checkpoint, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.job(job)
	m.completed.WithLabelValues(job).Inc()
	m.duration.WithLabelValues(job).Observe(took.Seconds())
	written := int64(0)
	chunks := map[string]bool{}
	for _, st := range cp.State {
		for _, c := range st.Chunks {
			if !s.chunks[c.ID] {
				written += c.Stored
			}
			chunks[c.ID] = true
		}
	}
	s.chunks = chunks
	m.lastSize.WithLabelValues(job).Set(float64(written))
	m.lastFullSize.WithLabelValues(job).Set(float64(cp.StoredSize()))
	m.lastTime.WithLabelValues(job).Set(float64(cp.Time.UnixNano()) / 1e9)
	m.lastRecords.WithLabelValues(job).Set(float64(cp.Records))
	m.progress(job, s, cp.Records, cp.Bytes)
}

// CheckpointFailed implements ckpt.Observer.
func (m *Jobs) CheckpointFailed(job string, _ error, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.job(job)
	m.failed.WithLabelValues(job).Inc()
	m.duration.WithLabelValues(job).Observe(took.Seconds())
}

// Restored implements ckpt.Observer. The records and bytes counters count
// from the resumed checkpoint's counters on.
func (m *Jobs) Restored(job string, cp *ckpt.Checkpoint, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.job(job)
	m.restore.WithLabelValues(job).Observe(took.Seconds())
	s.records, s.bytes, s.chunks = 0, 0, nil
	if cp != nil {
		s.records, s.bytes = cp.Records, cp.Bytes
		s.chunks = map[string]bool{}
		for _, st := range cp.State {
			for _, c := range st.Chunks {
				s.chunks[c.ID] = true
			}
		}
	}
}

// Progress reports that job has read records records and bytes bytes
// since it began (the totals a job's Records and Bytes return, which a
// pipeline's progress callback receives): the processed counters move on
// between checkpoints too. Totals lower than those already reported are
// ignored.
func (m *Jobs) Progress(job string, records, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress(job, m.job(job), records, bytes)
}

// Lag reports how many records of the stream job reads it has not read
// yet (pipeline.Progress's Lag); a negative lag (a source that is not a
// stream) is not reported.
func (m *Jobs) Lag(job string, lag int64) {
	if lag >= 0 {
		m.lag.WithLabelValues(job).Set(float64(lag))
	}
}

func (m *Jobs) progress(job string, s *jobSeen, records, bytes int64) {
	if records > s.records {
		m.records.WithLabelValues(job).Add(float64(records - s.records))
		s.records = records
	}
	if bytes > s.bytes {
		m.bytes.WithLabelValues(job).Add(float64(bytes - s.bytes))
		s.bytes = bytes
	}
}

// Assets collects the outcomes and durations of the steps of asset runs.
// Its methods are safe for concurrent use.
type Assets struct {
	steps    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAssets returns a collector with no steps yet.
func NewAssets() *Assets {
	return &Assets{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ckpt_asset_materializations_total",
			Help: "Steps (asset partitions) of asset runs, by outcome: materialized, reused, fresh, failed, skipped, canceled."}, []string{"asset", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ckpt_asset_step_duration_seconds",
			Help: "Duration of the steps that computed (materialized or failed).", Buckets: DurationBuckets}, []string{"asset"}),
	}
}

// Step records one step of a run: the asset's key, its outcome (an
// asset.Outcome) and, for a step that computed, how long it took (zero
// otherwise, and then not observed).
func (m *Assets) Step(key, outcome string, took time.Duration) {
	m.steps.WithLabelValues(key, outcome).Inc()
	if took > 0 {
		m.duration.WithLabelValues(key).Observe(took.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (m *Assets) Describe(ch chan<- *prometheus.Desc) {
	m.steps.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Assets) Collect(ch chan<- prometheus.Metric) {
	m.steps.Collect(ch)
	m.duration.Collect(ch)
}

// Handler serves the metrics of g (prometheus.DefaultGatherer when nil)
// in Prometheus's exposition format, for a /metrics endpoint.
func Handler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
