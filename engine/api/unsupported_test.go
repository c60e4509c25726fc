package api

import (
	"encoding/json"
	"strings"
	"testing"

	mobycontainer "github.com/moby/moby/api/types/container"
)

// dockerRunBody is the create body the docker CLI (28.x) sends for a plain
// `docker run -it alpine sh`: defaults everywhere, which must pass.
const dockerRunBody = `{"Hostname":"","Domainname":"","User":"","AttachStdin":true,"AttachStdout":true,"AttachStderr":true,
"Tty":true,"OpenStdin":true,"StdinOnce":true,"Env":null,"Cmd":["sh"],"Image":"alpine","Volumes":{},"WorkingDir":"",
"Entrypoint":null,"OnBuild":null,"Labels":{},
"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default",
"PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"",
"VolumesFrom":null,"ConsoleSize":[50,200],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],
"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"",
"Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"",
"ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,
"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],
"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"",
"CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,
"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":[],"CpuCount":0,"CpuPercent":0,
"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},
"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"",
"DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,
"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}`

// withDefaults is dockerRunBody with the given top-level Config fields and
// HostConfig fields replaced.
func withDefaults(t *testing.T, config, hostConfig, networking string) string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal([]byte(dockerRunBody), &body); err != nil {
		t.Fatal(err)
	}
	merge := func(dst map[string]any, src string) {
		if src == "" {
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(src), &m); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for k, v := range m {
			dst[k] = v
		}
	}
	merge(body, config)
	merge(body["HostConfig"].(map[string]any), hostConfig)
	merge(body["NetworkingConfig"].(map[string]any)["EndpointsConfig"].(map[string]any), networking)
	b, _ := json.Marshal(body)
	return string(b)
}

func TestCreateRefusesWhatTheEngineDoesNotImplement(t *testing.T) {
	cases := []struct {
		config, hostConfig, networking string
		msg                            string
	}{
		{"", `{"VolumesFrom":["other"]}`, "", "--volumes-from is not supported yet by Berth (binds and named volumes work; this option arrives with later sharing work)"},
		{"", `{"VolumeDriver":"nfs"}`, "", "--volume-driver is not supported yet"},
		{"", `{"Tmpfs":{"/run":""}}`, "", "--tmpfs is not supported yet"},
		{"", `{"Privileged":true}`, "", "--privileged is not supported yet"},
		{"", `{"NetworkMode":"host"}`, "", "--network host is not supported yet"},
		{"", `{"NetworkMode":"container:web"}`, "", "--network container:NAME is not supported yet"},
		{"", `{"NetworkMode":"mynet"}`, `{"mynet":{}}`, "connecting a container to more than one network is not supported yet"},
		{"", "", `{"default":{"IPAMConfig":{"IPv6Address":"fd00::9"}}}`, "--ip6"},
		{"", `{"PidMode":"host"}`, "", "--pid is not supported yet"},
		{"", `{"IpcMode":"host"}`, "", "--ipc is not supported yet"},
		{"", `{"UTSMode":"host"}`, "", "--uts is not supported yet"},
		{"", `{"Devices":[{"PathOnHost":"/dev/fuse","PathInContainer":"/dev/fuse","CgroupPermissions":"rwm"}]}`, "", "--device is not supported yet"},
		{"", `{"DeviceRequests":[{"Count":-1,"Capabilities":[["gpu"]]}]}`, "", "--gpus is not supported yet"},
		{"", `{"CapAdd":["NET_ADMIN"]}`, "", "--cap-add is not supported yet"},
		{"", `{"CapDrop":["ALL"]}`, "", "--cap-drop is not supported yet"},
		{"", `{"SecurityOpt":["seccomp=unconfined"]}`, "", "--security-opt is not supported yet"},
		{"", `{"ShmSize":1073741824}`, "", "--shm-size is not supported yet"},
		{"", `{"Sysctls":{"net.ipv4.ip_forward":"1"}}`, "", "--sysctl is not supported yet"},
		{"", `{"GroupAdd":["audio"]}`, "", "--group-add is not supported yet"},
		{"", `{"Links":["db:db"]}`, "", "--link is not supported yet"},
		{"", `{"LogConfig":{"Type":"syslog"}}`, "", "--log-driver is not supported yet"},
		{"", `{"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}}}`, "", "--log-opt is not supported yet"},
		{"", `{"Runtime":"runc"}`, "", "--runtime is not supported yet"},
		{`{"Domainname":"example.com"}`, "", "", "--domainname is not supported yet"},
		{`{"WorkingDir":"rel/dir"}`, "", "", "the working directory 'rel/dir' is invalid, it needs to be an absolute path"},
		// Several at once are named together.
		{"", `{"Privileged":true,"CapAdd":["ALL"]}`, "", "--privileged is not supported yet by Berth (each container runs in its own VM with Berth's fixed device and security model); --cap-add"},
	}
	for _, c := range cases {
		b := newFakeBackend()
		body := withDefaults(t, c.config, c.hostConfig, c.networking)
		rec := serve(t, b, "POST", "/v1.47/containers/create", strings.NewReader(body))
		what := "create " + c.config + c.hostConfig + c.networking
		if check(t, what, rec, 400, c.msg) && len(b.containers.created) != 0 {
			t.Errorf("%s: reached the engine although refused", what)
		}
	}
}

func TestCreateWarnsForIgnoredResourceControls(t *testing.T) {
	cases := []struct {
		hostConfig string
		warnings   []string
	}{
		{"", nil},
		// What the engine does honour passes without a word.
		{`{"Memory":536870912,"NanoCpus":2000000000,"MemorySwap":536870912,"ReadonlyRootfs":true,"Init":true,"Dns":["1.1.1.1"],"ExtraHosts":["h:1.2.3.4"],"AutoRemove":true,"RestartPolicy":{"Name":""},"LogConfig":{"Type":"json-file"},"NetworkMode":"bridge","MemorySwappiness":-1,"Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}]}`, nil},
		{`{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}`, nil},
		{`{"RestartPolicy":{"Name":"unless-stopped"}}`, nil},
		{`{"CpuShares":512}`, []string{"--cpu-shares is not supported by Berth: each container runs in its own VM, sized by --cpus and --memory. The setting is discarded."}},
		{`{"PidsLimit":100,"OomKillDisable":true}`, []string{"--oom-kill-disable", "--pids-limit"}},
		{`{"CpusetCpus":"0-1","MemoryReservation":1000000,"BlkioWeight":300}`, []string{"--cpuset-cpus", "--blkio-weight", "--memory-reservation"}},
	}
	for _, c := range cases {
		b := newFakeBackend()
		rec := serve(t, b, "POST", "/containers/create", strings.NewReader(withDefaults(t, "", c.hostConfig, "")))
		if !check(t, "create "+c.hostConfig, rec, 201, "") {
			t.Logf("%s", rec.Body)
			continue
		}
		var resp mobycontainer.CreateResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Warnings == nil || len(resp.Warnings) != len(c.warnings) {
			t.Errorf("create %s: warnings %q, want %d like %q", c.hostConfig, resp.Warnings, len(c.warnings), c.warnings)
			continue
		}
		for i, w := range c.warnings {
			if !strings.HasPrefix(resp.Warnings[i], w) {
				t.Errorf("create %s: warning %d %q, want %q", c.hostConfig, i, resp.Warnings[i], w)
			}
		}
	}
}
