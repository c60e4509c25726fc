package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/api/types"
	sessions "github.com/berthvm/berth/engine/terminal"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// shellFlags are the flags of shell.
type shellFlags struct {
	web, open     bool
	user, workdir string
}

func newShellCmd(e *env) *cobra.Command {
	f := &shellFlags{}
	c := &cobra.Command{
		Use:   "shell [CONTAINER] [--web [--open]] [-u USER] [-w DIR] [-- COMMAND [ARG...]]",
		Short: "Open a shell in a container, in this terminal or in a terminal window",
		Long: `Open an interactive shell in a running container: the image's /bin/bash if
it has one, else /bin/sh, or COMMAND when given after --.

In this terminal (the default) it is "berth exec -t -i CONTAINER SHELL".

With --web it opens a terminal window instead: it prints the URL of a
terminal page the engine serves on 127.0.0.1 (good for one use within 2
minutes), and with --open also opens it in the browser (xdg-open, or open
on macOS). Closing the window ends the shell.

With no CONTAINER it starts a throwaway container (removed when the shell
exits, like "berth run --rm -t -i") of a default image: the image of the
most recently created container, else the most recently pulled or loaded
image.`,
		Example: `  berth shell web                 # bash or sh in the container "web"
  berth shell web -u root -w /etc # as root, in /etc
  berth shell web -- top          # run top instead of the shell
  berth shell web --web --open    # in a terminal window
  berth shell                     # a throwaway container of the last image`,
		Args: func(cmd *cobra.Command, args []string) error {
			if n := positional(cmd, args); n > 1 {
				return fmt.Errorf("shell takes at most one CONTAINER before --, got %d arguments: put the command after --", n)
			}
			return nil
		},
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			n := positional(cmd, args)
			command := args[n:]
			if n == 0 {
				if f.web {
					return errors.New("berth shell --web needs a CONTAINER: start one (berth run -d -t -i IMAGE), then berth shell CONTAINER --web")
				}
				return e.throwawayShell(cmd, cl, f, command)
			}
			if f.web {
				return e.webShell(cmd.Context(), cl, f, args[0], command)
			}
			if len(command) == 0 {
				command = sessions.DefaultShell()
			}
			return e.exec(cmd.Context(), cl, &execFlags{tty: true, interactive: true, user: f.user, workdir: f.workdir}, args[0], command)
		}),
	}
	fl := c.Flags()
	fl.BoolVar(&f.web, "web", false, "open the shell in a terminal window: print its URL")
	fl.BoolVar(&f.open, "open", false, "with --web, also open the URL in the browser")
	fl.StringVarP(&f.user, "user", "u", "", "user (name|uid[:group|gid])")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory")
	fl.String("entrypoint", "", "")
	_ = fl.MarkHidden("entrypoint")
	return c
}

// positional is how many arguments come before --.
func positional(cmd *cobra.Command, args []string) int {
	if at := cmd.ArgsLenAtDash(); at >= 0 {
		return at
	}
	return len(args)
}

// webShell opens a terminal session and prints (and with --open opens)
// its URL.
func (e *env) webShell(ctx context.Context, cl *client.Client, f *shellFlags, ref string, command []string) error {
	t, err := cl.OpenTerminal(ctx, ref, types.TerminalRequest{Cmd: command, User: f.user, WorkDir: f.workdir})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.io.Out, t.URL)
	if !f.open {
		return nil
	}
	return openInBrowser(ctx, t.URL)
}

// throwawayShell runs the shell (or command) in a new container of the
// default image, removed when it exits: run --rm -t -i, with the image's
// entrypoint cleared so the shell runs whatever the image is for.
func (e *env) throwawayShell(cmd *cobra.Command, cl *client.Client, sf *shellFlags, command []string) error {
	img, err := defaultImage(cmd.Context(), cl)
	if err != nil {
		return err
	}
	if len(command) == 0 {
		command = sessions.DefaultShell()
	}
	f := &createFlags{tty: true, interactive: true, rm: true, user: sf.user, workdir: sf.workdir, pull: "never", quiet: true}
	// request clears the entrypoint when the flag was set; this command
	// has it hidden for that.
	if err := cmd.Flags().Set("entrypoint", ""); err != nil {
		return err
	}
	t := openTerminal(e.io.In)
	var size [2]uint
	if t != nil {
		if r, c := t.size(); r > 0 {
			size = [2]uint{r, c}
		}
	}
	cl2, id, err := e.createFromArgs(cmd, f, append([]string{img}, command...), size)
	if err != nil {
		return err
	}
	defer cl2.Close()
	return e.runAttached(cmd.Context(), cl2, id, f, t)
}

// defaultImage is the image of the most recently created container, else
// the most recently pulled or loaded image.
func defaultImage(ctx context.Context, cl *client.Client) (string, error) {
	cs, err := cl.ContainerList(ctx, docker.ContainerListOptions{All: true})
	if err != nil {
		return "", err
	}
	var newest int64 = -1
	img := ""
	for _, c := range cs.Items {
		if c.Created > newest && c.Image != "" {
			newest, img = c.Created, c.Image
		}
	}
	if img != "" {
		return img, nil
	}
	imgs, err := cl.ImageList(ctx, docker.ImageListOptions{})
	if err != nil {
		return "", err
	}
	var latest time.Time
	for _, s := range imgs.Items {
		in, err := cl.ImageInspect(ctx, s.ID)
		if err != nil {
			continue
		}
		added := in.Metadata.LastTagTime
		if added.IsZero() {
			added = time.Unix(s.Created, 0)
		}
		if img == "" || added.After(latest) {
			latest, img = added, s.ID
			if len(s.RepoTags) > 0 {
				img = s.RepoTags[0]
			}
		}
	}
	if img == "" {
		return "", errors.New("no image to start a shell in: pull one first (berth pull debian), or give a running container (berth shell CONTAINER)")
	}
	return img, nil
}
