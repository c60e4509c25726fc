package image

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// State is where one layer of a pull stands. Its value is the status text
// dockerd writes in its JSON progress stream, so an API server can send
// string(state) as "status".
type State string

// The states of a layer, in the order a layer goes through them.
const (
	// PullingFSLayer: the layer is not stored and will be downloaded.
	PullingFSLayer State = "Pulling fs layer"
	// Waiting: the layer is queued behind other downloads.
	Waiting State = "Waiting"
	// Downloading: Current of Total bytes are in the store's ingest area.
	Downloading State = "Downloading"
	// Verifying: the download ended and its digest is being checked.
	Verifying State = "Verifying Checksum"
	// DownloadComplete: the layer is stored under its digest.
	DownloadComplete State = "Download complete"
	// AlreadyExists: the layer was stored before this pull; nothing fetched.
	AlreadyExists State = "Already exists"
	// PullComplete: the layer is done (Berth unpacks layers later, when it
	// builds a rootfs, so this follows DownloadComplete at once).
	PullComplete State = "Pull complete"
	// Retrying: the download failed with a transient error and starts
	// again after a pause; Err says why.
	Retrying State = "Retrying"
)

// Event reports progress of one layer of a pull.
type Event struct {
	// Digest is the layer's (compressed) digest.
	Digest v1.Hash
	// ID is the first 12 hex digits of Digest, the "id" dockerd uses in
	// its progress stream.
	ID string
	// State is where the layer stands.
	State State
	// Current and Total are bytes held and bytes in all (Downloading);
	// Total is also set for the other states.
	Current, Total int64
	// Err is the transient error behind a Retrying event.
	Err error
}

func newEvent(d v1.Descriptor, st State, cur int64) Event {
	return Event{Digest: d.Digest, ID: ShortID(d.Digest.Hex), State: st, Current: cur, Total: d.Size}
}
