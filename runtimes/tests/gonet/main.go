// gonet: a static Go program (CGO_ENABLED=0) for the network tests — an HTTP server, a load
// client that checks every answer, a one-shot GET, and a UDP echo pair. The same binary runs in
// the guest and on the host, so either side can serve and either side can load.
//
//	gonet serve ADDR                  net/http on ADDR; prints "listening ADDR" once listening
//	gonet load URL [-n N] [-c C] [-m M]  N sequential requests, then M (default N) over C goroutines
//	gonet get URL                     one GET; prints the body; exit 1 on an error or non-200
//	gonet udpecho ADDR                echoes datagrams; prints "listening ADDR"
//	gonet udpsend ADDR MSG            sends MSG, prints the answer; exit 1 without one
//
// The server's pages: `/` says "hello from gonet\n"; `/bytes?n=N` gives N bytes of pattern()
// (N up to 64 MiB); `/echo` answers a POST with its body.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

const hello = "hello from gonet\n"

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "load":
		err = load(os.Args[2], os.Args[3:])
	case "get":
		err = get(os.Args[2])
	case "udpecho":
		err = udpEcho(os.Args[2])
	case "udpsend":
		if len(os.Args) != 4 {
			usage()
		}
		err = udpSend(os.Args[2], os.Args[3])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gonet %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gonet serve ADDR | load URL [-n N] [-c C] [-m M] | get URL | "+
		"udpecho ADDR | udpsend ADDR MSG")
	os.Exit(2)
}

// pattern is the body of /bytes?n=N: byte i is 'a' + i mod 26, a newline every 64 bytes.
func pattern(n int) []byte {
	body := make([]byte, n)
	for i := range body {
		if i%64 == 63 {
			body[i] = '\n'
		} else {
			body[i] = byte('a' + i%26)
		}
	}
	return body
}

// --- the server ---

func serve(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, hello)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 64<<20 {
			http.Error(w, "n must be 0 to 64 MiB", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(body)
	})
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", listener.Addr())
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	return server.Serve(listener)
}

// --- the load client ---

// A request of the load and what its answer must be.
type request struct {
	method, path string
	body         []byte
	want         []byte
}

// requestFor varies the requests: the hello page, bodies of several sizes, echoes.
func requestFor(i int) request {
	switch i % 4 {
	case 0:
		return request{"GET", "/", nil, []byte(hello)}
	case 1:
		n := (i * 37) % 5000
		return request{"GET", fmt.Sprintf("/bytes?n=%d", n), nil, pattern(n)}
	case 2:
		body := []byte(fmt.Sprintf("request %d says hi", i))
		return request{"POST", "/echo", body, body}
	default:
		n := 16*1024 + i
		return request{"GET", fmt.Sprintf("/bytes?n=%d", n), nil, pattern(n)}
	}
}

func do(client *http.Client, base string, r request) error {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the body: %v", r.method, r.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", r.method, r.path, resp.StatusCode)
	}
	if !bytes.Equal(got, r.want) {
		return fmt.Errorf("%s %s: %d bytes, not the %d expected", r.method, r.path, len(got),
			len(r.want))
	}
	return nil
}

func load(url string, args []string) error {
	flags := flag.NewFlagSet("load", flag.ContinueOnError)
	n := flags.Int("n", 1000, "requests in the sequential phase")
	c := flags.Int("c", 64, "concurrent goroutines in the second phase")
	m := flags.Int("m", 0, "requests in the concurrent phase (0: as many as -n)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *c < 1 || *m < 0 {
		return errors.New("-n and -c must be at least 1, -m at least 0")
	}
	if *m == 0 {
		*m = *n
	}
	for len(url) > 0 && url[len(url)-1] == '/' {
		url = url[:len(url)-1]
	}
	const timeout = 60 * time.Second
	keepAlive := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c},
	}
	// A new connection for every request.
	fresh := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	report := func(err error) {
		failed++
		if failed <= 10 {
			fmt.Fprintf(os.Stderr, "load: %v\n", err)
		}
	}

	// Progress and timings go to stderr: a slow server shows where the time went.
	start := time.Now()
	progress := func(phase string, done int) {
		if done%250 == 0 || done == *n {
			fmt.Fprintf(os.Stderr, "load: %s %d/%d after %.1fs\n", phase, done, *n,
				time.Since(start).Seconds())
		}
	}

	// Phase 1: one after another over one kept-alive connection.
	for i := 0; i < *n; i++ {
		if err := do(keepAlive, url, requestFor(i)); err != nil {
			report(err)
		}
		progress("sequential", i+1)
	}
	sequentialFailed := failed
	start = time.Now()

	// Phase 2: c goroutines; every fourth request on a connection of its own.
	jobs := make(chan int)
	errs := make(chan error, *m)
	for g := 0; g < *c; g++ {
		go func() {
			for i := range jobs {
				client := keepAlive
				if i%4 == 3 {
					client = fresh
				}
				errs <- do(client, url, requestFor(i))
			}
		}()
	}
	go func() {
		for i := 0; i < *m; i++ {
			jobs <- i
		}
		close(jobs)
	}()
	newConnections := 0
	for i := 0; i < *m; i++ {
		if err := <-errs; err != nil {
			report(err)
		}
		if i%4 == 3 {
			newConnections++
		}
		if (i+1)%250 == 0 || i+1 == *m {
			fmt.Fprintf(os.Stderr, "load: concurrent %d/%d after %.1fs\n", i+1, *m,
				time.Since(start).Seconds())
		}
	}
	fmt.Printf("load: %d sequential, %d concurrent (%d at once, %d on new connections): "+
		"%d failed\n", *n, *m, *c, newConnections, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed (%d sequential)", failed, *n+*m,
			sequentialFailed)
	}
	return nil
}

// --- one GET ---

func get(url string) error {
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// --- UDP ---

func udpEcho(addr string) error {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", conn.LocalAddr())
	buffer := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFrom(buffer)
		if err != nil {
			return err
		}
		if _, err := conn.WriteTo(buffer[:n], from); err != nil {
			return err
		}
	}
}

// udpSend sends msg and prints the answer; a lost datagram is sent again (5 tries, 2 s apart).
func udpSend(addr, msg string) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buffer := make([]byte, 65536)
	for try := 0; try < 5; try++ {
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buffer)
		if err == nil {
			fmt.Printf("%s\n", buffer[:n])
			return nil
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return err
		}
	}
	return errors.New("no answer after 5 tries")
}
