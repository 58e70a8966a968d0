package ckpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/codec"
	"github.com/ckptdev/ckpt/store"
)

// ManifestVersion is the newest manifest format this ckpt reads. It
// writes the oldest format that describes a checkpoint: 1, unless a state
// is compressed with s2, which format 2 adds (docs/FORMAT.md), so that a
// ckpt that reads only format 1 reads what it could before and refuses
// the rest as of a newer format. Checkpoints written by every earlier
// version are kept as fixtures in testdata and must stay readable.
const ManifestVersion = 2

// manifestVersionOf returns the format a manifest of c is written in.
func manifestVersionOf(c *Checkpoint) int {
	for _, s := range c.State {
		if s.Compression == codec.S2.String() {
			return 2
		}
	}
	return 1
}

// Checkpoint is one committed, immutable checkpoint of a job: its manifest.
type Checkpoint struct {
	Job     string    `json:"job"`
	Seq     uint64    `json:"seq"`  // 1, 2, 3, ... per job
	Time    time.Time `json:"time"` // when it was committed, UTC
	Trigger Trigger   `json:"trigger"`
	// Savepoint checkpoints are taken by hand and kept by retention until
	// deleted; Label is their optional name.
	Savepoint bool   `json:"savepoint,omitempty"`
	Label     string `json:"label,omitempty"`
	// Final marks the checkpoint that Job.Finish took: the job is done.
	Final bool `json:"final,omitempty"`
	// Token is the fencing token of the writer's lease.
	Token uint64 `json:"fencing_token"`
	// Writer is the process that committed it.
	Writer store.Owner `json:"writer"`
	// Source and Sink are positions owned by the source and the sink (an
	// input offset, an output length): opaque JSON to the engine.
	Source json.RawMessage `json:"source,omitempty"`
	Sink   json.RawMessage `json:"sink,omitempty"`
	// Records and Bytes count the job's input since it started, across
	// resumes.
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// State lists the serialized state blobs.
	State []StateRef `json:"state,omitempty"`
	// Keyed lists the job's keyed states (see Keyed): each a list of
	// immutable runs, most of them shared with earlier checkpoints.
	Keyed []KeyedRef `json:"keyed,omitempty"`
	// SizeBytes is what this checkpoint wrote to the store: its manifest
	// and the blobs no earlier kept checkpoint had. FullSizeBytes is the
	// stored size of all the state it references. Zero in checkpoints
	// written before they were recorded.
	SizeBytes     int64 `json:"size_bytes,omitempty"`
	FullSizeBytes int64 `json:"full_size_bytes,omitempty"`
	// Metadata is the user's, recorded as given.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Duration is how long taking the checkpoint took, from the flush of
	// the output to the write of its manifest (the commit point, whose own
	// time it cannot include). Zero in checkpoints written before it was
	// recorded.
	Duration time.Duration `json:"duration_ns,omitempty"`

	began time.Time     // when capture began; not recorded
	keyed []keyedFinish // keyed states captured, to finish in the commit
}

// StateRef describes one serialized state value.
type StateRef struct {
	Name        string `json:"name"`
	Codec       string `json:"codec"`
	Compression string `json:"compression"`
	RawSize     int64  `json:"raw_size"`    // bytes before compression
	StoredSize  int64  `json:"stored_size"` // bytes of blobs, headers included
	// Chunks hold the serialized bytes in order. A chunk may live in a blob
	// written by an earlier checkpoint of the job (content addressing makes
	// that safe), or inline in Data when it is small.
	Chunks []ChunkRef `json:"chunks"`
}

// ChunkRef names one chunk of state.
type ChunkRef struct {
	ID     string `json:"id"`             // hex SHA-256 of the raw bytes
	Raw    int64  `json:"raw"`            // raw length
	Stored int64  `json:"stored"`         // blob length
	Data   []byte `json:"data,omitempty"` // the blob itself, for small chunks
}

// StoredSize is the total size of the checkpoint's state in the store,
// keyed states included: what a full copy of it takes.
func (c *Checkpoint) StoredSize() int64 {
	var n int64
	for _, s := range c.State {
		n += s.StoredSize
	}
	for i := range c.Keyed {
		n += c.Keyed[i].storedSize()
	}
	return n
}

// RawSize is the total size of the checkpoint's state before compression,
// keyed states included.
func (c *Checkpoint) RawSize() int64 {
	var n int64
	for _, s := range c.State {
		n += s.RawSize
	}
	for _, k := range c.Keyed {
		for _, r := range k.Runs {
			n += r.Raw
		}
	}
	return n
}

// plainRawSize is RawSize without keyed states: the state that capture
// serializes whole, whose cost spaces automatic checkpoints out. Keyed
// states capture only their changes, at a cost that no spacing is for.
func (c *Checkpoint) plainRawSize() int64 {
	var n int64
	for _, s := range c.State {
		n += s.RawSize
	}
	return n
}

// blobIDs returns the ids of the blobs the checkpoint references in the
// store (inline chunks excluded), keyed states' runs included.
func (c *Checkpoint) blobIDs() []string {
	var ids []string
	c.blobs(func(ch ChunkRef) { ids = append(ids, ch.ID) })
	return ids
}

// blobs calls fn for every chunk the checkpoint references in the store
// (not inline), in manifest order; a chunk named twice is named twice.
func (c *Checkpoint) blobs(fn func(ChunkRef)) {
	for _, s := range c.State {
		for _, ch := range s.Chunks {
			if ch.Data == nil {
				fn(ch)
			}
		}
	}
	for _, k := range c.Keyed {
		for _, r := range k.Runs {
			for _, ch := range r.Chunks {
				fn(ch)
			}
		}
	}
}

// The store layout of a job; docs/FORMAT.md describes it.
func jobPrefix(job string) string         { return "jobs/" + job + "/" }
func checkpointsPrefix(job string) string { return jobPrefix(job) + "checkpoints/" }
func blobsPrefix(job string) string       { return jobPrefix(job) + "blobs/" }
func lockName(job string) string          { return jobPrefix(job) + "LOCK" }
func blobName(job, id string) string      { return blobsPrefix(job) + id }
func manifestName(job string, seq uint64) string {
	return fmt.Sprintf("%s%020d", checkpointsPrefix(job), seq)
}

// parseManifestName returns the sequence number of a manifest object name.
func parseManifestName(job, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, checkpointsPrefix(job))
	if !ok || len(rest) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil && seq > 0
}

// ValidJobName reports whether name can name a job: 1 to 128 characters of
// letters, digits, '.', '_' and '-', not starting with '.' or '-'. Names
// never contain separators, so a job cannot reach outside its own prefix.
func ValidJobName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidJobName)
	}
	if len(name) > 128 {
		return fmt.Errorf("%w %q: longer than 128 characters", ErrInvalidJobName, name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w %q: must start with a letter, digit or '_'", ErrInvalidJobName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q is not allowed (use letters, digits, '.', '_' and '-')", ErrInvalidJobName, name, c)
		}
	}
	return nil
}

// A manifest is a header line followed by a JSON body:
//
//	ckpt-manifest <version> <body length> <CRC-32C of body, 8 hex digits>\n
//	{...}
//
// The length catches truncation, the CRC a flipped byte; the version lets a
// reader refuse a format it does not know instead of misreading it.
const manifestMagic = "ckpt-manifest"

// maxManifest bounds what a reader accepts, so a corrupt length cannot make
// it allocate without limit.
const maxManifest = 64 << 20

func encodeManifest(c *Checkpoint) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("ckpt: encode manifest: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d %d %08x\n", manifestMagic, manifestVersionOf(c), len(body), crc32.Checksum(body, castagnoli))
	b.Write(body)
	return b.Bytes(), nil
}

// decodeManifest parses and verifies a manifest. A failure is an ErrFormat
// error for a format it does not read, otherwise a description of the
// corruption that callers wrap in a CorruptError. It never panics.
func decodeManifest(b []byte) (*Checkpoint, error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 || nl > 128 {
		return nil, errors.New("no manifest header line")
	}
	fields := strings.Fields(string(b[:nl]))
	if len(fields) < 2 || fields[0] != manifestMagic {
		return nil, errors.New("not a ckpt manifest")
	}
	version, err := strconv.Atoi(fields[1])
	if err != nil {
		return nil, fmt.Errorf("bad manifest version %q", fields[1])
	}
	if version < 1 || version > ManifestVersion {
		if version > ManifestVersion {
			return nil, fmt.Errorf("%w: manifest format %d was written by a newer ckpt; this ckpt reads format %d: upgrade ckpt to read it", ErrFormat, version, ManifestVersion)
		}
		return nil, fmt.Errorf("%w: manifest format %d is not one this ckpt knows", ErrFormat, version)
	}
	if len(fields) != 4 {
		return nil, errors.New("malformed manifest header")
	}
	length, err := strconv.Atoi(fields[2])
	if err != nil || length < 0 || length > maxManifest {
		return nil, fmt.Errorf("bad manifest length %q", fields[2])
	}
	sum, err := strconv.ParseUint(fields[3], 16, 32)
	if err != nil || len(fields[3]) != 8 {
		return nil, fmt.Errorf("bad manifest checksum %q", fields[3])
	}
	body := b[nl+1:]
	if len(body) != length {
		return nil, fmt.Errorf("manifest body is %d bytes, header says %d (truncated or appended to)", len(body), length)
	}
	if crc32.Checksum(body, castagnoli) != uint32(sum) {
		return nil, errors.New("manifest checksum mismatch")
	}
	var c Checkpoint
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("manifest body: %v", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if version < manifestVersionOf(&c) {
		return nil, fmt.Errorf("a format %d manifest names s2 compression, which format %d does not have", version, version)
	}
	return &c, nil
}

// validate checks what the JSON decoder cannot: a manifest that passes its
// checksum but names impossible things is still refused.
func (c *Checkpoint) validate() error {
	if err := ValidJobName(c.Job); err != nil {
		return err
	}
	if c.Seq == 0 {
		return errors.New("sequence number 0")
	}
	if c.Trigger == triggerNone {
		return errors.New("no trigger")
	}
	if c.Records < 0 || c.Bytes < 0 {
		return errors.New("negative counters")
	}
	for i := range c.State {
		if c.State[i].Name == "" {
			return errors.New("state without a name")
		}
		if err := c.State[i].validate(); err != nil {
			return err
		}
	}
	for i := range c.Keyed {
		if err := c.Keyed[i].validate(); err != nil {
			return err
		}
	}
	if c.SizeBytes < 0 || c.FullSizeBytes < 0 {
		return errors.New("negative sizes")
	}
	return nil
}

// validate checks a state reference the way a manifest's are checked: a
// reference that names impossible chunks (a negative or huge size, an id
// that is not a hash) is refused before anything is read or allocated.
func (s *StateRef) validate() error {
	if _, err := codec.ParseCompression(s.Compression); err != nil {
		return err
	}
	var raw, stored int64
	for _, ch := range s.Chunks {
		if !validChunkID(ch.ID) {
			return fmt.Errorf("state %q: bad chunk id %q", s.Name, ch.ID)
		}
		if ch.Raw < 0 || ch.Raw > codec.MaxBlock || ch.Stored < blobHeaderSize {
			return fmt.Errorf("state %q: chunk %s: impossible sizes", s.Name, ch.ID)
		}
		if ch.Data != nil && int64(len(ch.Data)) != ch.Stored {
			return fmt.Errorf("state %q: inline chunk %s: %d bytes, expected %d", s.Name, ch.ID, len(ch.Data), ch.Stored)
		}
		raw += ch.Raw
		stored += ch.Stored
	}
	if raw != s.RawSize || stored != s.StoredSize {
		return fmt.Errorf("state %q: sizes do not add up", s.Name)
	}
	return nil
}
