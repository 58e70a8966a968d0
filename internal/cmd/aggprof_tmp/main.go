package main

import (
	"context"
	"os"
	"runtime/pprof"
	"time"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/aggregate"
	"github.com/ckptdev/ckpt/pipeline"
)

func main() {
	f, _ := os.Create(os.Args[3])
	pprof.StartCPUProfile(f)
	specs, _ := aggregate.ParseSpecs("count,sum:v")
	_, err := aggregate.Run(context.Background(), aggregate.Options{Input: os.Args[1], Output: os.Args[2], GroupBy: []string{"g"}, Aggs: specs,
		Pipeline: pipeline.Config{Job: "prof", Config: ckpt.Config{Store: "/tmp/aggprof/store", Restart: true, NoSignals: true, Every: ckpt.Every{Interval: every()}}}})
	pprof.StopCPUProfile()
	if err != nil {
		panic(err)
	}
}

func every() time.Duration {
	if os.Getenv("EVERY") == "0" {
		return 0
	}
	return time.Second
}
