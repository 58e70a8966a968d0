package ckpt

import "fmt"

// Trigger says why a checkpoint was taken. It is recorded in every
// checkpoint.
type Trigger uint8

// The triggers.
const (
	triggerNone     Trigger = iota // no checkpoint is due; never recorded
	TriggerRecords                 // every N records
	TriggerBytes                   // every N bytes
	TriggerInterval                // every duration
	TriggerManual                  // Job.Checkpoint or Job.Savepoint
	TriggerShutdown                // SIGINT or SIGTERM
	TriggerFinal                   // Job.Finish: the job is complete
)

var triggerNames = [...]string{"none", "records", "bytes", "interval", "manual", "shutdown", "final"}

// String returns the trigger's name as recorded in checkpoints.
func (t Trigger) String() string {
	if int(t) < len(triggerNames) {
		return triggerNames[t]
	}
	return fmt.Sprintf("trigger(%d)", uint8(t))
}

// MarshalText writes the trigger's name.
func (t Trigger) MarshalText() ([]byte, error) {
	if int(t) >= len(triggerNames) || t == triggerNone {
		return nil, fmt.Errorf("ckpt: invalid trigger %d", uint8(t))
	}
	return []byte(triggerNames[t]), nil
}

// UnmarshalText reads a trigger's name.
func (t *Trigger) UnmarshalText(b []byte) error {
	for i, n := range triggerNames {
		if i > 0 && n == string(b) {
			*t = Trigger(i)
			return nil
		}
	}
	return fmt.Errorf("ckpt: unknown trigger %q", b)
}
