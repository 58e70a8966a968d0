package main

import (
	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/stream"
	"github.com/ckptdev/ckpt/stream/natsstream"
)

// defaultStreamEvery is the records trigger of a job reading a stream
// when --every is not given: with the interval's second, a backlog read
// at full speed is checkpointed every so many messages, an idle stream
// every second after its last message.
const defaultStreamEvery = 100_000

// until reads --until.
func (f *pipelineFlags) parseUntil() (stream.Until, error) {
	u, err := stream.ParseUntil(f.until)
	if err != nil {
		return u, usageErrorf("--until: %v", err)
	}
	return u, nil
}

// streamDefaults sets the triggers of a job reading a stream that the
// flags leave at their defaults.
func streamDefaults(cmd *cobra.Command, cfg *pipeline.Config) {
	if !cmd.Flags().Changed("every") {
		cfg.Every.Records = defaultStreamEvery
	}
}

// streamTarget is a stream output: the job is named after the stream and
// subject, checkpoints go by default to .ckpt in the working directory,
// and the dead-letter file is named after the stream there.
func streamTarget(verb, output string, pf *pipelineFlags) (target, error) {
	a, err := natsstream.ParseAddress(output)
	if err != nil {
		return target{}, usageErrorf("output: %v", err)
	}
	id := "nats:" + a.Stream
	for _, s := range a.Subjects {
		id += ":" + s
	}
	if a.Prefix != "" {
		id += ":prefix=" + a.Prefix
	}
	if pf.store == "" {
		pf.store = ckpt.DefaultStore
	}
	return target{verb: verb, output: a.Stream, id: id, display: a.Display}, nil
}
