package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/spf13/cobra"
)

// uiFlags are the flags of ui.
type uiFlags struct {
	open, noOpen bool
}

func newUICmd(e *env) *cobra.Command {
	f := &uiFlags{}
	c := &cobra.Command{
		Use:   "ui [--open | --no-open]",
		Short: "Open the Berth window: containers, images, logs and shells in a browser",
		Long: `Open the Berth window, a web page the engine serves on 127.0.0.1: its
containers (live), images, logs and shells. berth ui prints the window's
URL, which holds a sign-in token good once and for 2 minutes, and waits
until interrupted (Ctrl-C); the engine serves the page.

It opens the URL in the browser (open on macOS, xdg-open elsewhere) with
--open, and by default on macOS; --no-open only prints it (the default on
Linux). docs/berth-window.md describes the window.`,
		Example: `  berth ui            # print the URL (Linux) or open it (macOS)
  berth ui --open     # open it in the browser
  berth ui --no-open  # print it only`,
		Args: cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			if f.open && f.noOpen {
				return errors.New("berth ui: --open and --no-open contradict each other: give one")
			}
			return e.ui(cmd.Context(), cl, f)
		}),
	}
	fl := c.Flags()
	fl.BoolVar(&f.open, "open", false, "open the window in the browser (the default on macOS)")
	fl.BoolVar(&f.noOpen, "no-open", false, "only print the window's URL (the default on Linux)")
	return c
}

// ui issues a window sign-in, prints its URL, opens it when asked (or by
// the platform's default) and waits for an interrupt.
func (e *env) ui(ctx context.Context, cl *client.Client, f *uiFlags) error {
	w, err := cl.OpenWindow(ctx)
	if err != nil {
		return err
	}
	open := runtime.GOOS == "darwin"
	why := "the default on " + runtime.GOOS
	switch {
	case f.open:
		open, why = true, "--open"
	case f.noOpen:
		open, why = false, "--no-open"
	}
	fmt.Fprintln(e.io.Out, w.URL)
	if open {
		if err := openInBrowser(ctx, w.URL); err != nil {
			return err
		}
		fmt.Fprintf(e.io.Err, "Opened the Berth window in the browser (%s). Ctrl-C to quit.\n", why)
	} else {
		fmt.Fprintf(e.io.Err, "Open this URL in a browser within 2 minutes; it signs in once (%s: not opening it; --open opens it). Ctrl-C to quit.\n", why)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// openInBrowser opens url in the user's browser: open on macOS, xdg-open
// elsewhere.
func openInBrowser(ctx context.Context, url string) error {
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	if out, err := exec.CommandContext(ctx, opener, url).CombinedOutput(); err != nil {
		return fmt.Errorf("open %s with %s: %w (%s): open it in a browser yourself", url, opener, err, out)
	}
	return nil
}
