package builder

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
)

// BaseRef is one image a Dockerfile's FROM names, as ScanBases finds it.
type BaseRef struct {
	// Ref is the image reference with the global ARGs substituted
	// ("busybox:1.36", "127.0.0.1:5000/app@sha256:…").
	Ref string
	// Platform is the FROM's --platform value, substituted; "": none.
	Platform string
	// Line is the FROM's line (1-based), for messages.
	Line int
}

// Scanner limits: a Dockerfile beyond them is left to BuildKit whole
// (it has its own limits and errors).
const (
	maxDockerfileBytes = 4 << 20
	maxBases           = 256
)

// ScanBases lists the images a Dockerfile's FROM instructions name, in
// order. It is a small scanner, not BuildKit's parser: it honours the
// escape parser directive, line continuations, comment and empty lines
// inside continued instructions, and heredocs (whose lines are not
// instructions); it substitutes the global ARGs (those before the first
// FROM, their defaults overridden by buildArgs, and BuildKit's automatic
// TARGET*/BUILD* platform ARGs from platform, "os/arch[/variant]") in
// the image and in --platform. A FROM it cannot resolve for sure (an
// unset or unknown variable, quotes, a flag other than --platform, more
// words than NAME [AS STAGE]) is left out, as are scratch and the names
// of the Dockerfile's stages: BuildKit then resolves those as it always
// does. stages are the Dockerfile's stage names (lower case).
func ScanBases(dockerfile []byte, buildArgs map[string]string, platform string) (bases []BaseRef, stages map[string]bool) {
	stages = map[string]bool{}
	if len(dockerfile) > maxDockerfileBytes {
		return nil, stages
	}
	type from struct {
		image, platform string
		line            int
	}
	var froms []from
	vars := platformArgs(platform)
	seenFrom := false
	eachInstruction(dockerfile, func(line int, word string, args string) {
		switch word {
		case "arg":
			if seenFrom {
				return
			}
			for _, a := range strings.Fields(args) {
				name, def, hasDef := strings.Cut(a, "=")
				if !validArgName.MatchString(name) {
					continue
				}
				switch v, ok := buildArgs[name]; {
				case ok:
					vars[name] = argValue{value: v, set: true}
				case hasDef && !strings.ContainsAny(def, `"'\$`):
					vars[name] = argValue{value: def, set: true}
				case hasDef:
					vars[name] = argValue{unknown: true} // a quoted or computed default
				default:
					vars[name] = argValue{} // declared, unset
				}
			}
		case "from":
			seenFrom = true
			f := strings.Fields(args)
			var plat string
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				v, ok := strings.CutPrefix(f[0], "--platform=")
				if !ok {
					plat = "\x00" // an unknown flag: leave this FROM alone
				} else {
					plat = v
				}
				f = f[1:]
			}
			switch {
			case len(f) == 3 && strings.EqualFold(f[1], "as"):
				stages[strings.ToLower(f[2])] = true
			case len(f) == 1:
			default:
				return
			}
			if plat == "\x00" || len(froms) >= maxBases {
				return
			}
			froms = append(froms, from{image: f[0], platform: plat, line: line})
		}
	})
	for _, f := range froms {
		img, ok := expand(f.image, vars)
		if !ok || img == "" || strings.EqualFold(img, "scratch") || stages[strings.ToLower(img)] {
			continue
		}
		plat := ""
		if f.platform != "" {
			if plat, ok = expand(f.platform, vars); !ok || plat == "" {
				continue
			}
		}
		bases = append(bases, BaseRef{Ref: img, Platform: plat, Line: f.line})
	}
	return bases, stages
}

var (
	validArgName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// directiveRE is a parser directive line: "# key=value".
	directiveRE = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`)
	// heredocRE finds a heredoc's start in an instruction: <<WORD,
	// <<-WORD, <<"WORD", <<'WORD'.
	heredocRE = regexp.MustCompile(`<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)(["']?)`)
)

// eachInstruction calls fn with each instruction of the Dockerfile: its
// first line, its keyword in lower case and the rest, continuation
// lines joined.
func eachInstruction(dockerfile []byte, fn func(line int, word, args string)) {
	escape := byte('\\')
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	sc.Buffer(make([]byte, 64<<10), maxDockerfileBytes)
	n := 0
	directives := true
	var cur strings.Builder
	start := 0
	type heredoc struct {
		word string
		trim bool
	}
	var pending []heredoc
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), "\r")
		if len(pending) > 0 { // a heredoc's body: not instructions
			l := raw
			if pending[0].trim {
				l = strings.TrimLeft(l, "\t")
			}
			if l == pending[0].word {
				pending = pending[1:]
			}
			continue
		}
		t := strings.TrimSpace(raw)
		if directives {
			if m := directiveRE.FindStringSubmatch(t); m != nil {
				if strings.EqualFold(m[1], "escape") && (m[2] == "`" || m[2] == `\`) {
					escape = m[2][0]
				}
				continue
			}
			directives = false
		}
		if t == "" || strings.HasPrefix(t, "#") {
			continue // also inside a continued instruction, as BuildKit does
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(t, string(escape)) {
			cur.WriteString(strings.TrimSuffix(t, string(escape)))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(t)
		instr := cur.String()
		cur.Reset()
		word, args, _ := strings.Cut(strings.TrimSpace(instr), " ")
		word = strings.ToLower(word)
		switch word {
		case "run", "copy", "add":
			for _, m := range heredocRE.FindAllStringSubmatch(args, -1) {
				if m[2] == m[4] {
					pending = append(pending, heredoc{word: m[3], trim: m[1] == "-"})
				}
			}
		}
		fn(start, word, strings.TrimSpace(args))
	}
	if cur.Len() > 0 {
		word, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		fn(start, strings.ToLower(word), strings.TrimSpace(args))
	}
}

// argValue is a global ARG's value as ScanBases knows it.
type argValue struct {
	value string
	// set: it has a value (a default or a build-arg); unknown: it has
	// one the scanner does not work out (quotes, other variables).
	set, unknown bool
}

// platformArgs are BuildKit's automatic platform ARGs for a build whose
// target platform is platform (empty: the builder's own) on a builder
// of the host's arch.
func platformArgs(platform string) map[string]argValue {
	build := defaultPlatform()
	target := build
	if p, ok := parsePlatform(platform); ok {
		target = p
	}
	vars := map[string]argValue{}
	set := func(prefix string, p platformSpec) {
		for k, v := range map[string]string{"PLATFORM": p.String(), "OS": p.OS, "ARCH": p.Arch, "VARIANT": p.Variant} {
			vars[prefix+k] = argValue{value: v, set: true}
		}
	}
	set("BUILD", build)
	set("TARGET", target)
	return vars
}

// expand substitutes $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word}
// from vars in s; false when s holds anything else (quotes, escapes,
// nested substitutions) or a variable whose value is not known for sure
// (unset, or not worked out): BuildKit then has the last word.
func expand(s string, vars map[string]argValue) (string, bool) {
	if strings.ContainsAny(s, "\"'\\`") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		var name, op, word string
		if s[i] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", false
			}
			body := s[i+1 : i+end]
			i += end + 1
			name = body
			if j := strings.Index(body, ":"); j >= 0 {
				if len(body) < j+2 {
					return "", false
				}
				name, op, word = body[:j], body[j:j+2], body[j+2:]
				if (op != ":-" && op != ":+") || strings.ContainsAny(word, "${}") {
					return "", false
				}
			}
		} else {
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name = s[i:j]
			i = j
		}
		if !validArgName.MatchString(name) {
			return "", false
		}
		v := vars[name] // undeclared: unset, as in BuildKit
		if v.unknown {
			return "", false
		}
		switch {
		case op == ":-" && v.set && v.value != "":
			b.WriteString(v.value)
		case op == ":-":
			b.WriteString(word)
		case op == ":+" && v.set && v.value != "":
			b.WriteString(word)
		case op == ":+":
		case !v.set:
			return "", false
		default:
			b.WriteString(v.value)
		}
	}
	return b.String(), true
}
