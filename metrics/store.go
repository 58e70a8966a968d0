package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// StoreJobs is a prometheus.Collector that reads, at every scrape, the
// newest checkpoint of every job in a store and reports the
// ckpt_last_checkpoint_* gauges of Jobs, plus the number of checkpoints
// kept: what a process that watches jobs it does not run (the web UI) can
// know. Only manifests are read.
type StoreJobs struct {
	st      store.Store
	timeout time.Duration
	log     *slog.Logger

	size, fullSize, time, records, kept, up *prometheus.Desc
}

// NewStoreJobs returns a collector over st. A scrape gives up reading the
// store after timeout (zero: 10s); log (nil: slog.Default()) receives the
// errors, and ckpt_store_up says whether the last scrape could read it.
func NewStoreJobs(st store.Store, timeout time.Duration, log *slog.Logger) *StoreJobs {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	job := []string{"job"}
	return &StoreJobs{
		st: st, timeout: timeout, log: log,
		size:     prometheus.NewDesc("ckpt_last_checkpoint_size_bytes", "Bytes of state the newest checkpoint references (its full size; the store does not say what it reused).", job, nil),
		fullSize: prometheus.NewDesc("ckpt_last_checkpoint_full_size_bytes", "Stored size of the newest checkpoint's whole state.", job, nil),
		time:     prometheus.NewDesc("ckpt_last_checkpoint_timestamp_seconds", "When the newest checkpoint was committed, in seconds since the Unix epoch.", job, nil),
		records:  prometheus.NewDesc("ckpt_last_checkpoint_records", "Records the job had read when its newest checkpoint was taken.", job, nil),
		kept:     prometheus.NewDesc("ckpt_checkpoints_kept", "Checkpoints the store keeps for the job.", job, nil),
		up:       prometheus.NewDesc("ckpt_store_up", "1 if the last scrape could read the store, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StoreJobs) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.size, c.fullSize, c.time, c.records, c.kept, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StoreJobs) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	up := 1.0
	defer func() { ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up) }()
	jobs, err := ckpt.Jobs(ctx, c.st)
	if err != nil {
		c.log.Warn("metrics: cannot list the store's jobs", "err", err)
		up = 0
		return
	}
	for _, job := range jobs {
		entries, err := ckpt.List(ctx, c.st, job)
		if err != nil {
			c.log.Warn("metrics: cannot list a job's checkpoints", "job", job, "err", err)
			up = 0
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.kept, prometheus.GaugeValue, float64(len(entries)), job)
		var cp *ckpt.Checkpoint
		for i := len(entries) - 1; i >= 0 && cp == nil; i-- {
			cp = entries[i].Checkpoint
		}
		if cp == nil {
			continue
		}
		full := float64(cp.StoredSize())
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, full, job)
		ch <- prometheus.MustNewConstMetric(c.fullSize, prometheus.GaugeValue, full, job)
		ch <- prometheus.MustNewConstMetric(c.time, prometheus.GaugeValue, float64(cp.Time.UnixNano())/1e9, job)
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(cp.Records), job)
	}
}
