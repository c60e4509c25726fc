// Package menu is the platform-neutral half of Berth's menu-bar app: what
// the menu shows and what its items do, as plain Go values, so that every
// decision but the Cocoa calls is made (and tested) here. The darwin glue
// (app/menubar) only draws a Menu and hands Actions back.
//
// Three parts, in the order data flows:
//
//   - State keeps a Snapshot of the engine current: on every (re)connect
//     it asks the engine's status and kernel, subscribes to /events, then
//     lists containers and images; after that only events move it (no
//     polling loop), and each event refreshes just what it names (one
//     container, or the image list). When the socket goes away it shows
//     "Berth is not running" with the reason and reconnects with backoff.
//     Changed signals the glue to rebuild the menu; Notices carries what
//     deserves a user notification (a pull finished or failed, a container
//     exited with an error).
//   - Build turns a Snapshot (and the time, for uptimes) into a Menu: a
//     tree of Items, each with a title, enabled, checked state, tooltip,
//     keyboard shortcut, submenu and an Action. Render draws a Menu as
//     indented text (testdata/menu.golden, docs/menu.txt); RenderHTML
//     as a page shaped like a macOS menu (testdata/menu.html, which make
//     screenshots turns into docs/menu.png).
//   - Dispatcher.Do performs an Action against the engine through its API
//     client (the one the CLI uses) and returns a Result for the glue: a
//     terminal page URL to open, text for the pasteboard, a command to run
//     in Terminal.app, a file to open. Actions that need a dialog (Pull
//     Image…, Run…, Set up kernel…) describe it with Dialog; the glue
//     fills it and calls WithInput.
//
// Folder sharing: each Container carries its run-time shares (berth
// share, read with the container; the engine's share_add and share_rm
// events refresh them), drawn as a "Shared Folders" submenu with Stop
// Sharing; Share Folder… asks for a folder (Dialog.ChooseFolder: an open
// panel) and the Dispatcher shares it through the engine's API. A drop
// of files onto a container is decided by app/drop.
package menu
