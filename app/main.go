// Command berth is Berth: with arguments it is the CLI, a client of the
// engine's API socket; `berth daemon` runs the engine headless; on macOS,
// with no arguments, it is the menu-bar app, which hosts the engine
// in-process.
package main

import (
	"context"
	"os"

	"github.com/berthvm/berth/app/cli"
)

func main() {
	if len(os.Args) == 1 && runApp() {
		return
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.StdIO()))
}
