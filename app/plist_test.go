package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// readPlist parses a property list's top-level dict into key → value,
// where a value is the element name for <true/>/<false/> and the text for
// <string>. It fails on anything that is not well-formed plist XML.
func readPlist(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	dec.Strict = true
	out := map[string]string{}
	var stack []string
	var key string
	var text strings.Builder
	sawPlist := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v", path, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			stack = append(stack, el.Name.Local)
			text.Reset()
			if el.Name.Local == "plist" {
				sawPlist = true
			}
		case xml.CharData:
			text.Write(el)
		case xml.EndElement:
			name := el.Name.Local
			stack = stack[:len(stack)-1]
			if len(stack) != 2 || stack[1] != "dict" { // only the top-level dict's children
				continue
			}
			switch name {
			case "key":
				if key != "" {
					t.Fatalf("%s: key %q has no value", path, key)
				}
				key = text.String()
			case "string", "true", "false", "integer":
				if key == "" {
					t.Fatalf("%s: value <%s> without a key", path, name)
				}
				if name == "string" || name == "integer" {
					out[key] = text.String()
				} else {
					out[key] = name
				}
				key = ""
			default:
				t.Fatalf("%s: unexpected <%s> in top-level dict", path, name)
			}
		}
	}
	if !sawPlist {
		t.Fatalf("%s: no <plist> root", path)
	}
	return out
}

func TestInfoPlist(t *testing.T) {
	p := readPlist(t, "../Info.plist")
	want := map[string]string{
		"LSUIElement":            "true",
		"CFBundleExecutable":     "berth",
		"CFBundleIdentifier":     "dev.berthvm.berth",
		"CFBundlePackageType":    "APPL",
		"LSMinimumSystemVersion": "13.0",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("Info.plist %s = %q, want %q", k, p[k], v)
		}
	}
}

func TestEntitlementsPlist(t *testing.T) {
	p := readPlist(t, "../entitlements.plist")
	if p["com.apple.security.virtualization"] != "true" {
		t.Errorf("entitlements.plist lacks com.apple.security.virtualization = true: %v", p)
	}
	// Nothing broader than needed: the virtualization entitlement alone.
	if len(p) != 1 {
		t.Errorf("entitlements.plist grants %d entitlements, want only virtualization: %v", len(p), fmt.Sprint(p))
	}
}
