package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/berthvm/berth/app/internal/human"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyimage "github.com/moby/moby/api/types/image"
)

// Docker's --format of ps and images: "" or "table" is the command's own
// table, "json" one JSON object per row, "table TEMPLATE" a table of the
// template's fields under their docker headers, anything else a Go
// template per row. A row is the map of docker's field names (.ID,
// .Names, .Repository …) to their text; a field the command does not have
// is an error, not an empty column.

// isDefaultFormat reports whether format asks for the command's own table.
func isDefaultFormat(format string) bool {
	return format == "" || format == "table"
}

// printFormat prints rows with a json, table or template --format.
func printFormat(out io.Writer, format string, rows []map[string]string, headers map[string]string) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	text, table := strings.CutPrefix(format, "table ")
	if !table {
		text = format
	}
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	t, err := template.New("format").Funcs(formatFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return fmt.Errorf("invalid --format %q: %w", format, err)
	}
	var w io.Writer = out
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	if table {
		w = tw
		if err := t.Execute(w, headers); err != nil {
			return fmt.Errorf("--format %q: %w", format, err)
		}
		fmt.Fprintln(w)
	}
	for _, r := range rows {
		if err := t.Execute(w, r); err != nil {
			return fmt.Errorf("--format %q: %w", format, err)
		}
		fmt.Fprintln(w)
	}
	return tw.Flush()
}

// formatFuncs are the template functions docker's --format offers.
var formatFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"println": fmt.Sprintln,
}

// containerHeaders are docker ps's column headers.
var containerHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
	"Names": "NAMES", "Labels": "LABELS", "Networks": "NETWORKS", "IP": "IP",
}

// containerRow is one container as docker ps's --format sees it.
func containerRow(s mobycontainer.Summary, noTrunc bool) map[string]string {
	cmdline := s.Command
	if !noTrunc && len(cmdline) > 20 {
		cmdline = cmdline[:19] + "…"
	}
	var networks []string
	ip := ""
	if s.NetworkSettings != nil {
		networks = slices.Sorted(maps.Keys(s.NetworkSettings.Networks))
		for _, n := range networks {
			if ep := s.NetworkSettings.Networks[n]; ep != nil && ep.IPAddress.IsValid() {
				ip = ep.IPAddress.String()
			}
		}
	}
	var names []string
	for _, n := range s.Names {
		names = append(names, strings.TrimPrefix(n, "/"))
	}
	return map[string]string{
		"ID": trunc(s.ID, !noTrunc), "Image": s.Image, "Command": fmt.Sprintf("%q", cmdline),
		"CreatedAt": time.Unix(s.Created, 0).String(), "RunningFor": human.Ago(time.Unix(s.Created, 0), time.Now()),
		"Ports": formatPorts(s.Ports), "State": string(s.State), "Status": s.Status, "Names": strings.Join(names, ","),
		"Labels": joinLabels(s.Labels), "Networks": strings.Join(networks, ","), "IP": ip,
	}
}

// formatPorts is docker ps's PORTS column: 127.0.0.1:8080->80/tcp, ...
func formatPorts(ports []mobycontainer.PortSummary) string {
	var out []string
	for _, p := range ports {
		if p.PublicPort == 0 {
			out = append(out, fmt.Sprintf("%d/%s", p.PrivatePort, p.Type))
			continue
		}
		out = append(out, fmt.Sprintf("%s->%d/%s", netip.AddrPortFrom(p.IP, p.PublicPort), p.PrivatePort, p.Type))
	}
	return strings.Join(out, ", ")
}

// imageHeaders are docker images's column headers.
var imageHeaders = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Labels": "LABELS",
}

// imageRows are an image's rows in docker images: one per tag.
func imageRows(im mobyimage.Summary, noTrunc bool) []map[string]string {
	id := human.ShortID(im.ID)
	if noTrunc {
		id = im.ID
	}
	tags := im.RepoTags
	if len(tags) == 0 {
		tags = []string{"<none>:<none>"}
	}
	var rows []map[string]string
	for _, t := range tags {
		i := strings.LastIndex(t, ":")
		rows = append(rows, map[string]string{
			"ID": id, "Repository": t[:i], "Tag": t[i+1:], "Digest": repoDigest(im.RepoDigests, t[:i]),
			"CreatedSince": human.Ago(time.Unix(im.Created, 0), time.Now()), "CreatedAt": time.Unix(im.Created, 0).String(),
			"Size": human.Bytes(im.Size), "Labels": joinLabels(im.Labels),
		})
	}
	return rows
}

// repoDigest is the digest of repo among an image's repo@digest
// references, or "<none>".
func repoDigest(repoDigests []string, repo string) string {
	for _, rd := range repoDigests {
		if r, d, ok := strings.Cut(rd, "@"); ok && r == repo {
			return d
		}
	}
	return "<none>"
}

// joinLabels is docker's label column: k=v pairs, sorted, comma-separated.
func joinLabels(labels map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		kv = append(kv, k+"="+labels[k])
	}
	return strings.Join(kv, ",")
}
