// Package types holds the wire types of Berth's own API endpoints (those
// under /berth/), imported by the server (engine/api), the engine that
// fills them and every client. It is to Berth's extensions what
// github.com/moby/moby/api/types is to the Docker Engine API: data only,
// no behaviour, no dependencies beyond the standard library.
package types

import "time"

// Status is the answer to GET /berth/status: what `berth system status`
// shows.
type Status struct {
	Version       string    `json:"version"`
	Commit        string    `json:"commit,omitempty"`
	APIVersion    string    `json:"apiVersion"`
	MinAPIVersion string    `json:"minApiVersion"`
	GoVersion     string    `json:"goVersion"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	PID           int       `json:"pid"`
	StartedAt     time.Time `json:"startedAt"`
	Home          string    `json:"home"`
	Socket        string    `json:"socket"`
	// Backend names the VM backend and its accelerator ("qemu (kvm)",
	// "qemu (tcg)", "vz").
	Backend string `json:"backend"`
	// Kernel is the guest kernel the engine would boot.
	Kernel KernelInfo `json:"kernel"`
	// Setup is the guest kernel's preparation while it downloads or
	// after it failed ("Setting up Berth… 43 %"); "" otherwise.
	Setup string `json:"setup,omitempty"`
	// Containers and Images count what the engine holds.
	Containers        int `json:"containers"`
	ContainersRunning int `json:"containersRunning"`
	Images            int `json:"images"`
	// NetworkMode is the containers' networking: "user" (Berth's
	// rootless user-space networks) or "nat" (the hypervisor's own NAT,
	// one per VM); NetworkReason says why that mode.
	NetworkMode   string `json:"networkMode,omitempty"`
	NetworkReason string `json:"networkReason,omitempty"`
	// FastStart is whether containers' VMs are restored from saved
	// templates, and the templates (docs/fast-start.md).
	FastStart FastStartStatus `json:"fastStart"`
}

// FastStartStatus is the engine's fast start: on or off, and the VM
// templates it keeps in its home.
type FastStartStatus struct {
	Enabled bool `json:"enabled"`
	// Dir is where the templates are kept (shared by the user's
	// engines).
	Dir       string           `json:"dir,omitempty"`
	Templates []TemplateStatus `json:"templates,omitempty"`
	// Building counts the templates being built now.
	Building int `json:"building,omitempty"`
	// Failed is why the last template build that failed did, since the
	// engine started ("" when none did).
	Failed string `json:"failed,omitempty"`
	// Spares are the VMs restored ahead of need, one at most per
	// template (a container start claims one instead of restoring).
	Spares []SpareStatus `json:"spares,omitempty"`
	// SparesOff says why the engine keeps no spare VMs ("" when it
	// does).
	SparesOff string `json:"sparesOff,omitempty"`
}

// SpareStatus is one VM restored from a template ahead of need.
type SpareStatus struct {
	// Template is the key of the template it was restored from.
	Template string `json:"template"`
	// State is "waiting" (for the engine to be idle), "restoring" or
	// "ready".
	State string `json:"state"`
	// Since is when it entered that state.
	Since time.Time `json:"since"`
	// Pid is its hypervisor's process (0 before it runs, or when the
	// VM runs in the engine's process).
	Pid int `json:"pid,omitempty"`
}

// TemplateStatus is one saved VM template.
type TemplateStatus struct {
	// Key names it: a hash of the kernel, initramfs and VM layout.
	Key  string `json:"key"`
	Size int64  `json:"size"`
	// LastUsed is when a VM was last restored from it (or it was
	// saved).
	LastUsed time.Time `json:"lastUsed"`
}

// KernelInfo describes the guest kernel the engine boots: the answer to
// GET and PUT /berth/kernel.
type KernelInfo struct {
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"`
	Arch    string `json:"arch,omitempty"`
	Format  string `json:"format,omitempty"`
	// Source says where it was found: "$BERTH_KERNEL", "kernel.json",
	// "kernel cache", "/boot" or "pinned default".
	Source string `json:"source,omitempty"`
	// Missing lists the guest features this kernel lacks ("9P_FS: folder
	// sharing ...").
	Missing []string `json:"missing,omitempty"`
	// Error says why there is no usable kernel, and what to do.
	Error string `json:"error,omitempty"`
}

// KernelChoice is the body of PUT /berth/kernel: a kernel file or
// unpacked kernel package directory (Path), or a kernel .deb to fetch
// (URL with its SHA256).
type KernelChoice struct {
	Path   string `json:"path,omitempty"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// UnpackRequest is the body of POST /berth/images/unpack.
type UnpackRequest struct {
	Image  string `json:"image"`
	Output string `json:"output"`
	// Size in bytes; 0: content plus free space.
	Size int64 `json:"size,omitempty"`
}

// TerminalRequest is the body of POST /berth/containers/{id}/terminals
// (docs/terminal.md); every field is optional. Cmd empty runs the
// image's /bin/bash, else /bin/sh; User and WorkDir are as docker exec
// takes them; a Detach session's shell outlives its window.
type TerminalRequest struct {
	Cmd     []string `json:"cmd,omitempty"`
	User    string   `json:"user,omitempty"`
	WorkDir string   `json:"workdir,omitempty"`
	Detach  bool     `json:"detach,omitempty"`
}

// Window is the answer to POST /berth/ui: the Berth window's URL, whose
// fragment holds a one-use sign-in token (docs/berth-window.md).
type Window struct {
	URL string `json:"url"`
}

// Terminal is the answer to POST /berth/containers/{id}/terminals: the
// session's ID and the page's URL, whose fragment holds the one-use token.
type Terminal struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// Share is a host folder shared into a container at run time (GET and
// POST /berth/containers/{id}/shares, docs/sharing.md). In a POST, Target
// empty means /mnt/<folder name> (de-duplicated with -2, -3...).
type Share struct {
	// Source is the host folder (absolute; symlinks resolved in answers).
	Source string `json:"source"`
	// Target is the path inside the container.
	Target   string `json:"target,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// BuilderStatus is the answer to GET /berth/builder: the image builder
// (BuildKit in its own micro-VM), as `berth builder status` shows it.
type BuilderStatus struct {
	// Running is true while the builder VM is up and BuildKit serves.
	Running bool `json:"running"`
	// Since is when it started serving.
	Since time.Time `json:"since,omitzero"`
	// Socket is the host's BuildKit socket (buildctl --addr unix://…,
	// docker buildx create --driver remote unix://…).
	Socket string `json:"socket"`
	// CacheDisk is the build cache's disk; CacheBytes what it takes on
	// the host (it is sparse), CacheSize its size.
	CacheDisk  string `json:"cacheDisk"`
	CacheBytes int64  `json:"cacheBytes"`
	CacheSize  int64  `json:"cacheSize"`
	// Connections are the BuildKit clients connected now.
	Connections int `json:"connections"`
	// IdleTimeout is how long the builder stays up unused (0: forever).
	IdleTimeout time.Duration `json:"idleTimeout"`
	// Log is BuildKit's log.
	Log string `json:"log"`
	// Backend is the VM's backend while running ("qemu (kvm)").
	Backend string `json:"backend,omitempty"`
	// LastError is why the last start failed, until one succeeds.
	LastError string `json:"lastError,omitempty"`
}

// BuilderPrune is the answer to POST /berth/builder/prune.
type BuilderPrune struct {
	// Report is BuildKit's account of what was removed.
	Report string `json:"report"`
}

// BuildOptions are a Dockerfile build's options: POST /build's query
// (`docker build`'s and `berth build`'s flags), as the builder takes
// them.
type BuildOptions struct {
	// Dockerfile is the Dockerfile's path inside the context; empty:
	// "Dockerfile".
	Dockerfile string
	// BuildArgs are the Dockerfile's ARG values (--build-arg).
	BuildArgs map[string]string
	// Labels are added to the image's config (--label).
	Labels map[string]string
	// Target is the stage to build; empty: the last.
	Target string
	// Platform is the platform to build for ("linux/arm64"); empty: the
	// builder's.
	Platform string
	// NoCache builds every step afresh.
	NoCache bool
	// Pull resolves base images from their registry even when the store
	// has them.
	Pull bool
}
