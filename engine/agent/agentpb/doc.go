// Package agentpb holds the agent protocol's messages and the ttrpc
// service generated from agent.proto. Regenerate with `make generate`
// (protoc with protoc-gen-go v1.36.12 and protoc-gen-go-ttrpc v1.2.10).
package agentpb

//go:generate protoc -I . --go_out=paths=source_relative:. --go-ttrpc_out=paths=source_relative:. agent.proto

// TemplateParam is the kernel command line parameter of a guest booted
// as a fast-start template (guestinit serves before mounting the root;
// FinishRestore completes a restored one). vmm.TemplateParam is the same.
const TemplateParam = "berth.template=1"

// TemplateReady is the console line a template guest prints once it may
// be saved (its agent serves; its late modules are in).
const TemplateReady = "berth: template ready to save"
