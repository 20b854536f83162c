//go:build tools

// Package tools pins the Temporal CLI, whose `temporal server start-dev` is the
// real server (SQLite persistence, web UI) behind diffem's server-backed tests.
package tools

import _ "github.com/temporalio/cli/cmd/temporal"
