package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Exit codes of `siplb ctl`, for scripts.
const (
	ctlOK          = 0 // done
	ctlRefused     = 1 // the API answered with an error (refused, unknown, invalid, unauthorized)
	ctlUsage       = 2 // the command line is wrong
	ctlUnreachable = 3 // the admin listener could not be reached
)

// defaultCtlAdmin is the admin listener of the embedded default and example
// configurations.
const defaultCtlAdmin = "127.0.0.1:9060"

const ctlUsageText = `usage: siplb ctl [--admin IP:PORT] [--token T | --token-file F] COMMAND

commands:
  list                              pools and backends: state, health, probe RTT
  drain|undrain|disable|enable POOL [ADDR]
                                    set the state of one backend, or of every backend of POOL
  route POOL KEY                    the backend a new call with KEY (its Call-ID for hash-callid,
                                    From or To user, Request-URI) reaches now
  reload                            reload the configuration, as SIGHUP does
  cluster                           cluster members, who probes which backend, shared facts

The token may also come from SIPLB_ADMIN_TOKEN. Exit codes: 0 done, 1 the API
refused or failed, 2 usage, 3 the admin listener cannot be reached.
`

// runCtl is `siplb ctl ARGS`: the command-line face of the control API.
func runCtl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("siplb ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsageText) }
	var (
		admin     = fs.String("admin", defaultCtlAdmin, "admin listener `IP:PORT` (or http://...)")
		token     = fs.String("token", "", "bearer `token` of the admin API (default $SIPLB_ADMIN_TOKEN)")
		tokenFile = fs.String("token-file", "", "`file` whose first line is the token")
		timeout   = fs.Duration("timeout", 5*time.Second, "how long to wait for the admin listener")
	)
	if err := fs.Parse(args); err != nil {
		return ctlUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return ctlUsage
	}
	c, code := newCtlClient("siplb ctl", *admin, *token, *tokenFile, *timeout, stdout, stderr)
	if c == nil {
		return code
	}

	cmd, operands := rest[0], rest[1:]
	switch cmd {
	case "list":
		if len(operands) != 0 {
			return c.usage("list takes no operands")
		}
		return c.list()
	case "drain", "undrain", "disable", "enable":
		switch len(operands) {
		case 1:
			return c.act("/api/v1/pools/"+url.PathEscape(operands[0])+"/"+cmd, cmd)
		case 2:
			return c.act("/api/v1/backends/"+url.PathEscape(operands[0])+"/"+url.PathEscape(operands[1])+"/"+cmd, cmd)
		}
		return c.usage(cmd + " takes POOL [ADDR]")
	case "route":
		if len(operands) != 2 {
			return c.usage("route takes POOL KEY")
		}
		return c.route(operands[0], operands[1])
	case "reload":
		if len(operands) != 0 {
			return c.usage("reload takes no operands")
		}
		return c.reload()
	case "cluster":
		if len(operands) != 0 {
			return c.usage("cluster takes no operands")
		}
		return c.clusterCmd()
	}
	return c.usage(fmt.Sprintf("unknown command %q", cmd))
}

// ctlClient calls the control API for one command.
// newCtlClient is the admin API client of siplb ctl and siplb upgrade (prog
// names the command in errors): the token from --token, --token-file or
// SIPLB_ADMIN_TOKEN, the address with http:// unless it names a scheme.
// It returns nil and the exit code on a usage error.
func newCtlClient(prog, admin, token, tokenFile string, timeout time.Duration, stdout, stderr io.Writer) (*ctlClient, int) {
	tok := token
	if tokenFile != "" {
		if tok != "" {
			fmt.Fprintln(stderr, prog+": --token and --token-file exclude each other")
			return nil, ctlUsage
		}
		var err error
		if tok, err = (AdminConfig{TokenFile: tokenFile}).token(); err != nil {
			fmt.Fprintln(stderr, prog+": --token-file:", strings.TrimPrefix(err.Error(), "admin.token_file: "))
			return nil, ctlUsage
		}
	}
	if tok == "" {
		tok = os.Getenv("SIPLB_ADMIN_TOKEN")
	}
	base := admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &ctlClient{base: strings.TrimSuffix(base, "/"), token: tok, http: &http.Client{Timeout: timeout}, stdout: stdout, stderr: stderr}, ctlOK
}

type ctlClient struct {
	base, token    string
	http           *http.Client
	stdout, stderr io.Writer
}

func (c *ctlClient) usage(msg string) int {
	fmt.Fprintf(c.stderr, "siplb ctl: %s\n\n%s", msg, ctlUsageText)
	return ctlUsage
}

// errUnreachable marks a request that got no HTTP answer.
var errUnreachable = errors.New("cannot reach the admin listener")

// call sends a request and decodes a 2xx answer into out. A non-2xx answer
// is returned as its apiError (with the status); a transport failure wraps
// errUnreachable.
func (c *ctlClient) call(method, path string, out any) (int, *apiError, error) {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("%w at %s: %v", errUnreachable, c.base, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w at %s: %v", errUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%w at %s: %v", errUnreachable, c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		if json.Unmarshal(body, &ae) != nil || ae.Error == "" {
			ae.Error = strings.TrimSpace(resp.Status + ": " + string(body))
		}
		return resp.StatusCode, &ae, nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, &apiError{Error: fmt.Sprintf("unreadable answer: %v", err)}, nil
	}
	return resp.StatusCode, nil, nil
}

// done turns call's outcome into an exit code, printing any failure.
func (c *ctlClient) done(ae *apiError, err error) int {
	if err != nil {
		fmt.Fprintln(c.stderr, "siplb ctl:", err)
		return ctlUnreachable
	}
	if ae != nil {
		fmt.Fprintln(c.stderr, "siplb ctl:", ae.Error)
		for _, i := range ae.Errors {
			switch {
			case i.Line > 0 && i.Key != "":
				fmt.Fprintf(c.stderr, "  line %d: %s: %s\n", i.Line, i.Key, i.Message)
			case i.Line > 0:
				fmt.Fprintf(c.stderr, "  line %d: %s\n", i.Line, i.Message)
			}
		}
		return ctlRefused
	}
	return ctlOK
}

func (c *ctlClient) list() int {
	var pools []poolInfo
	_, ae, err := c.call(http.MethodGet, "/api/v1/pools", &pools)
	if ae != nil || err != nil {
		return c.done(ae, err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tBACKEND\tTRANSPORT\tWEIGHT\tPRIO\tSTATE\tOPERATOR\tHEALTH\tRTT\tSINCE")
	for _, p := range pools {
		for _, b := range p.Backends {
			op := b.OperatorState
			if b.RuntimeOverride {
				op += " (api)"
			}
			health, rtt, since := "-", "-", "-"
			if b.Probed {
				health = b.Health
				if health == "" {
					health = map[bool]string{true: "up", false: "down"}[b.Healthy]
				}
			}
			if b.LastRTTSeconds > 0 {
				rtt = time.Duration(b.LastRTTSeconds * float64(time.Second)).Round(time.Microsecond).String()
			}
			if b.Since != "" {
				since = b.Since
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, b.Address, b.Transport, b.Weight, b.Priority, b.State, op, health, rtt, since)
		}
	}
	tw.Flush()
	return ctlOK
}

func (c *ctlClient) act(path, action string) int {
	var res actionResult
	_, ae, err := c.call(http.MethodPost, path, &res)
	if ae != nil || err != nil {
		return c.done(ae, err)
	}
	for _, m := range res.Backends {
		what := "unchanged"
		if m.Changed {
			what = action + "ed"
			if strings.HasSuffix(action, "e") {
				what = action + "d"
			}
		}
		fmt.Fprintf(c.stdout, "%s %s: %s (%s)\n", res.Pool, m.Address, m.State, what)
	}
	return ctlOK
}

func (c *ctlClient) route(pool, key string) int {
	var ri routeInfo
	_, ae, err := c.call(http.MethodGet, "/api/v1/route?"+url.Values{"pool": {pool}, "key": {key}}.Encode(), &ri)
	if ae != nil || err != nil {
		return c.done(ae, err)
	}
	fmt.Fprintf(c.stdout, "%s\n", ri.Backend)
	return ctlOK
}

func (c *ctlClient) reload() int {
	var rr reloadResult
	_, ae, err := c.call(http.MethodPost, "/api/v1/reload", &rr)
	if ae != nil || err != nil {
		return c.done(ae, err)
	}
	if len(rr.Changes) == 0 {
		fmt.Fprintln(c.stdout, "reloaded: no change to the pools")
	}
	for _, ch := range rr.Changes {
		line := "pool " + ch.Pool
		if ch.Backend != "" {
			line += " backend " + ch.Backend
		}
		line += ": " + ch.Change
		if ch.Detail != "" {
			line += " (" + ch.Detail + ")"
		}
		fmt.Fprintln(c.stdout, line)
	}
	return ctlOK
}
