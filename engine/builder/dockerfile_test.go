package builder

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestScanBases: the FROM images of Dockerfiles, with continuations,
// comments, directives, heredocs, --platform, stages, scratch and global
// ARGs; what the scanner cannot work out for sure is left out; hostile
// input neither panics nor yields what is not a FROM.
func TestScanBases(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	tests := []struct {
		name      string
		df        string
		args      map[string]string
		platform  string
		want      []string // "REF" or "REF@PLATFORM" (line numbers: wantLines)
		wantLines []int
	}{
		{name: "plain", df: "FROM busybox\nRUN echo\n", want: []string{"busybox"}, wantLines: []int{1}},
		{name: "keyword case and spacing", df: "  from   busybox:1.36   \n", want: []string{"busybox:1.36"}},
		{name: "scratch", df: "FROM scratch\nFROM SCRATCH\n"},
		{name: "stage", df: "FROM golang:1.22 AS build\nRUN go build\nFROM build\nFROM Build AS final\nFROM debian\n",
			want: []string{"golang:1.22", "debian"}, wantLines: []int{1, 5}},
		{name: "as in lower case", df: "FROM alpine as base\nFROM base\n", want: []string{"alpine"}},
		{name: "stage shadowing an image", df: "FROM busybox AS alpine\nFROM alpine\n", want: []string{"busybox"}},
		{name: "platform flag", df: "FROM --platform=linux/arm64 busybox\n", want: []string{"busybox@linux/arm64"}},
		{name: "platform arg", df: "FROM --platform=$BUILDPLATFORM busybox AS b\nFROM --platform=${TARGETPLATFORM} alpine\n",
			platform: "linux/arm64", want: []string{"busybox@" + host, "alpine@linux/arm64"}},
		{name: "unknown flag", df: "FROM --foo=bar busybox\n"},
		{name: "platform with space form", df: "FROM --platform linux/amd64 busybox\n"},
		{name: "extra words", df: "FROM busybox AS a b\nFROM busybox extra\n"},
		{name: "empty from", df: "FROM\nFROM   \n"},
		{name: "continuation", df: "FROM \\\n  busybox:1 \\\n  AS x\nRUN echo\n", want: []string{"busybox:1"}, wantLines: []int{1}},
		{name: "comments inside continuation", df: "FROM \\\n# a comment\n\n  busybox\n", want: []string{"busybox"}},
		{name: "comment lines", df: "# FROM evil\n  # FROM evil2\nFROM good\n", want: []string{"good"}, wantLines: []int{3}},
		{name: "escape directive", df: "# escape=`\nFROM `\n  busybox\nRUN dir c:\\\n", want: []string{"busybox"}},
		{name: "syntax directive", df: "# syntax=docker/dockerfile:1\nFROM busybox\n", want: []string{"busybox"}},
		{name: "directive after instruction is a comment", df: "FROM a\n# escape=`\nFROM b `\n", want: []string{"a"}},
		{name: "heredoc", df: "FROM a\nRUN <<EOF\nFROM evil\nEOF\nFROM b\n", want: []string{"a", "b"}, wantLines: []int{1, 5}},
		{name: "heredoc dash and quotes", df: "FROM a\nCOPY <<-\"END\" /x\n\tFROM evil\n\tEND\nFROM b\n", want: []string{"a", "b"}},
		{name: "two heredocs", df: "FROM a\nRUN <<A cat - <<B\nFROM evil1\nA\nFROM evil2\nB\nFROM c\n", want: []string{"a", "c"}},
		{name: "unterminated heredoc", df: "FROM a\nRUN <<EOF\nFROM evil\n", want: []string{"a"}},
		{name: "global arg default", df: "ARG TAG=1.36\nFROM busybox:${TAG}\n", want: []string{"busybox:1.36"}},
		{name: "global arg build-arg", df: "ARG TAG=1.36\nARG IMG\nFROM $IMG:$TAG\n", args: map[string]string{"TAG": "2", "IMG": "alpine"}, want: []string{"alpine:2"}},
		{name: "build-arg without ARG", df: "FROM $IMG\n", args: map[string]string{"IMG": "alpine"}},
		{name: "unset arg", df: "ARG IMG\nFROM $IMG\nFROM busybox$SUFFIX\n"},
		{name: "default forms", df: "ARG A\nARG B=b\nFROM ${A:-x}${B:-y}\nFROM img${B:+-set}${A:+-no}\nFROM ${C:-undeclared}\n",
			want: []string{"xb", "img-set", "undeclared"}},
		{name: "arg in a stage is not global", df: "FROM a\nARG T=2\nFROM b:$T\n", want: []string{"a"}},
		{name: "several args on a line", df: "ARG A=alpine B=3.20\nFROM $A:$B\n", want: []string{"alpine:3.20"}},
		{name: "quoted default", df: "ARG A=\"alpine\"\nFROM $A\n"},
		{name: "computed default", df: "ARG A=x\nARG B=${A}\nFROM $B\n"},
		{name: "nested default", df: "FROM ${A:-${B}}\n"},
		{name: "other operators", df: "FROM ${A?x}\nFROM ${A#x}\nFROM ${A:?x}\n"},
		{name: "quotes in from", df: "FROM \"busybox\"\nFROM 'busybox'\nFROM busy\\box\n"},
		{name: "dollar at the end", df: "FROM busybox$\nFROM busybox${\nFROM ${}\nFROM ${A\n"},
		{name: "bad arg names", df: "ARG 1A=x\nARG A-B=y\nFROM $1A\n"},
		{name: "crlf", df: "FROM busybox\r\nRUN x\r\n", want: []string{"busybox"}},
		{name: "trailing continuation at eof", df: "FROM busybox \\", want: []string{"busybox"}},
		{name: "long line", df: "FROM " + strings.Repeat("a", 200000) + "\n", want: []string{strings.Repeat("a", 200000)}},
		{name: "binary", df: "\x00\xff\xfeFROM\x00busybox\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bases, _ := ScanBases([]byte(tt.df), tt.args, tt.platform)
			var got []string
			for _, b := range bases {
				s := b.Ref
				if b.Platform != "" {
					s += "@" + b.Platform
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ScanBases(%q) = %q, want %q", trim(tt.df), got, tt.want)
			}
			for i, l := range tt.wantLines {
				if i < len(bases) && bases[i].Line != l {
					t.Errorf("base %d on line %d, want %d", i, bases[i].Line, l)
				}
			}
		})
	}

	// Many FROMs: at most maxBases; an oversized Dockerfile: nothing.
	many := strings.Repeat("FROM busybox\n", 1000)
	if bases, _ := ScanBases([]byte(many), nil, ""); len(bases) != maxBases {
		t.Errorf("1000 FROMs: %d bases, want %d", len(bases), maxBases)
	}
	if bases, _ := ScanBases(make([]byte, maxDockerfileBytes+1), nil, ""); bases != nil {
		t.Errorf("an oversized Dockerfile: %v", bases)
	}
	// A line over the scanner's buffer stops the scan without a panic.
	huge := []byte("FROM a\nRUN " + strings.Repeat("x", maxDockerfileBytes-20) + "\nFROM b\n")
	ScanBases(huge, nil, "")
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// TestContextName: the names BuildKit's dockerfile frontend looks named
// contexts up by (dockerui.NamedContext: normalized, familiar, without
// :latest).
func TestContextName(t *testing.T) {
	for ref, want := range map[string]string{
		"busybox":                                     "busybox",
		"busybox:latest":                              "busybox",
		"busybox:1.36":                                "busybox:1.36",
		"library/busybox":                             "busybox",
		"docker.io/library/busybox:latest":            "busybox",
		"index.docker.io/library/busybox":             "busybox",
		"docker.io/user/app:2":                        "user/app:2",
		"user/app":                                    "user/app",
		"127.0.0.1:5000/busybox:1":                    "127.0.0.1:5000/busybox:1",
		"localhost/app":                               "localhost/app",
		"ghcr.io/o/r:latest":                          "ghcr.io/o/r",
		"busybox@sha256:" + strings.Repeat("a", 64):   "busybox@sha256:" + strings.Repeat("a", 64),
		"busybox:1@sha256:" + strings.Repeat("a", 64): "busybox:1@sha256:" + strings.Repeat("a", 64),
	} {
		if got, ok := contextName(ref); !ok || got != want {
			t.Errorf("contextName(%s) = %q, %v; want %q", ref, got, ok, want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a//b", "../x", "busybox:", "a b"} {
		if got, ok := contextName(bad); ok {
			t.Errorf("contextName(%q) = %q; want it refused", bad, got)
		}
	}
}

// TestParsePlatform: os/arch[/variant] normalized as BuildKit's
// platforms package does for the key of a named context.
func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "linux/x86_64": "linux/amd64", "linux/amd64/v1": "linux/amd64",
		"linux/arm64/v8": "linux/arm64", "linux/aarch64": "linux/arm64", "linux/arm/v7": "linux/arm/v7", "arm64": "linux/arm64",
	} {
		if p, ok := parsePlatform(in); !ok || p.String() != want {
			t.Errorf("parsePlatform(%s) = %s, %v; want %s", in, p, ok, want)
		}
	}
	for _, bad := range []string{"", "linux/", "/amd64", "a/b/c/d", "linux/am d64", "linux/$ARCH"} {
		if p, ok := parsePlatform(bad); ok {
			t.Errorf("parsePlatform(%q) = %s; want it refused", bad, p)
		}
	}
}
