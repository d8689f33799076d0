package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
)

// agentAdd is `writeback agent add --name NAME`: a one-time enrolment token,
// alone on the last line of the output so that a script can take it with
// `tail -n 1`.
func agentAdd(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("agent add", io)
	data := dataFlag(fs.StringVar, getenv)
	name := fs.String("name", "", "the agent's name, as the Writeback agents page shows it (1 to 64 letters, digits, spaces, - _ .)")
	portal := fs.String("base-url", getenv("WRITEBACK_BASE_URL"), "the portal's public URL, for the enroll command shown (env WRITEBACK_BASE_URL)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		return cmdline.Usagef("--name is required")
	}
	n, err := agents.ValidateName(*name)
	if err != nil {
		return cmdline.Usagef("--name %q: %s", *name, agentFieldMessage(err))
	}
	base := "https://PORTAL"
	if *portal != "" {
		u, err := url.Parse(*portal)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return cmdline.Usagef("--base-url %q: want the portal's public URL, such as https://reset.example.com", *portal)
		}
		base = strings.TrimRight(u.String(), "/")
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	tok, err := agents.New(a.db, a.log).Add(ctx, audit.CommandLine, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "Created a one-time enrolment token for the writeback agent %q.\n", tok.Name)
	fmt.Fprintf(io.Out, "It works once, until %s (one hour), and is not shown again.\n", tok.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintln(io.Out, "On the server inside your network that will run the agent, enrol it with:")
	fmt.Fprintf(io.Out, "    writeback-agent enroll --portal %s --token %s\n", base, tok.Token)
	if *portal == "" {
		fmt.Fprintln(io.Out, "(Replace https://PORTAL with the portal's public URL, or give it with --base-url.)")
	}
	fmt.Fprintln(io.Out, "The token:")
	fmt.Fprintln(io.Out, tok.Token)
	return nil
}

// agentFieldMessage is the message of a validation error, without the
// generic "Some values need your attention".
func agentFieldMessage(err error) string {
	if m := errs.FieldsOf(err)["name"]; m != "" {
		return m
	}
	return errs.MessageOf(err)
}

// agentRow is one line of `agent list --json`: the columns of the table and
// of the Writeback agents page.
type agentRow struct {
	Name              string     `json:"name"`
	State             string     `json:"state"`
	Host              string     `json:"host"`
	Version           string     `json:"version"`
	ConnectedSince    *time.Time `json:"connected_since"`
	LastHeartbeat     *time.Time `json:"last_heartbeat"`
	OpsLastHour       int64      `json:"operations_last_hour"`
	LastError         string     `json:"last_error"`
	ID                string     `json:"id"`
	PasswordWriteback bool       `json:"password_writeback"`
	Directory         string     `json:"directory"`
	EnrolledAt        time.Time  `json:"enrolled_at"`
	RevokedAt         *time.Time `json:"revoked_at"`
	// Connections are the replicas that hold a connection of the agent.
	Connections []agents.Connection `json:"connections"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func agentList(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("agent list", io)
	data := dataFlag(fs.StringVar, getenv)
	asJSON := fs.Bool("json", false, "print a JSON array, one object per agent, for scripts")
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	svc := agents.New(a.db, a.log)
	list, err := svc.List(ctx)
	if err != nil {
		return err
	}
	// On PostgreSQL: the running replicas, each of which needs an agent.
	cover, err := svc.Coverage(ctx, list)
	if err != nil {
		return err
	}
	if *asJSON {
		rows := make([]agentRow, 0, len(list))
		for _, in := range list {
			rows = append(rows, agentRow{Name: in.Name, State: string(in.State), Host: in.Host, Version: in.Version,
				ConnectedSince: timePtr(in.ConnectedSince), LastHeartbeat: timePtr(in.LastHeartbeat), OpsLastHour: in.OpsLastHour,
				LastError: in.LastError, ID: in.ID, PasswordWriteback: in.PasswordWriteback, Directory: in.Directory,
				EnrolledAt: in.EnrolledAt.UTC(), RevokedAt: timePtr(in.RevokedAt), Connections: in.Connections})
		}
		enc := json.NewEncoder(io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(list) == 0 {
		fmt.Fprintln(io.Out, `No writeback agents are enrolled. Add one with: writeback agent add --name NAME`)
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	head := "NAME\tSTATE\tHOST\tVERSION\tCONNECTED SINCE\tLAST HEARTBEAT\tOPS (1 H)\tLAST ERROR"
	if len(cover) > 0 {
		head += "\tREPLICAS"
	}
	fmt.Fprintln(tw, head)
	for _, in := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", dash(in.Name), in.State, dash(in.Host), dash(in.Version),
			when(in.ConnectedSince), when(in.LastHeartbeat), strconv.FormatInt(in.OpsLastHour, 10), dash(in.LastError))
		if len(cover) > 0 {
			fmt.Fprintf(tw, "\t%s", replicasReached(in, cover))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range cover {
		if c.Agents == 0 {
			fmt.Fprintf(io.Out, "\nWarning: replica %s has no agent connected: the resets and unlocks the load balancer sends it fail.\n"+
				"Agents keep one connection to every replica; a load balancer that pins a client to one replica (IP hash,\n"+
				"sticky sessions) sends all of an agent's connections to the same one. Balance the agent path in turn instead.\n", c.Name())
		}
	}
	return nil
}

// replicasReached is "2 of 3": how many of the running replicas hold a
// connection of the agent.
func replicasReached(in agents.Info, cover []agents.ReplicaCoverage) string {
	if in.State == agents.Revoked {
		return "-"
	}
	return fmt.Sprintf("%d of %d", in.Reached(cover), len(cover))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// parseWithName parses fs from args that hold one NAME, before or after the
// flags; missing is the usage error without one.
func parseWithName(fs *flag.FlagSet, args []string, missing string) (string, error) {
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return "", err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		if fs.NArg() > 1 {
			return "", cmdline.Usagef("unexpected argument %q (quote a name that has spaces)", fs.Arg(1))
		}
	} else if fs.NArg() > 0 {
		return "", cmdline.Usagef("unexpected argument %q (quote a name that has spaces)", fs.Arg(0))
	}
	if strings.TrimSpace(name) == "" {
		return "", cmdline.Usagef("%s", missing)
	}
	return name, nil
}

// agentRevoke is `writeback agent revoke NAME`.
func agentRevoke(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("agent revoke", io)
	data := dataFlag(fs.StringVar, getenv)
	name, err := parseWithName(fs, args, "name the agent to revoke: writeback agent revoke NAME")
	if err != nil {
		return err
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	in, err := agents.New(a.db, a.log).Revoke(ctx, audit.CommandLine, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "revoked the writeback agent %s; the portal refuses it from now on and cuts off its connection within seconds\n", in.Name)
	return nil
}
