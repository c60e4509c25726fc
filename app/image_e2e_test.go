package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berthvm/berth/internal/testenv"
)

// docker runs the real docker CLI against the daemon on home.
func docker(t testing.TB, home string, args ...string) result {
	t.Helper()
	return dockerStdin(t, home, nil, args...)
}

func mustOK(t testing.TB, what string, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, r.code, r.out, r.err)
	}
	return r
}

func TestImagesWithBerthCLI(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "1", testenv.BusyboxImage(t, nil))
	home := shortHome(t)
	startDaemon(t, home)

	r := mustOK(t, "pull", berth(t, home, "image", "pull", ref))
	if !strings.Contains(r.out, "Pull complete") || !strings.Contains(r.out, "Status: Downloaded newer image for "+ref) {
		t.Fatalf("pull output:\n%s", r.out)
	}
	// On a terminal the pull draws a bar per layer and ends with the
	// status lines.
	mustOK(t, "rmi before tty pull", berth(t, home, "rmi", ref))
	s := startPTY(t, home, 24, 100, "pull", ref)
	s.expect(0, "Status: Downloaded newer image for "+ref)
	if code := s.wait(); code != 0 {
		t.Fatalf("pull on a tty: exit %d:\n%s", code, s.output())
	}
	if out := s.output(); !strings.Contains(out, "Pull complete") || !strings.Contains(out, "1.1 MB / 1.1 MB") {
		t.Fatalf("pull on a tty drew no layer bars:\n%q", out)
	}
	// A second pull fetches nothing.
	r = mustOK(t, "pull again", berth(t, home, "pull", ref))
	if !strings.Contains(r.out, "Image is up to date") {
		t.Fatalf("second pull:\n%s", r.out)
	}
	r = mustOK(t, "images", berth(t, home, "images"))
	repo := reg.Host + "/test/busybox"
	if !strings.Contains(r.out, "REPOSITORY") || !strings.Contains(r.out, repo) {
		t.Fatalf("images:\n%s", r.out)
	}
	r = mustOK(t, "inspect", berth(t, home, "image", "inspect", ref))
	var insp []struct {
		ID       string `json:"Id"`
		RepoTags []string
		Os       string
		Config   struct{ Cmd []string }
	}
	if err := json.Unmarshal([]byte(r.out), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("inspect JSON: %v\n%s", err, r.out)
	}
	if !strings.HasPrefix(insp[0].ID, "sha256:") || insp[0].Os != "linux" || strings.Join(insp[0].Config.Cmd, " ") != "sh" {
		t.Fatalf("inspect: %+v", insp[0])
	}
	// Found also by a short ID prefix.
	mustOK(t, "inspect by short ID", berth(t, home, "image", "inspect", insp[0].ID[7:19]))

	// unpack: the image's root filesystem as a standalone ext4 image that
	// e2fsck accepts and debugfs reads.
	ext4File := filepath.Join(t.TempDir(), "root.ext4")
	r = mustOK(t, "unpack", berth(t, home, "image", "unpack", ref, "-o", ext4File, "--size", "64m"))
	testenv.Fsck(t, ext4File)
	if fi, err := os.Stat(ext4File); err != nil || fi.Size() != 64<<20 {
		t.Fatalf("unpacked image size: %v %v", fi, err)
	}
	if out := testenv.Debugfs(t, ext4File, "cat /etc/passwd"); !strings.Contains(out, "berth:x:1000:1000") {
		t.Fatalf("debugfs cat /etc/passwd: %q", out)
	}
	r = berth(t, home, "image", "unpack", ref, "-o", ext4File)
	if r.code == 0 || !strings.Contains(r.err, "exists") {
		t.Fatalf("unpack over an existing file: %+v", r)
	}

	// berth image push: to another repository of the registry.
	mustOK(t, "tag for push", berth(t, home, "image", "tag", ref, reg.Host+"/test/copy:7"))
	r = mustOK(t, "push", berth(t, home, "image", "push", reg.Host+"/test/copy:7"))
	if !strings.Contains(r.out, "The push refers to repository ["+reg.Host+"/test/copy]") || !strings.Contains(r.out, ": Pushed") ||
		!regexp.MustCompile(`7: digest: sha256:[0-9a-f]{64} size: \d+`).MatchString(r.out) {
		t.Fatalf("berth image push:\n%s", r.out)
	}
	mustOK(t, "rmi pushed", berth(t, home, "rmi", reg.Host+"/test/copy:7"))

	mustOK(t, "tag", berth(t, home, "image", "tag", ref, "demo:v1"))
	r = mustOK(t, "images after tag", berth(t, home, "image", "ls"))
	if !strings.Contains(r.out, "demo ") || !strings.Contains(r.out, "v1") {
		t.Fatalf("tag not listed:\n%s", r.out)
	}
	r = mustOK(t, "rmi tag", berth(t, home, "rmi", "demo:v1"))
	if !strings.Contains(r.out, "Untagged: demo:v1") || strings.Contains(r.out, "Deleted") {
		t.Fatalf("rmi of one of two tags:\n%s", r.out)
	}
	r = mustOK(t, "rmi last tag", berth(t, home, "rmi", ref))
	if !strings.Contains(r.out, "Deleted: "+insp[0].ID) {
		t.Fatalf("rmi of last tag:\n%s", r.out)
	}

	// User errors are clear and name the thing.
	r = berth(t, home, "image", "inspect", "nosuch:image")
	if r.code == 0 || !strings.Contains(r.err, "No such image: nosuch:image") {
		t.Fatalf("inspect missing: %+v", r)
	}
	r = berth(t, home, "pull", reg.Host+"/test/missing:1")
	if r.code == 0 || !strings.Contains(r.err, "test/missing") {
		t.Fatalf("pull missing: %+v", r)
	}
	r = berth(t, home, "pull", "UPPER/Case")
	if r.code == 0 || !strings.Contains(r.err, "invalid reference format") {
		t.Fatalf("pull malformed: %+v", r)
	}
}

func TestImagesWithDockerCLI(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "2", testenv.BusyboxImage(t, map[string]string{"etc/hello": "hi\n"}))
	home := shortHome(t)
	startDaemon(t, home)

	r := mustOK(t, "docker pull", docker(t, home, "pull", ref))
	if !strings.Contains(r.out, "Downloaded newer image for "+ref) || !strings.Contains(r.out, "Digest: sha256:") {
		t.Fatalf("docker pull:\n%s", r.out)
	}
	r = mustOK(t, "docker images", docker(t, home, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"))
	if !strings.Contains(r.out, reg.Host+"/test/busybox:2 ") {
		t.Fatalf("docker images:\n%s", r.out)
	}
	r = mustOK(t, "docker inspect", docker(t, home, "image", "inspect", "--format", "{{.Os}} {{json .Config.Labels}}", ref))
	if strings.TrimSpace(r.out) != `linux {"dev.berthvm.test":"busybox"}` {
		t.Fatalf("docker inspect: %q", r.out)
	}
	mustOK(t, "docker tag", docker(t, home, "tag", ref, "mine/app:1"))
	r = mustOK(t, "docker rmi", docker(t, home, "rmi", "mine/app:1"))
	if !strings.Contains(r.out, "Untagged: mine/app:1") {
		t.Fatalf("docker rmi:\n%s", r.out)
	}
	r = docker(t, home, "image", "inspect", "nosuch")
	if r.code == 0 || !strings.Contains(r.err, "No such image: nosuch") {
		t.Fatalf("docker inspect missing: %+v", r)
	}

	// docker push: under another name to the same registry, then pulled
	// back under that name: the same manifest digest.
	pulledDigest := regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(mustOK(t, "docker pull again", docker(t, home, "pull", ref)).out)
	pushed := reg.Host + "/test/pushed:v1"
	mustOK(t, "docker tag for push", docker(t, home, "tag", ref, pushed))
	r = mustOK(t, "docker push", docker(t, home, "push", pushed))
	pushedDigest := regexp.MustCompile(`v1: digest: (sha256:[0-9a-f]{64}) size: \d+`).FindStringSubmatch(r.out)
	if !strings.Contains(r.out, "The push refers to repository ["+reg.Host+"/test/pushed]") || !strings.Contains(r.out, "Pushed") ||
		pushedDigest == nil || pulledDigest == nil || pushedDigest[1] != pulledDigest[1] {
		t.Fatalf("docker push (pulled as %v):\n%s\n%s", pulledDigest, r.out, r.err)
	}
	mustOK(t, "docker rmi pushed", docker(t, home, "rmi", pushed))
	r = mustOK(t, "docker pull pushed", docker(t, home, "pull", pushed))
	if !strings.Contains(r.out, "Digest: "+pushedDigest[1]) {
		t.Fatalf("docker pull of the pushed image: want digest %s:\n%s", pushedDigest[1], r.out)
	}
	r = mustOK(t, "docker push again", docker(t, home, "push", pushed))
	if !strings.Contains(r.out, "Layer already exists") || !strings.Contains(r.out, "v1: digest: "+pushedDigest[1]) {
		t.Fatalf("second docker push:\n%s", r.out)
	}
	r = docker(t, home, "push", reg.Host+"/test/nosuch:1")
	if r.code == 0 || !strings.Contains(r.err, "No such image: "+reg.Host+"/test/nosuch:1") {
		t.Fatalf("docker push of a missing image: %+v", r)
	}
	mustOK(t, "docker tag unreachable", docker(t, home, "tag", ref, "127.0.0.1:1/test/x:1"))
	r = docker(t, home, "push", "127.0.0.1:1/test/x:1")
	if r.code == 0 || !strings.Contains(r.out+r.err, "registry 127.0.0.1:1 unreachable") {
		t.Fatalf("docker push to an unreachable registry: %+v", r)
	}
	r = docker(t, home, "pull", reg.Host+"/test/missing:1")
	if r.code == 0 || !strings.Contains(r.out+r.err, "test/missing") {
		t.Fatalf("docker pull missing: %+v", r)
	}
}

// TestSaveLoad: images go out as docker save tarballs and come back in
// with no network, with the berth CLI and the docker CLI, and the demo
// image `make run` imports loads.
func TestSaveLoad(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "save", testenv.BusyboxImage(t, map[string]string{"etc/saved": "yes\n"}))
	home := shortHome(t)
	startDaemon(t, home)
	mustOK(t, "pull", berth(t, home, "pull", ref))
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	mustOK(t, "save", berth(t, home, "save", "-o", tarPath, ref))
	mustOK(t, "rmi", berth(t, home, "rmi", ref))
	r := mustOK(t, "load", berth(t, home, "load", "-i", tarPath))
	if strings.TrimSpace(r.out) != "Loaded image: "+ref {
		t.Fatalf("load: %q", r.out)
	}
	// docker save | docker load round trip through Berth.
	dockerTar := filepath.Join(t.TempDir(), "docker.tar")
	mustOK(t, "docker save", docker(t, home, "save", "-o", dockerTar, ref))
	mustOK(t, "docker rmi", docker(t, home, "rmi", ref))
	r = mustOK(t, "docker load", docker(t, home, "load", "-i", dockerTar))
	if !strings.Contains(r.out, "Loaded image: "+ref) {
		t.Fatalf("docker load: %q", r.out)
	}
	// The demo image make run uses.
	demo := filepath.Join(t.TempDir(), "demo.tar")
	if out, err := exec.Command("go", "run", "./demoimage", "-o", demo).CombinedOutput(); err != nil {
		t.Fatalf("demoimage: %v\n%s", err, out)
	}
	r = mustOK(t, "load demo", berth(t, home, "image", "load", demo))
	if strings.TrimSpace(r.out) != "Loaded image: demo:latest" {
		t.Fatalf("load demo: %q", r.out)
	}
	r = berth(t, home, "load", "-i", filepath.Join(t.TempDir(), "missing.tar"))
	if r.code == 0 || !strings.Contains(r.err, "missing.tar") {
		t.Fatalf("load of a missing file: %+v", r)
	}
}

// TestLoginAndPrivatePull: a registry with basic auth refuses anonymous
// pulls with a clear error; `docker login` through Berth checks the
// credentials (wrong ones refused); after it the docker CLI's pulls (which
// carry the credentials) and Berth's own (which read the same Docker
// config) succeed.
func TestLoginAndPrivatePull(t *testing.T) {
	reg := testenv.StartAuthRegistry(t, "berth", "s3cret")
	img := testenv.BusyboxImage(t, nil)
	ref := reg.Push(t, "private/busybox", "1", img, "berth", "s3cret")
	ref2 := reg.Push(t, "private/busybox", "2", img, "berth", "s3cret")
	home := shortHome(t)
	dockerConfig := filepath.Join(home, "docker-config")
	startDaemon(t, home, "DOCKER_CONFIG="+dockerConfig)

	r := berth(t, home, "pull", ref)
	if r.code == 0 || !strings.Contains(r.err, "pull access denied") {
		t.Fatalf("anonymous pull of a private image: %+v", r)
	}
	login := func(password string) result {
		bin := testenv.RequireCommand(t, "docker", "the docker CLI (part of this machine's image)")
		cmd := exec.Command(bin, "login", "-u", "berth", "--password-stdin", reg.Host)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(home, "berth.sock"), "DOCKER_CONFIG="+dockerConfig)
		cmd.Stdin = strings.NewReader(password + "\n")
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{o.String(), e.String(), code}
	}
	if r := login("wrong"); r.code == 0 || !strings.Contains(r.err, "incorrect username or password") {
		t.Fatalf("docker login with a wrong password: %+v", r)
	}
	if r := login("s3cret"); r.code != 0 || !strings.Contains(r.out, "Login Succeeded") {
		t.Fatalf("docker login: %+v", r)
	}
	mustOK(t, "docker pull after login", docker(t, home, "pull", ref))
	mustOK(t, "berth pull after login", berth(t, home, "pull", ref2))

	// Pushes carry the same credentials, from the docker CLI
	// (X-Registry-Auth) and from berth (the engine's Docker config);
	// engine/image's TestPushErrors has the anonymous push refused.
	mustOK(t, "docker tag", docker(t, home, "tag", ref, reg.Host+"/private/pushed:1"))
	mustOK(t, "docker push after login", docker(t, home, "push", reg.Host+"/private/pushed:1"))
	mustOK(t, "berth tag", berth(t, home, "image", "tag", ref, reg.Host+"/private/pushed:2"))
	mustOK(t, "berth push after login", berth(t, home, "push", reg.Host+"/private/pushed:2"))
}
