package directory

// Request is one thing the client asked of a directory server, as reported
// to an OnRequest function: what a deployment's metrics count, and what tests
// count to hold the number of round trips of an operation down.
type Request struct {
	// Op is the client operation the request belongs to (find, reset,
	// unlock, …; dial and bind for a new pooled connection, ping for the
	// check of an idle one).
	Op string
	// Kind is what went to the server: KindDial, KindBind, KindSearch,
	// KindModify or KindExtended.
	Kind string
	// Server is the URL of the server.
	Server string
}

// Request kinds.
const (
	KindDial     = "dial" // a new connection (TCP, TLS or StartTLS)
	KindBind     = "bind"
	KindSearch   = "search"
	KindModify   = "modify"
	KindExtended = "extended"
)

// IsWrite tells whether the request changes the directory.
func (r Request) IsWrite() bool { return r.Kind == KindModify || r.Kind == KindExtended }

// OnRequest makes the client call f, synchronously, just before each request
// it sends to a server, pooled connections' dials, binds and checks
// included. f must be quick, safe for concurrent use and must not use the
// client. A nil f stops the calls.
func (c *Client) OnRequest(f func(Request)) {
	if f == nil {
		c.onRequest.Store(nil)
		return
	}
	c.onRequest.Store(&f)
}

func (c *Client) note(r Request) {
	if f := c.onRequest.Load(); f != nil {
		(*f)(r)
	}
}
