// Package agentpb holds the agent protocol's messages and the ttrpc
// service generated from agent.proto. Regenerate with `make generate`
// (protoc with protoc-gen-go v1.36.12 and protoc-gen-go-ttrpc v1.2.10).
package agentpb

//go:generate protoc -I . --go_out=paths=source_relative:. --go-ttrpc_out=paths=source_relative:. agent.proto
