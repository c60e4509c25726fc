package image

import "testing"

func TestRegistryHost(t *testing.T) {
	for in, want := range map[string]string{
		"https://index.docker.io/v1/": "docker.io",
		"":                            "docker.io",
		"registry-1.docker.io":        "docker.io",
		"localhost:5000":              "localhost:5000",
		"http://127.0.0.1:5000/v2/":   "127.0.0.1:5000",
		"ghcr.io":                     "ghcr.io",
	} {
		if got := registryHost(in); got != want {
			t.Errorf("registryHost(%q) = %q, want %q", in, got, want)
		}
	}
}
