package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
)

// verifier sends one verification and returns the daemon's answer.
type verifier interface {
	Verify(req wire.VerifyRequest) (*wire.VerifyResponse, error)
	Close()
}

// rawClient speaks HTTP/1.1 on one kept-alive Unix-socket connection with
// a pre-built request, the way a small C login module would. It leaves
// more of the shared 2 cores to the daemon than net/http's client, whose
// per-request cost is several times higher; -client=nethttp measures with
// the package client instead.
type rawClient struct {
	socket string
	conn   net.Conn
	r      *bufio.Reader
	buf    bytes.Buffer
}

func newRawClient(socket string) *rawClient { return &rawClient{socket: socket} }

func (c *rawClient) Close() {
	if c.conn != nil {
		c.conn.Close()
	}
}

func (c *rawClient) Verify(req wire.VerifyRequest) (*wire.VerifyResponse, error) {
	if c.conn == nil {
		conn, err := net.Dial("unix", c.socket)
		if err != nil {
			return nil, err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	c.buf.Reset()
	c.buf.WriteString("POST /v1/verify HTTP/1.1\r\nHost: mfad\r\nContent-Type: application/json\r\nContent-Length: ")
	c.buf.WriteString(strconv.Itoa(len(body)))
	c.buf.WriteString("\r\n\r\n")
	c.buf.Write(body)
	if _, err := c.conn.Write(c.buf.Bytes()); err != nil {
		c.reset()
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.reset()
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var v wire.VerifyResponse
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		c.reset()
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // the trailing newline
	return &v, nil
}

func (c *rawClient) reset() {
	c.conn.Close()
	c.conn = nil
}

// pkgClient adapts package client (net/http).
type pkgClient struct{ cl *client.Client }

func (c pkgClient) Verify(req wire.VerifyRequest) (*wire.VerifyResponse, error) {
	return c.cl.Verify(context.Background(), req)
}

func (c pkgClient) Close() { c.cl.Close() }

func newVerifier(kind, socket string) verifier {
	if kind == "nethttp" {
		return pkgClient{client.New(socket)}
	}
	return newRawClient(socket)
}
